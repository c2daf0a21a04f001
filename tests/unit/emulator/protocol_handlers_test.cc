// The HTTP provider handlers, Realm and WS-chat handlers without sockets:
// requests in, responses and the steps of their streams out.

#include <string>
#include <vector>

#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "services/emulator/anthropic_messages_handler.h"
#include "services/emulator/gemini_handler.h"
#include "services/emulator/http_json_handler.h"
#include "services/emulator/openai_chat_handler.h"
#include "services/emulator/realm_endpoint.h"
#include "services/emulator/ws_chat_endpoint.h"

namespace llmload::emulator {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;
using std::chrono::milliseconds;

std::vector<StreamStep> Drain(StreamSource* source) {
  std::vector<StreamStep> steps;
  StreamStep s;
  while (source->Next(&s)) {
    steps.push_back(s);
  }
  return steps;
}

HttpRequest Post(std::string target, std::string body,
                 std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpRequest r(http::verb::post, target, 11);
  for (auto& [k, v] : headers) {
    r.set(k, v);
  }
  r.body() = std::move(body);
  r.prepare_payload();
  return r;
}

class ProviderHandlersTest : public testing::Test {
 protected:
  ProviderHandlersTest() : behaviour_(Config()) {
    ctx_.behaviour = &behaviour_;
    ctx_.unix_now = [] { return int64_t{1735689600}; };
  }
  static BehaviourConfig Config() {
    BehaviourConfig c;
    c.length_words = 4;
    c.token_delay_seconds = 0.01;
    return c;
  }
  Behaviour behaviour_;
  ProviderContext ctx_;
};

TEST_F(ProviderHandlersTest, OpenAiStreamStepsAreTimedByThePlan) {
  OpenAiChatHandler h(&ctx_);
  HttpResponse r = h.ChatCompletions(Post(
      "/v1/chat/completions",
      R"({"model":"m","messages":[{"role":"user","content":"q"}],"stream":true,"max_tokens":3})",
      {{"x-llmload-token-delay-ms", "20"}}));
  ASSERT_NE(r.stream, nullptr);
  EXPECT_EQ(r.message[http::field::content_type], "text/event-stream");
  std::vector<StreamStep> steps = Drain(r.stream.get());
  ASSERT_EQ(steps.size(), 5u);  // role, 3 tokens, tail
  EXPECT_EQ(steps[0].at, milliseconds(0));
  EXPECT_EQ(steps[1].at, milliseconds(0));
  EXPECT_EQ(steps[2].at, milliseconds(20));
  EXPECT_EQ(steps[3].at, milliseconds(40));
  EXPECT_EQ(steps[4].at, milliseconds(40));
  EXPECT_NE(steps[4].data.find("\"finish_reason\":\"stop\""), std::string::npos);
  EXPECT_EQ(steps[4].data.substr(steps[4].data.size() - 14), "data: [DONE]\n\n");
}

// A stream dropped before its end (the runner cancelled it: the client
// left) is counted for its protocol; one read to the end, or ended by a
// planned fault, is not.
TEST_F(ProviderHandlersTest, StreamsTheClientLeftAreCounted) {
  OpenAiChatHandler h(&ctx_);
  const std::string body =
      R"({"model":"m","messages":[{"role":"user","content":"q"}],"stream":true})";
  {
    HttpResponse whole = h.ChatCompletions(Post("/v1/chat/completions", body));
    ASSERT_NE(whole.stream, nullptr);
    Drain(whole.stream.get());
  }
  {
    HttpResponse faulted = h.ChatCompletions(
        Post("/v1/chat/completions", body, {{"x-llmload-fault", "disconnect"}}));
    ASSERT_NE(faulted.stream, nullptr);
    Drain(faulted.stream.get());
  }
  EXPECT_EQ(behaviour_.AbandonedCount(Protocol::kOpenAiChat), 0u);
  {
    HttpResponse left = h.ChatCompletions(Post("/v1/chat/completions", body));
    ASSERT_NE(left.stream, nullptr);
    StreamStep step;
    ASSERT_TRUE(left.stream->Next(&step));
    ASSERT_TRUE(left.stream->Next(&step));
  }
  EXPECT_EQ(behaviour_.AbandonedCount(Protocol::kOpenAiChat), 1u);
  EXPECT_EQ(behaviour_.AbandonedCount(Protocol::kAnthropic), 0u);
}

TEST_F(ProviderHandlersTest, OpenAiFaultsByHeader) {
  OpenAiChatHandler h(&ctx_);
  const std::string body = R"({"model":"m","messages":[{"role":"user","content":"q"}],"stream":true})";
  EXPECT_EQ(h.ChatCompletions(Post("/", body, {{"x-llmload-fault", "500"}})).message.result(),
            http::status::internal_server_error);
  HttpResponse limited = h.ChatCompletions(Post("/", body, {{"x-llmload-fault", "429"}}));
  EXPECT_EQ(limited.message.result(), http::status::too_many_requests);
  EXPECT_EQ(limited.message[http::field::retry_after], "1");
  EXPECT_EQ(json::parse(limited.message.body()).at("error").at("code").as_string(),
            "rate_limit_exceeded");

  HttpResponse dropped = h.ChatCompletions(Post("/", body, {{"x-llmload-fault", "disconnect"}}));
  std::vector<StreamStep> steps = Drain(dropped.stream.get());
  ASSERT_EQ(steps.size(), 4u);  // role, 2 tokens, drop
  EXPECT_EQ(steps.back().kind, StreamStep::Kind::kDisconnect);

  HttpResponse broken = h.ChatCompletions(Post("/", body, {{"x-llmload-fault", "malformed"}}));
  steps = Drain(broken.stream.get());
  ASSERT_EQ(steps.size(), 7u);  // role, 2 tokens, malformed, 2 tokens, tail
  boost::system::error_code ec;
  json::parse(steps[3].data.substr(6), ec);
  EXPECT_TRUE(ec);

  HttpResponse bad = h.ChatCompletions(Post("/", body, {{"x-llmload-fault", "sometimes"}}));
  EXPECT_EQ(bad.message.result(), http::status::bad_request);
  EXPECT_EQ(h.ChatCompletions(Post("/", "{}")).message.result(), http::status::bad_request);
}

TEST_F(ProviderHandlersTest, NonStreamingAnswersAfterTheGenerationTime) {
  OpenAiChatHandler h(&ctx_);
  HttpResponse r = h.ChatCompletions(
      Post("/", R"({"model":"m","messages":[{"role":"user","content":"q"}]})"));
  EXPECT_EQ(r.stream, nullptr);
  EXPECT_EQ(r.delay, milliseconds(30));
  EXPECT_EQ(json::parse(r.message.body()).at("usage").at("completion_tokens").as_int64(), 4);
  HttpResponse dropped = h.ChatCompletions(Post(
      "/", R"({"model":"m","messages":[{"role":"user","content":"q"}]})",
      {{"x-llmload-fault", "disconnect"}}));
  EXPECT_TRUE(dropped.drop_connection);
}

TEST_F(ProviderHandlersTest, AnthropicErrorEventEndsTheStream) {
  AnthropicMessagesHandler h(&ctx_);
  HttpResponse r = h.Messages(Post(
      "/v1/messages",
      R"({"model":"c","max_tokens":4,"messages":[{"role":"user","content":"q"}],"stream":true})",
      {{"x-llmload-fault", "error_event"}}));
  std::vector<StreamStep> steps = Drain(r.stream.get());
  ASSERT_EQ(steps.size(), 4u);  // head, 2 deltas, error
  EXPECT_EQ(steps.back().data.rfind("event: error\n", 0), 0u);
  EXPECT_EQ(h.Messages(Post("/", R"({"model":"c","messages":[]})")).message.result(),
            http::status::bad_request);
  HttpResponse overloaded = h.Messages(Post(
      "/", R"({"model":"c","max_tokens":4,"messages":[]})", {{"x-llmload-fault", "error_event"}}));
  EXPECT_EQ(overloaded.message.result_int(), 529u);
}

TEST_F(ProviderHandlersTest, GeminiRoutesByMethodAndAlt) {
  GeminiHandler h(&ctx_);
  const std::string body = R"({"contents":[{"parts":[{"text":"q"}]}]})";
  HttpResponse sse = h.Generate(
      Post("/v1beta/models/g:streamGenerateContent?alt=sse", body), "g:streamGenerateContent");
  ASSERT_NE(sse.stream, nullptr);
  EXPECT_EQ(Drain(sse.stream.get()).size(), 4u);
  HttpResponse array = h.Generate(Post("/v1beta/models/g:streamGenerateContent", body),
                                  "g:streamGenerateContent");
  EXPECT_EQ(array.stream, nullptr);
  EXPECT_EQ(json::parse(array.message.body()).as_array().size(), 4u);
  HttpResponse one = h.Generate(Post("/", body), "g:generateContent");
  EXPECT_EQ(json::parse(one.message.body()).at("candidates").at(0).at("finishReason").as_string(),
            "STOP");
  EXPECT_EQ(static_cast<int>(h.Generate(Post("/", body), "g:embed").message.result()), 404);
}

TEST_F(ProviderHandlersTest, HttpJsonTakesAnyShapeOfBody) {
  HttpJsonHandler h(&ctx_);
  HttpResponse r = h.Generate(Post("/v1/generate", R"({"prompt":"q","max_tokens":2})"));
  const json::value v = json::parse(r.message.body());
  EXPECT_EQ(v.at("usage").at("completion_tokens").as_int64(), 2);
  EXPECT_EQ(h.Generate(Post("/v1/generate", "")).message.result(), http::status::ok);
  EXPECT_EQ(h.Generate(Post("/v1/generate", "nope")).message.result(), http::status::bad_request);
  EXPECT_EQ(h.Generate(Post("/v1/generate", R"({"max_tokens":0})")).message.result(),
            http::status::bad_request);
}

// ---------------------------------------------------------------------------
// Realm

class RealmHandlerTest : public testing::Test {
 protected:
  RealmHandlerTest() : behaviour_(Config()), limiter_(60, 2) {
    options_.api_keys = {{"sk_test_123", "tenant1"}};
    options_.now = [this] { return now_; };
  }
  static BehaviourConfig Config() {
    BehaviourConfig c;
    c.length_words = 3;
    c.token_delay_seconds = 0.05;
    return c;
  }
  RealmHandler Make() { return RealmHandler(&options_, &limiter_, &behaviour_, now_, std::nullopt); }

