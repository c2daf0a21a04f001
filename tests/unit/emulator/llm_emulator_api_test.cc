#include "services/emulator/llm_emulator_api.h"

#include <string>
#include <vector>

#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "lib/protocol/jwt.h"
#include "services/emulator/lorem.h"

namespace llmload::emulator {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;

constexpr char kSessionId[] = "9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21";
constexpr int64_t kNow = 1795000000;

class FakePublisher : public RunPublisher {
 public:
  bool StartRun(std::string_view session_id, ResponsePlan plan) override {
    const std::chrono::nanoseconds delay = plan.OffsetOf(1) - plan.OffsetOf(0);
    calls.push_back(Call{std::string(session_id), plan.tokens, delay, plan});
    return subscribed;
  }
  struct Call {
    std::string session_id;
    std::vector<std::string> tokens;
    std::chrono::nanoseconds delay;
    ResponsePlan plan;
  };
  std::vector<Call> calls;
  bool subscribed = true;
};

class LlmEmulatorApiTest : public testing::Test {
 protected:
  LlmEmulatorApiTest() : api_(Options(), &publisher_) {}

  static LlmEmulatorApiOptions Options() {
    LlmEmulatorApiOptions o;
    o.jwt_secret = "super-secret-jwt-key";
    o.token_ttl_seconds = 3600;
    o.default_length_words = 100;
    o.default_token_delay_seconds = 0.01;
    o.seed = 42;
    o.now = [] { return absl::FromUnixSeconds(kNow); };
    o.new_session_id = [] { return std::string(kSessionId); };
    return o;
  }

  HttpResponse Post(std::string target, std::string body) {
    HttpRequest r(http::verb::post, target, 11);
    r.set(http::field::content_type, "application/json");
    r.body() = std::move(body);
    r.prepare_payload();
    return api_.Run(r);
  }

  FakePublisher publisher_;
  LlmEmulatorApi api_;
};

TEST_F(LlmEmulatorApiTest, Health) {
  HttpResponse r = api_.Health(HttpRequest(http::verb::get, "/health", 11));
  EXPECT_EQ(r.message.result(), http::status::ok);
  EXPECT_EQ(r.message.body(), "{\"status\":\"ok\"}");
}

TEST_F(LlmEmulatorApiTest, CreateSessionIssuesAVerifiableToken) {
  HttpResponse r = api_.CreateSession(HttpRequest(http::verb::post, "/api/sessions/create", 11));
  ASSERT_EQ(r.message.result(), http::status::ok);
  EXPECT_EQ(r.message[http::field::content_type], "application/json");
  const json::value v = json::parse(r.message.body());
  EXPECT_EQ(v.at("session_id").as_string(), kSessionId);
  // Key order as in llm-emulator-rest.jsonl.
  EXPECT_EQ(r.message.body().rfind("{\"session_id\":", 0), 0u);
  const std::string token(v.at("token").as_string());
  absl::StatusOr<protocol::jwt::Claims> claims =
      protocol::jwt::VerifyHs256(token, "super-secret-jwt-key");
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->sub, kSessionId);
  EXPECT_EQ(claims->exp, kNow + 3600);
  EXPECT_EQ(claims->channels, std::vector<std::string>{std::string("session:") + kSessionId});
  EXPECT_FALSE(protocol::jwt::VerifyHs256(token, "other").ok());
}

TEST_F(LlmEmulatorApiTest, RunAnswersTextThenPublishesItAfterSending) {
  HttpResponse r = Post("/api/run", std::string("{\"session_id\":\"") + kSessionId +
                                        "\",\"question\":\"Question 1 from client 0\"}");
  ASSERT_EQ(r.message.result(), http::status::ok);
  const LoremText expected = GenerateLorem(42, "Question 1 from client 0", 100);
  EXPECT_EQ(r.message.body(), "{\"response\":\"" + expected.text + "\"}");
  // Nothing is published before the response is on the wire.
  EXPECT_TRUE(publisher_.calls.empty());
  ASSERT_TRUE(r.after_send);
  std::move(r.after_send)();
  ASSERT_EQ(publisher_.calls.size(), 1u);
  EXPECT_EQ(publisher_.calls[0].session_id, kSessionId);
  EXPECT_EQ(publisher_.calls[0].tokens, expected.tokens);
  EXPECT_EQ(publisher_.calls[0].delay, std::chrono::milliseconds(10));
}

