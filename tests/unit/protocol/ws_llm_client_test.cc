#include "lib/protocol/ws_llm_client.h"

#include <algorithm>
#include <fstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "boost/json/parse.hpp"
#include "gtest/gtest.h"

namespace llmload::protocol::wsllm {
namespace {

using Kind = WsEvent::Kind;

// The server-to-client text frames of a fixture, in order.
std::vector<std::string> ServerFrames(const std::string& name) {
  std::ifstream in(std::string(LLMLOAD_FIXTURES_DIR) + "/" + name);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    auto v = boost::json::parse(line);
    if (v.at("dir").as_string() == "s2c" && v.as_object().contains("text")) {
      out.emplace_back(v.at("text").as_string());
    }
  }
  return out;
}

std::vector<Kind> Kinds(WsLlmClient& c, const std::vector<std::string>& frames, std::string* text,
                        int64_t* tokens) {
  std::vector<Kind> kinds;
  for (const auto& f : frames) {
    EXPECT_TRUE(c.Parse(f, [&](const WsEvent& e) {
                   kinds.push_back(e.kind);
                   if (e.kind == Kind::kChunk) {
                     *text += std::string(e.text);
                   }
                   if (e.kind == Kind::kComplete && *tokens == -2) {
                     *tokens = e.reported_tokens;  // the first completion: generate's
                   }
                 }).ok())
        << f;
  }
  return kinds;
}

TEST(WsLlmClientTest, RealmFixtureSession) {
  WsLlmClient c(Dialect::kRealm);
  std::string text;
  int64_t tokens = -2;
  auto kinds = Kinds(c, ServerFrames("realm-generate.jsonl"), &text, &tokens);
  ASSERT_GE(kinds.size(), 4u);
  EXPECT_EQ(kinds[0], Kind::kIgnore);  // auth_required
  EXPECT_EQ(kinds[1], Kind::kAuthOk);
  EXPECT_EQ(kinds[2], Kind::kReady);  // welcome
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), Kind::kChunk), 13);
  EXPECT_EQ(tokens, 13);
  EXPECT_EQ(text.substr(0, 12), "The capital ");
}

TEST(WsLlmClientTest, CompletionsCarryPromptTokensWhenReported) {
  const std::pair<Dialect, std::string> cases[] = {
      {Dialect::kWsChat,
       R"({"type":"llm_complete","id":"r1","data":{"fullText":"a b",)"
       R"("tokenUsage":{"promptTokens":7,"completionTokens":2,"totalTokens":9}}})"},
      {Dialect::kRealm,
       R"({"id":"r1","status":"complete","data":{"prompt_tokens":7,"tokens_generated":2,)"
       R"("text":"a b"}})"},
  };
  for (const auto& [dialect, frame] : cases) {
    WsLlmClient c(dialect);
    int64_t input = -2;
    int64_t output = -2;
    ASSERT_TRUE(c.Parse(frame, [&](const WsEvent& e) {
                   if (e.kind == Kind::kComplete) {
                     input = e.reported_input_tokens;
                     output = e.reported_tokens;
                   }
                 }).ok());
    EXPECT_EQ(input, 7) << frame;
    EXPECT_EQ(output, 2) << frame;
  }
  WsLlmClient c(Dialect::kRealm);
  int64_t input = -2;
  ASSERT_TRUE(c.Parse(R"({"id":"r1","status":"complete","data":{"tokens_generated":2}})",
                      [&](const WsEvent& e) { input = e.reported_input_tokens; })
                  .ok());
  EXPECT_EQ(input, -1);  // not reported: the worker estimates
}

TEST(WsLlmClientTest, RealmErrorsAndAuthFailure) {
  WsLlmClient c(Dialect::kRealm);
  std::vector<std::string> codes;
  double retry = -2;
  for (const auto& f : ServerFrames("realm-errors.jsonl")) {
    ASSERT_TRUE(c.Parse(f, [&](const WsEvent& e) {
                   if (e.kind == Kind::kError) {
                     codes.emplace_back(e.error_code);
                     if (e.error_code == "RATE_LIMIT_EXCEEDED") {
                       retry = e.retry_after_seconds;
                     }
                   }
                 }).ok());
  }
  EXPECT_NE(std::find(codes.begin(), codes.end(), "UNAUTHORIZED"), codes.end());
  EXPECT_NE(std::find(codes.begin(), codes.end(), "RATE_LIMIT_EXCEEDED"), codes.end());
  EXPECT_GE(retry, 0);
  bool failed = false;
  for (const auto& f : ServerFrames("realm-auth-failed.jsonl")) {
    ASSERT_TRUE(c.Parse(f, [&](const WsEvent& e) { failed = failed || e.kind == Kind::kAuthFailed; }).ok());
  }
  EXPECT_TRUE(failed);
  EXPECT_DOUBLE_EQ(RetryAfterFromText("Rate limit exceeded. Try again in 12 seconds."), 12);
  EXPECT_DOUBLE_EQ(RetryAfterFromText("nope"), -1);
}