  Behaviour behaviour_;
  RealmRateLimiter limiter_;
  RealmOptions options_;
  std::chrono::steady_clock::time_point now_{};
};

TEST_F(RealmHandlerTest, AuthThenStreamingGenerate) {
  RealmHandler h = Make();
  WsActions open = h.OnOpen();
  ASSERT_EQ(open.frames.size(), 1u);
  EXPECT_NE(open.frames[0].find("auth_required"), std::string::npos);
  EXPECT_TRUE(open.deadline.has_value());
  WsActions auth = h.OnText(R"({"type":"auth","api_key":"sk_test_123"})");
  ASSERT_EQ(auth.frames.size(), 2u);
  EXPECT_EQ(auth.frames[0], R"({"tenant_id":"tenant1","type":"auth_success"})");
  EXPECT_EQ(auth.frames[1], R"({"status":"connected","tenant_id":"tenant1","version":"0.1.0"})");

  WsActions gen = h.OnText(
      R"({"id":"R","function":"generate","params":{"prompt":"Hello there","max_tokens":2,"stream":true},"tenant_id":"tenant1"})");
  ASSERT_NE(gen.stream, nullptr);
  std::vector<StreamStep> steps = Drain(gen.stream.get());
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(json::parse(steps[1].data).at("data").at("is_final").as_bool(), true);
  EXPECT_EQ(steps[1].at, milliseconds(50));
  EXPECT_EQ(steps[2].data,
            R"({"id":"R","status":"complete","data":{"status":"complete","tokens_generated":2}})");

  // While busy, calls wait; they are answered when the stream ends.
  EXPECT_TRUE(h.OnText(R"({"id":"H","function":"health","params":{},"tenant_id":"tenant1"})")
                  .frames.empty());
  WsActions after = h.OnStreamEnd();
  ASSERT_EQ(after.frames.size(), 1u);
  EXPECT_NE(after.frames[0].find("\"status\":\"healthy\""), std::string::npos);
}

TEST_F(RealmHandlerTest, ErrorsOfTheFixture) {
  RealmHandler h = Make();
  h.OnOpen();
  h.OnText(R"({"type":"auth","api_key":"sk_test_123"})");
  EXPECT_EQ(h.OnText(R"({"id":"r-1","function":"generate","params":{"prompt":"x"},"tenant_id":"someone-else"})")
                .frames.at(0),
            R"({"id":"r-1","status":"error","error":{"code":"UNAUTHORIZED","message":"Tenant ID mismatch"}})");
  EXPECT_EQ(h.OnText(R"({"id":"r-2","function":"translate","params":{},"tenant_id":"tenant1"})")
                .frames.at(0),
            R"({"id":"r-2","status":"error","error":{"code":"DISPATCH_ERROR","message":"Unknown function: translate"}})");
  // Burst 2 is used up (translate and this one): the next is limited.
  h.OnText(R"({"id":"r-3","function":"metadata","params":{},"tenant_id":"tenant1"})");
  EXPECT_EQ(h.OnText(R"({"id":"r-4","function":"health","params":{},"tenant_id":"tenant1"})")
                .frames.at(0),
            R"({"id":"r-4","status":"error","error":{"code":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded. Try again in 1 seconds."}})");
  now_ += std::chrono::seconds(2);  // one token back at 1/s
  EXPECT_NE(h.OnText(R"({"id":"r-5","function":"health","params":{},"tenant_id":"tenant1"})")
                .frames.at(0)
                .find("healthy"),
            std::string::npos);
  const std::string internal = h.OnText("{\"nope\":1}").frames.at(0);
  EXPECT_EQ(json::parse(internal).at("id").as_string(), "unknown");
  EXPECT_EQ(json::parse(internal).at("error").at("code").as_string(), "INTERNAL_ERROR");
  EXPECT_EQ(h.OnBinary().frames.at(0), R"({"error":"Binary messages not supported"})");
}

