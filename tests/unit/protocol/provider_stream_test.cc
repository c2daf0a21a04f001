#include "lib/protocol/provider_stream.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "boost/json/parse.hpp"
#include "gtest/gtest.h"

namespace llmload::protocol::llm {
namespace {

struct Decoded {
  std::string text;
  int chunks = 0;  // content items with non-empty text
  int64_t tokens = -1;
  int64_t input_tokens = -1;
  bool done = false;
  bool error = false;
  std::string error_type;
  int32_t error_code = 0;
  absl::Status status;
};

std::string ReadFixture(const std::string& name) {
  std::ifstream in(std::string(LLMLOAD_FIXTURES_DIR) + "/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Decoded Decode(Provider p, std::string_view body, size_t piece = 0) {
  Decoded d;
  sse::SseParser parser;
  StreamDecoder decoder(p);
  auto on_item = [&](const StreamItem& it) {
    switch (it.kind) {
      case StreamItem::Kind::kContent:
        if (!it.text.empty()) {
          d.text += std::string(it.text);
          ++d.chunks;
        }
        break;
      case StreamItem::Kind::kUsage:
        if (it.output_tokens >= 0) {
          d.tokens = it.output_tokens;
        }
        if (it.input_tokens >= 0) {
          d.input_tokens = it.input_tokens;
        }
        break;
      case StreamItem::Kind::kDone:
        d.done = true;
        break;
      case StreamItem::Kind::kError:
        d.error = true;
        d.error_type = std::string(it.error_type);
        d.error_code = it.error_code;
        break;
    }
  };
  auto on_event = [&](const sse::SseEvent& e) { d.status.Update(decoder.OnEvent(e, on_item)); };
  if (piece == 0) {
    d.status.Update(parser.Feed(body, on_event));
  } else {
    for (size_t i = 0; i < body.size(); i += piece) {
      d.status.Update(parser.Feed(body.substr(i, piece), on_event));
    }
  }
  return d;
}

TEST(ProviderStreamTest, OpenAiChatStream) {
  for (size_t piece : {0, 1, 3, 5}) {
    Decoded d = Decode(Provider::kOpenAiChat, ReadFixture("openai-chat-stream.sse"), piece);
    ASSERT_TRUE(d.status.ok()) << d.status;
    EXPECT_EQ(d.text, "Hello world!");
    EXPECT_EQ(d.chunks, 3);
    EXPECT_EQ(d.tokens, 3);
    EXPECT_EQ(d.input_tokens, 9);  // usage.prompt_tokens
    EXPECT_TRUE(d.done);
    EXPECT_FALSE(d.error);
  }
}

TEST(ProviderStreamTest, OpenAiInStreamError) {
  Decoded d = Decode(Provider::kOpenAiChat, ReadFixture("openai-chat-stream-error.sse"));
  ASSERT_TRUE(d.status.ok());
  EXPECT_TRUE(d.error);
  EXPECT_FALSE(d.done);
  EXPECT_EQ(d.text, "Hello");
}

TEST(ProviderStreamTest, AnthropicMessagesStream) {
  for (size_t piece : {0, 1, 4}) {
    Decoded d = Decode(Provider::kAnthropic, ReadFixture("anthropic-messages-stream.sse"), piece);
    ASSERT_TRUE(d.status.ok()) << d.status;
    EXPECT_EQ(d.text, "Hello world!");
    EXPECT_EQ(d.chunks, 3);
    EXPECT_EQ(d.tokens, 4);  // message_delta's cumulative output_tokens
    EXPECT_EQ(d.input_tokens, 12);  // message_start.message.usage.input_tokens
    EXPECT_TRUE(d.done);
  }
  Decoded e = Decode(Provider::kAnthropic, ReadFixture("anthropic-messages-stream-error.sse"));
  EXPECT_TRUE(e.error);
  EXPECT_EQ(e.error_type, "overloaded_error");
  EXPECT_FALSE(e.done);
}

TEST(ProviderStreamTest, GeminiStreamWithCrlf) {
  for (size_t piece : {0, 1, 2}) {
    Decoded d = Decode(Provider::kGemini, ReadFixture("gemini-stream.sse"), piece);
    ASSERT_TRUE(d.status.ok()) << d.status;
    EXPECT_EQ(d.text, "Hello world!");
    EXPECT_EQ(d.tokens, 3);
    EXPECT_EQ(d.input_tokens, 5);  // usageMetadata.promptTokenCount
    EXPECT_TRUE(d.done);
  }
  Decoded e = Decode(Provider::kGemini, ReadFixture("gemini-stream-error.sse"));
  EXPECT_TRUE(e.error);
  EXPECT_EQ(e.error_code, 503);
  EXPECT_EQ(e.error_type, "UNAVAILABLE");
}

TEST(ProviderStreamTest, MalformedEventsAreErrors) {
  StreamDecoder d(Provider::kOpenAiChat);
  sse::SseEvent e;
  e.type = "message";
  e.data = "{not json";
  EXPECT_FALSE(d.OnEvent(e, [](const StreamItem&) {}).ok());
  e.data = "[1,2]";
  EXPECT_FALSE(d.OnEvent(e, [](const StreamItem&) {}).ok());
  // Odd but valid shapes are not errors and produce nothing.
  e.data = R"({"choices":[{"delta":{"content":5}}]})";
  int items = 0;
  EXPECT_TRUE(d.OnEvent(e, [&](const StreamItem&) { ++items; }).ok());
  EXPECT_EQ(items, 0);
}

TEST(ProviderStreamTest, AbsurdNumbersFromTheTargetAreIgnored) {
  // Found by sse_stream_fuzz: a usage count far beyond int64 was converted
  // with undefined behaviour.
  for (const char* usage : {"7.7e40", "-3", "1e308", "18446744073709551615", "2.5"}) {
    StreamDecoder d(Provider::kOpenAiChat);
    sse::SseEvent e;
    e.type = "message";
    const std::string data = std::string(R"({"choices":[],"usage":{"completion_tokens":)") + usage + "}}";
    e.data = data;
    int64_t tokens = -2;
    ASSERT_TRUE(d.OnEvent(e, [&](const StreamItem& it) {
                   if (it.kind == StreamItem::Kind::kUsage) {
                     tokens = it.output_tokens;
                   }
                 }).ok());
    if (std::string(usage) == "2.5") {
      EXPECT_EQ(tokens, 2);
    } else {
      EXPECT_EQ(tokens, -2) << usage;  // not reported at all
    }
  }
}

TEST(ProviderStreamTest, RequestsHaveTheProvidersShape) {
  RequestParams r;
  r.model = "m\"1";
  r.prompt = "hi \"there\"";
  r.max_tokens = 7;
  for (Provider p : {Provider::kOpenAiChat, Provider::kAnthropic, Provider::kGemini}) {
    boost::json::error_code ec;
    auto v = boost::json::parse(RequestBody(p, r), ec);
    ASSERT_FALSE(ec);
    ASSERT_TRUE(v.is_object());
  }
  auto openai = boost::json::parse(RequestBody(Provider::kOpenAiChat, r));
  EXPECT_EQ(openai.at("messages").at(0).at("content").as_string(), "hi \"there\"");
  EXPECT_EQ(openai.at("stream_options").at("include_usage").as_bool(), true);
  EXPECT_EQ(openai.at("max_tokens").as_int64(), 7);
  auto gemini = boost::json::parse(RequestBody(Provider::kGemini, r));
  EXPECT_EQ(gemini.at("generationConfig").at("maxOutputTokens").as_int64(), 7);
  EXPECT_EQ(RequestPath(Provider::kGemini, "gemini-2.0-flash", true),
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
  EXPECT_EQ(RequestPath(Provider::kGemini, "g", false), "/v1beta/models/g:generateContent");
  r.max_tokens = 0;
  auto anthropic = boost::json::parse(RequestBody(Provider::kAnthropic, r));
  EXPECT_EQ(anthropic.at("max_tokens").as_int64(), 1024);  // required by the API
}

TEST(ProviderStreamTest, MessageListsTakeEachProvidersShape) {
  const ChatMessage messages[] = {{"system", "Be brief."},
                                  {"user", "Hi"},
                                  {"assistant", "Hello."},
                                  {"user", "Why \"sky\"?"}};
  RequestParams r;
  r.model = "m";
  r.prompt = "ignored when messages are given";
  r.messages = messages;
  r.max_tokens = 5;
  auto openai = boost::json::parse(RequestBody(Provider::kOpenAiChat, r));
  const auto& om = openai.at("messages").as_array();
  ASSERT_EQ(om.size(), 4u);
  EXPECT_EQ(om[0].at("role").as_string(), "system");
  EXPECT_EQ(om[3].at("content").as_string(), "Why \"sky\"?");
  auto anthropic = boost::json::parse(RequestBody(Provider::kAnthropic, r));
  EXPECT_EQ(anthropic.at("system").at(0).at("text").as_string(), "Be brief.");
  const auto& am = anthropic.at("messages").as_array();
  ASSERT_EQ(am.size(), 3u);
  EXPECT_EQ(am[0].at("role").as_string(), "user");
  EXPECT_EQ(am[1].at("role").as_string(), "assistant");
  auto gemini = boost::json::parse(RequestBody(Provider::kGemini, r));
  EXPECT_EQ(gemini.at("systemInstruction").at("parts").at(0).at("text").as_string(), "Be brief.");
  const auto& gc = gemini.at("contents").as_array();
  ASSERT_EQ(gc.size(), 3u);
  EXPECT_EQ(gc[1].at("role").as_string(), "model");
  EXPECT_EQ(gc[2].at("parts").at(0).at("text").as_string(), "Why \"sky\"?");
  EXPECT_EQ(gemini.at("generationConfig").at("maxOutputTokens").as_int64(), 5);
}

TEST(ProviderStreamTest, NonStreamingCompletionsAndErrors) {
  auto o = ParseCompletion(Provider::kOpenAiChat,
                           R"({"choices":[{"message":{"role":"assistant","content":"Hi!"}}],)"
                           R"("usage":{"completion_tokens":2,"prompt_tokens":6}})");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->text, "Hi!");
  EXPECT_EQ(o->output_tokens, 2);
  EXPECT_EQ(o->input_tokens, 6);
  auto a = ParseCompletion(Provider::kAnthropic,
                           R"({"content":[{"type":"text","text":"A"},{"type":"text","text":"B"}],)"
                           R"("usage":{"output_tokens":3}})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->text, "AB");
  EXPECT_EQ(a->output_tokens, 3);
  EXPECT_EQ(a->input_tokens, -1);  // not reported
  EXPECT_FALSE(ParseCompletion(Provider::kGemini, "nope").ok());
  ErrorBody e = ParseErrorBody(R"({"error":{"message":"slow down","type":"rate_limit_error"}})");
  EXPECT_EQ(e.type, "rate_limit_error");
  EXPECT_EQ(e.message, "slow down");
  EXPECT_EQ(ParseErrorBody("garbage").type, "");
  EXPECT_DOUBLE_EQ(RetryAfterSeconds("2", ""), 2.0);
  EXPECT_DOUBLE_EQ(RetryAfterSeconds("2", "1500"), 1.5);
  EXPECT_DOUBLE_EQ(RetryAfterSeconds("", ""), -1);
  EXPECT_DOUBLE_EQ(RetryAfterSeconds("Wed, 21 Oct 2015 07:28:00 GMT", ""), -1);
}

}  // namespace
}  // namespace llmload::protocol::llm