TEST_F(LlmEmulatorApiTest, RunExtensionFieldsOverrideDefaults) {
  HttpResponse r = Post("/api/run",
                        "{\"session_id\":\"s\",\"question\":\"q\",\"length_words\":50,"
                        "\"token_delay_seconds\":0.005}");
  ASSERT_EQ(r.message.result(), http::status::ok) << r.message.body();
  std::move(r.after_send)();
  ASSERT_EQ(publisher_.calls.size(), 1u);
  EXPECT_EQ(publisher_.calls[0].tokens.size(), 50u);
  EXPECT_EQ(publisher_.calls[0].delay, std::chrono::microseconds(5000));
  const std::string text(json::parse(r.message.body()).at("response").as_string());
  EXPECT_EQ(text, GenerateLorem(42, "q", 50).text);
}

TEST_F(LlmEmulatorApiTest, RunAcceptsIntegralFloatsZeroDelayAndNulls) {
  HttpResponse r = Post("/api/run",
                        "{\"session_id\":\"s\",\"question\":\"q\",\"length_words\":3.0,"
                        "\"token_delay_seconds\":0}");
  ASSERT_EQ(r.message.result(), http::status::ok) << r.message.body();
  std::move(r.after_send)();
  EXPECT_EQ(publisher_.calls.back().tokens.size(), 3u);
  EXPECT_EQ(publisher_.calls.back().delay, std::chrono::nanoseconds(0));
  HttpResponse n = Post("/api/run",
                        "{\"session_id\":\"s\",\"question\":\"q\",\"length_words\":null,"
                        "\"token_delay_seconds\":null}");
  ASSERT_EQ(n.message.result(), http::status::ok) << n.message.body();
  std::move(n.after_send)();
  EXPECT_EQ(publisher_.calls.back().tokens.size(), 100u);
}

TEST_F(LlmEmulatorApiTest, RunWithoutSubscriberStillAnswers200) {
  publisher_.subscribed = false;
  HttpResponse r = Post("/api/run", "{\"session_id\":\"unknown\",\"question\":\"q\"}");
  EXPECT_EQ(r.message.result(), http::status::ok);
  std::move(r.after_send)();
  EXPECT_EQ(publisher_.calls.size(), 1u);
}

TEST_F(LlmEmulatorApiTest, MissingQuestionMatchesFixtureByteForByte) {
  HttpResponse r = Post("/api/run", std::string("{\"session_id\":\"") + kSessionId + "\"}");
  EXPECT_EQ(r.message.result(), http::status::unprocessable_entity);
  EXPECT_EQ(r.message.body(),
            "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"question\"],\"msg\":\"Field "
            "required\",\"input\":{\"session_id\":\"9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21\"}}]}");
  EXPECT_EQ(r.message[http::field::content_length], "142");
  EXPECT_FALSE(r.after_send);
}

struct InvalidCase {
  const char* body;
  const char* expected;  // the exact 422 body
};