TEST_F(RealmHandlerTest, BadKeyAndTimeoutFailAuth) {
  RealmHandler bad = Make();
  bad.OnOpen();
  WsActions a = bad.OnText(R"({"type":"auth","api_key":"sk_wrong"})");
  EXPECT_EQ(a.frames.at(0), R"({"error":"Invalid API key","type":"auth_failed"})");
  ASSERT_TRUE(a.close.has_value());
  EXPECT_EQ(a.close->code, boost::beast::websocket::close_code::none);
  RealmHandler slow = Make();
  slow.OnOpen();
  WsActions t = slow.OnDeadline();
  EXPECT_EQ(t.frames.at(0),
            R"j({"error":"Authentication timeout (10 seconds)","type":"auth_failed"})j");
  EXPECT_TRUE(t.close.has_value());
}

TEST_F(RealmHandlerTest, WithoutKeysWelcomeAtOnceAndNoRateLimit) {
  options_.api_keys.clear();
  RealmHandler h = Make();
  EXPECT_EQ(h.OnOpen().frames.at(0), R"({"status":"connected","tenant_id":null,"version":"0.1.0"})");
  for (int i = 0; i < 5; ++i) {
    EXPECT_NE(h.OnText(R"({"id":"h","function":"health","params":{}})").frames.at(0).find("healthy"),
              std::string::npos);
  }
  WsActions g = h.OnText(
      R"({"id":"g","function":"generate","params":{"prompt":"p","fault":"429"}})");
  EXPECT_NE(g.frames.at(0).find("RATE_LIMIT_EXCEEDED"), std::string::npos);
  WsActions bad_tenant = h.OnText(
      R"({"id":"g","function":"generate","params":{"prompt":"p"},"tenant_id":"x"})");
  EXPECT_NE(bad_tenant.frames.at(0).find("DISPATCH_ERROR"), std::string::npos);
}