TEST(WsLlmClientTest, WsChatFixtureSession) {
  WsLlmClient c(Dialect::kWsChat);
  std::string text;
  int64_t tokens = -2;
  auto kinds = Kinds(c, ServerFrames("ws-chat-session.jsonl"), &text, &tokens);
  EXPECT_EQ(kinds[0], Kind::kReady);
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), Kind::kChunk), 3);
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), Kind::kComplete), 1);
  EXPECT_EQ(tokens, -1);  // v1 reports no usage: tokens are counted as chunks
}

TEST(WsLlmClientTest, RequestsAreValidJsonOfTheProtocol) {
  RequestParams p;
  p.id = "r\"1";
  p.prompt = "hi";
  p.model = "m";
  p.tenant = "t1";
  p.max_tokens = 5;
  p.token_delay_ms = 2.5;
  auto chat = boost::json::parse(WsLlmClient(Dialect::kWsChat).EncodeRequest(p));
  EXPECT_EQ(chat.at("type").as_string(), "user_message");
  EXPECT_EQ(chat.at("id").as_string(), "r\"1");
  EXPECT_EQ(chat.at("data").at("options").at("maxTokens").as_int64(), 5);
  EXPECT_DOUBLE_EQ(chat.at("data").at("options").at("tokenDelayMs").as_double(), 2.5);
  auto realm = boost::json::parse(WsLlmClient(Dialect::kRealm).EncodeRequest(p));
  EXPECT_EQ(realm.at("function").as_string(), "generate");
  EXPECT_EQ(realm.at("tenant_id").as_string(), "t1");
  EXPECT_EQ(realm.at("params").at("max_tokens").as_int64(), 5);
  EXPECT_TRUE(realm.at("params").at("stream").as_bool());
  EXPECT_EQ(*WsLlmClient(Dialect::kRealm).OpeningFrame("k"), R"({"type":"auth","api_key":"k"})");
  EXPECT_FALSE(WsLlmClient(Dialect::kRealm).OpeningFrame("").has_value());
  EXPECT_FALSE(WsLlmClient(Dialect::kWsChat).OpeningFrame("k").has_value());
}

// Realm's other functions (realm.md §3): health and metadata with empty
// params, pipeline with its name and the prompt as input text, each with
// the tenant.
TEST(WsLlmClientTest, RealmFunctionCallsCarryTheirParams) {
  RequestParams p;
  p.id = "c1";
  p.prompt = "sum \"this\"";
  p.tenant = "t1";
  for (std::string_view f : {"health", "metadata"}) {
    p.function = f;
    auto v = boost::json::parse(WsLlmClient(Dialect::kRealm).EncodeRequest(p));
    EXPECT_EQ(v.at("function").as_string(), f);
    EXPECT_TRUE(v.at("params").as_object().empty());
    EXPECT_EQ(v.at("tenant_id").as_string(), "t1");
    EXPECT_EQ(v.at("id").as_string(), "c1");
  }
  p.function = "pipeline";
  p.pipeline = "summarize";
  auto v = boost::json::parse(WsLlmClient(Dialect::kRealm).EncodeRequest(p));
  EXPECT_EQ(v.at("function").as_string(), "pipeline");
  EXPECT_EQ(v.at("params").at("pipeline").as_string(), "summarize");
  EXPECT_EQ(v.at("params").at("input").at("text").as_string(), "sum \"this\"");
  EXPECT_EQ(v.at("tenant_id").as_string(), "t1");
}

TEST(WsLlmClientTest, MalformedFramesAreErrors) {
  for (Dialect d : {Dialect::kWsChat, Dialect::kRealm}) {
    WsLlmClient c(d);
    for (const char* bad : {"", "{", "[1]", "\"s\"", "nul"}) {
      EXPECT_FALSE(c.Parse(bad, [](const WsEvent&) {}).ok()) << bad;
    }
  }
}

// Runs `frame` through the DOM only: the events' (kind, id, text).
std::vector<std::tuple<WsEvent::Kind, std::string, std::string>> DomEvents(Dialect d,
                                                                           std::string_view frame) {
  WsLlmClient dom(d);
  dom.set_fast_path(false);
  std::vector<std::tuple<WsEvent::Kind, std::string, std::string>> out;
  (void)dom.Parse(frame, [&](const WsEvent& e) {
    out.emplace_back(e.kind, std::string(e.id), std::string(e.text));
  });
  return out;
}