TEST_F(LlmEmulatorApiTest, RejectsInvalidBodiesWithPydanticErrors) {
  const InvalidCase cases[] = {
      {"{}",
       "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"session_id\"],\"msg\":\"Field "
       "required\",\"input\":{}},{\"type\":\"missing\",\"loc\":[\"body\",\"question\"],\"msg\":"
       "\"Field required\",\"input\":{}}]}"},
      {"{\"session_id\":1,\"question\":\"q\"}",
       "{\"detail\":[{\"type\":\"string_type\",\"loc\":[\"body\",\"session_id\"],\"msg\":\"Input "
       "should be a valid string\",\"input\":1}]}"},
      {"",
       "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\"],\"msg\":\"Field required\","
       "\"input\":null}]}"},
      {"[1]",
       "{\"detail\":[{\"type\":\"model_attributes_type\",\"loc\":[\"body\"],\"msg\":\"Input "
       "should be a valid dictionary or object to extract fields from\",\"input\":[1]}]}"},
      {"{\"session_id\":\"s\",\"question\":\"q\",\"length_words\":0}",
       "{\"detail\":[{\"type\":\"greater_than_equal\",\"loc\":[\"body\",\"length_words\"],"
       "\"msg\":\"Input should be greater than or equal to 1\",\"input\":0,\"ctx\":{\"ge\":1}}]}"},
      {"{\"session_id\":\"s\",\"question\":\"q\",\"length_words\":100001}",
       "{\"detail\":[{\"type\":\"less_than_equal\",\"loc\":[\"body\",\"length_words\"],"
       "\"msg\":\"Input should be less than or equal to 100000\",\"input\":100001,\"ctx\":{"
       "\"le\":100000}}]}"},
      {"{\"session_id\":\"s\",\"question\":\"q\",\"length_words\":2.5}",
       "{\"detail\":[{\"type\":\"int_from_float\",\"loc\":[\"body\",\"length_words\"],\"msg\":"
       "\"Input should be a valid integer, got a number with a fractional part\",\"input\":2.5E0}"
       "]}"},
      {"{\"session_id\":\"s\",\"question\":\"q\",\"length_words\":\"5\"}",
       "{\"detail\":[{\"type\":\"int_type\",\"loc\":[\"body\",\"length_words\"],\"msg\":\"Input "
       "should be a valid integer\",\"input\":\"5\"}]}"},
      {"{\"session_id\":\"s\",\"question\":\"q\",\"token_delay_seconds\":-1}",
       "{\"detail\":[{\"type\":\"greater_than_equal\",\"loc\":[\"body\",\"token_delay_seconds\"],"
       "\"msg\":\"Input should be greater than or equal to 0\",\"input\":-1,\"ctx\":{\"ge\":0}}]}"},
      {"{\"session_id\":\"s\",\"question\":\"q\",\"token_delay_seconds\":61}",
       "{\"detail\":[{\"type\":\"less_than_equal\",\"loc\":[\"body\",\"token_delay_seconds\"],"
       "\"msg\":\"Input should be less than or equal to 60\",\"input\":61,\"ctx\":{\"le\":60}}]}"},
      {"{\"session_id\":\"s\",\"question\":\"q\",\"token_delay_seconds\":true}",
       "{\"detail\":[{\"type\":\"float_type\",\"loc\":[\"body\",\"token_delay_seconds\"],\"msg\":"
       "\"Input should be a valid number\",\"input\":true}]}"},
  };
  for (const InvalidCase& c : cases) {
    HttpResponse r = Post("/api/run", c.body);
    EXPECT_EQ(r.message.result(), http::status::unprocessable_entity) << c.body;
    EXPECT_EQ(r.message.body(), c.expected) << c.body;
  }
  EXPECT_TRUE(publisher_.calls.empty());
}

TEST_F(LlmEmulatorApiTest, RejectsMalformedJson) {
  HttpResponse r = Post("/api/run", "{\"session_id\":");
  EXPECT_EQ(r.message.result(), http::status::unprocessable_entity);
  const json::value v = json::parse(r.message.body());
  const json::object& e = v.at("detail").as_array().at(0).as_object();
  EXPECT_EQ(e.at("type").as_string(), "json_invalid");
  EXPECT_EQ(e.at("loc").as_array().at(0).as_string(), "body");
  EXPECT_EQ(e.at("msg").as_string(), "JSON decode error");
}

TEST_F(LlmEmulatorApiTest, DeleteSessionAnswersClosed) {
  HttpResponse r = api_.DeleteSession(HttpRequest(http::verb::delete_, "/api/sessions/x", 11), "x");
  EXPECT_EQ(r.message.result(), http::status::ok);
  EXPECT_EQ(r.message.body(), "{\"status\":\"closed\"}");
}

TEST_F(LlmEmulatorApiTest, RegistersItsRoutes) {
  Router router;
  api_.RegisterRoutes(&router);
  EXPECT_EQ(router.Dispatch(HttpRequest(http::verb::get, "/health", 11)).message.body(),
            "{\"status\":\"ok\"}");
  EXPECT_EQ(router.Dispatch(HttpRequest(http::verb::delete_, "/api/sessions/abc", 11)).message.body(),
            "{\"status\":\"closed\"}");
  EXPECT_EQ(router.Dispatch(HttpRequest(http::verb::get, "/api/run", 11)).message.result(),
            http::status::method_not_allowed);
  EXPECT_EQ(router.Dispatch(HttpRequest(http::verb::get, "/docs", 11)).message.result(),
            http::status::not_found);
}

}  // namespace
}  // namespace llmload::emulator