TEST(RealmApiKeysTest, ParsesPairsAndComments) {
  auto keys = ParseRealmApiKeys("sk_1:t1, sk_2 : t2\n# comment\nsk_3 t3\n\n");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->size(), 3u);
  EXPECT_EQ(keys->at("sk_2"), "t2");
  EXPECT_EQ(keys->at("sk_3"), "t3");
  EXPECT_FALSE(ParseRealmApiKeys("lonely").ok());
}

// ---------------------------------------------------------------------------
// WS chat

class WsChatHandlerTest : public testing::Test {
 protected:
  WsChatHandlerTest() : behaviour_(Config()) {
    options_.now_ms = [this] { return now_ms_; };
  }
  static BehaviourConfig Config() {
    BehaviourConfig c;
    c.length_words = 3;
    c.token_delay_seconds = 0.01;
    return c;
  }
  Behaviour behaviour_;
  WsChatOptions options_;
  int64_t now_ms_ = 1735689600001;
};

TEST_F(WsChatHandlerTest, ChatTurnWithNestedOptionsAndTools) {
  WsChatHandler h(&options_, &behaviour_, std::nullopt);
  const json::value connected = json::parse(h.OnOpen().frames.at(0));
  EXPECT_EQ(connected.at("data").at("status").as_string(), "connected");
  WsActions turn = h.OnText(
      R"({"type":"user_message","id":"U","data":{"text":"Say hello","options":{"maxTokens":2,"tokenDelayMs":7,"tools":["search"]}}})");
  ASSERT_EQ(turn.frames.size(), 1u);
  EXPECT_EQ(json::parse(turn.frames[0]).at("data").at("status").as_string(), "processing");
  std::vector<StreamStep> steps = Drain(turn.stream.get());
  ASSERT_EQ(steps.size(), 6u);  // tool_call ×2, tool_result, 2 chunks, complete
  EXPECT_EQ(json::parse(steps[0].data).at("type").as_string(), "tool_call");
  EXPECT_EQ(json::parse(steps[2].data).at("type").as_string(), "tool_result");
  const json::value c1 = json::parse(steps[4].data);
  EXPECT_EQ(c1.at("id").as_string(), "U");
  EXPECT_EQ(steps[4].at, milliseconds(7));
  const json::value done = json::parse(steps[5].data);
  EXPECT_EQ(done.at("type").as_string(), "llm_complete");
  EXPECT_EQ(done.at("data").at("fullText").as_string(),
            std::string(json::parse(steps[3].data).at("data").at("chunk").as_string()) +
                std::string(c1.at("data").at("chunk").as_string()));
  // A second user_message while streaming is ignored.
  EXPECT_TRUE(h.OnText(R"({"type":"user_message","id":"V","data":{"text":"x"}})").frames.empty());
  h.OnStreamEnd();
  WsActions history = h.OnText(R"({"type":"control","id":"C","data":{"type":"get_history"}})");
  EXPECT_EQ(json::parse(history.frames.at(0)).at("data").at("history").as_array().size(), 2u);
}