TEST(ChunkFastPathTest, ReadsCommonChunksExactlyAsTheDomDoes) {
  const std::vector<std::pair<Dialect, std::string>> frames = {
      {Dialect::kWsChat,
       R"({"type":"llm_chunk","id":"c1","data":{"chunk":"lorem ","isComplete":false}})"},
      {Dialect::kWsChat,
       " {\"data\" : {\"isComplete\":false, \"n\":[1,-2.5,{\"a\":null}], \"chunk\":\"x\\\\\"}, "
       "\"type\":\"llm_chunk\"}\n"},
      {Dialect::kWsChat, R"({"type":"llm_chunk","data":{"chunk":"a","esc":"\u00e9\n"}})"},
      {Dialect::kRealm, R"({"id":"r1","status":"streaming","data":{"text":"tok","index":3}})"},
      {Dialect::kRealm, R"({"status":"streaming","id":"r2","data":{"token":"node"}})"},
  };
  for (const auto& [dialect, frame] : frames) {
    WsEvent fast;
    const bool taken = ParseChunkFast(dialect, frame, &fast);
    const auto dom = DomEvents(dialect, frame);
    ASSERT_EQ(dom.size(), 1u) << frame;
    if (frame.find("\\\\") != std::string::npos) {
      EXPECT_FALSE(taken) << "an escaped chunk text is the DOM's to decode: " << frame;
      continue;
    }
    ASSERT_TRUE(taken) << frame;
    EXPECT_EQ(std::make_tuple(fast.kind, std::string(fast.id), std::string(fast.text)), dom[0])
        << frame;
  }
}

TEST(ChunkFastPathTest, DeclinesWhatItDoesNotReadLikeTheDom) {
  const std::vector<std::string> declined = {
      R"({"type":"llm_complete","id":"m1","data":{"fullText":"x"}})",  // not a chunk
      R"({"type":"llm_chunk","data":{"chunk":"caf\u00e9 is fine but é is not ASCII"}})",
      "{\"type\":\"llm_chunk\",\"data\":{\"chunk\":\"\xc3\xa9\"}}",           // non-ASCII bytes
      R"({"type":"llm_chunk","type":"llm_chunk","data":{"chunk":"a"}})",     // repeated key
      R"({"type":"llm_chunk","data":{"chunk":"a"},"data":{"chunk":"b"}})",
      R"({"type":"llm_chunk","data":{"chunk":"a","n":1e5}})",                // exponent
      R"({"type":"llm_chunk","data":{"chunk":"a","n":1234567890123456}})",   // 16 digits
      R"({"type":"llm_chunk","data":{"chunk":"a","s":"\ud800"}})",           // lone surrogate
      R"({"type":"llm_chunk","data":{"chunk":1}})",                          // not a string
      R"({"type":"llm_chunk","data":{"chunk":"a"}} x)",                      // trailing junk
      R"({"type":"llm_chunk","data":{"chunk":"a",}})",                       // trailing comma
      R"({"type":"llm_chunk","data":{"chunk":"a","n":01}})",
      R"({"type":"llm_chunk","data":{"chunk":"a"})",                         // truncated
      "{\"type\":\"llm_chunk\",\"data\":{\"chunk\":\"a\tb\"}}",               // raw control char
      std::string(40, '[') + std::string(40, ']'),
  };
  for (const std::string& frame : declined) {
    WsEvent e;
    EXPECT_FALSE(ParseChunkFast(Dialect::kWsChat, frame, &e)) << frame;
  }
  WsEvent e;
  EXPECT_FALSE(ParseChunkFast(Dialect::kRealm,
                              R"({"type":"x","status":"streaming","data":{"text":"a"}})", &e));
  EXPECT_FALSE(ParseChunkFast(Dialect::kRealm, R"({"status":"complete","data":{}})", &e));
}

TEST(ChunkFastPathTest, FixtureChunksTakeTheFastPath) {
  for (const auto& [dialect, name] : {std::pair{Dialect::kWsChat, "ws-chat-session.jsonl"},
                                      std::pair{Dialect::kRealm, "realm-generate.jsonl"}}) {
    int fast = 0;
    for (const std::string& frame : ServerFrames(name)) {
      WsEvent e;
      if (ParseChunkFast(dialect, frame, &e)) {
        ++fast;
        const auto dom = DomEvents(dialect, frame);
        ASSERT_EQ(dom.size(), 1u);
        EXPECT_EQ(std::make_tuple(e.kind, std::string(e.id), std::string(e.text)), dom[0]);
      }
    }
    EXPECT_GT(fast, 0) << name;
  }
}

}  // namespace
}  // namespace llmload::protocol::wsllm