TEST_F(WsChatHandlerTest, FlattenedOptionsControlsAndErrors) {
  WsChatHandler h(&options_, &behaviour_, std::nullopt);
  h.OnOpen();
  // No conversation yet: abort answers nothing.
  EXPECT_TRUE(h.OnText(R"({"type":"control","id":"A","data":{"type":"abort"}})").frames.empty());
  WsActions turn =
      h.OnText(R"({"type":"user_message","id":"U","data":{"text":"x","maxTokens":5}})");
  EXPECT_EQ(Drain(turn.stream.get()).size(), 6u);
  WsActions abort = h.OnText(R"({"type":"control","id":"A","data":{"type":"abort"}})");
  EXPECT_TRUE(abort.cancel_stream);
  EXPECT_EQ(abort.frames.at(0),
            R"({"type":"control_response","id":"A","data":{"status":"aborted","type":"abort"},"metadata":{"timestamp":1735689600001}})");
  EXPECT_EQ(h.OnText(R"({"type":"ping","id":"P"})").frames.at(0),
            R"({"type":"pong","id":"P","metadata":{"timestamp":1735689600001}})");
  EXPECT_TRUE(h.OnText(R"({"type":"pong","id":"Q"})").frames.empty());
  auto code = [&](std::string_view text) {
    return std::string(json::parse(h.OnText(text).frames.at(0)).at("data").at("code").as_string());
  };
  EXPECT_EQ(code("this is not json"), "INVALID_MESSAGE");
  EXPECT_EQ(code(R"({"type":"typing","id":"t"})"), "UNKNOWN_MESSAGE_TYPE");
  EXPECT_EQ(code(R"({"type":"control","id":"c","data":{"type":"pause"}})"), "UNKNOWN_CONTROL");
  const json::value status = json::parse(
      h.OnText(R"({"type":"control","id":"S","data":{"type":"get_status"}})").frames.at(0));
  EXPECT_EQ(status.at("data").at("messageCount").as_int64(), 9);
  WsActions fault = h.OnText(
      R"({"type":"user_message","id":"F","data":{"text":"x","options":{"fault":"500"}}})");
  EXPECT_EQ(json::parse(fault.frames.at(1)).at("data").at("code").as_string(), "PROCESSING_ERROR");
  EXPECT_EQ(fault.stream, nullptr);
}

TEST_F(WsChatHandlerTest, HeartbeatDropsASilentConnection) {
  WsChatHandler h(&options_, &behaviour_, std::nullopt);
  h.OnOpen();
  WsActions first = h.OnDeadline();
  EXPECT_EQ(json::parse(first.frames.at(0)).at("type").as_string(), "ping");
  EXPECT_FALSE(first.drop);
  h.OnText(R"({"type":"pong","id":"x"})");
  EXPECT_FALSE(h.OnDeadline().drop);
  EXPECT_TRUE(h.OnDeadline().drop);
}

}  // namespace
}  // namespace llmload::emulator
