// Realm and WS-chat server encoders and parsers against the fixtures.

#include <string>

#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "lib/protocol/realm_server.h"
#include "lib/protocol/ws_chat_server.h"

namespace llmload::protocol {
namespace {

namespace json = boost::json;

TEST(RealmServerTest, FramesMatchTheFixtures) {
  EXPECT_EQ(realm_server::EncodeAuthRequired(),
            R"({"message":"Please send authentication message with your API key","type":"auth_required"})");
  EXPECT_EQ(realm_server::EncodeAuthSuccess("tenant1"),
            R"({"tenant_id":"tenant1","type":"auth_success"})");
  EXPECT_EQ(realm_server::EncodeAuthFailed("Invalid API key"),
            R"({"error":"Invalid API key","type":"auth_failed"})");
  EXPECT_EQ(realm_server::EncodeWelcome(std::string("tenant1")),
            R"({"status":"connected","tenant_id":"tenant1","version":"0.1.0"})");
  EXPECT_EQ(realm_server::EncodeWelcome(std::nullopt),
            R"({"status":"connected","tenant_id":null,"version":"0.1.0"})");
  std::string token;
  realm_server::AppendStreamingToken(&token, "R", 12, true, "Hello ", false);
  EXPECT_EQ(token, R"({"id":"R","status":"streaming","data":{"index":12,"is_final":true,"text":"Hello "}})");
  token.clear();
  realm_server::AppendStreamingToken(&token, "R", 0, false, "The ");
  EXPECT_EQ(json::parse(token).at("data").at("token").as_string(), "The ");
  EXPECT_EQ(realm_server::EncodeGenerateDone("R", 13),
            R"({"id":"R","status":"complete","data":{"status":"complete","tokens_generated":13}})");
  EXPECT_EQ(realm_server::EncodeError("r-1", "UNAUTHORIZED", "Tenant ID mismatch"),
            R"({"id":"r-1","status":"error","error":{"code":"UNAUTHORIZED","message":"Tenant ID mismatch"}})");
  EXPECT_EQ(realm_server::EncodeComplete("c", realm_server::HealthData(0)),
            R"({"id":"c","status":"complete","data":{"status":"healthy","uptime_seconds":0,"version":"0.1.0"}})");
  const json::value meta = json::parse(realm_server::MetadataData());
  EXPECT_EQ(meta.at("functions").as_array().size(), 4u);
}

TEST(RealmServerTest, ParsesCallsAndParams) {
  auto call = realm_server::ParseFunctionCall(
      R"({"id":"b7","function":"generate","params":{"prompt":"Hello there","model":"llama","max_tokens":100,"stream":true,"token_delay_ms":5,"fault":"disconnect"},"tenant_id":"tenant1"})");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->id, "b7");
  EXPECT_EQ(call->function, "generate");
  EXPECT_EQ(call->tenant_id, "tenant1");
  auto p = realm_server::ParseGenerateParams(call->params);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->prompt, "Hello there");
  EXPECT_EQ(p->max_tokens, 100);
  EXPECT_TRUE(p->stream);
  EXPECT_EQ(p->token_delay_ms, 5.0);
  EXPECT_EQ(p->fault, "disconnect");

  EXPECT_EQ(realm_server::ParseFunctionCall(R"({"function":"x","params":{}})").status().message(),
            "missing field `id`");
  EXPECT_EQ(realm_server::ParseFunctionCall(R"({"id":"1","function":"x"})").status().message(),
            "missing field `params`");
  EXPECT_FALSE(realm_server::ParseFunctionCall("not json").ok());
  EXPECT_EQ(realm_server::ParseGenerateParams(json::object()).status().message(),
            "missing field `prompt`");
  EXPECT_TRUE(realm_server::ParseAuth(R"({"type":"auth","api_key":"sk"})").ok());
  EXPECT_FALSE(realm_server::ParseAuth(R"({"type":"hello","api_key":"sk"})").ok());
  EXPECT_TRUE(realm_server::IsValidTenantId("tenant_1-a"));
  EXPECT_FALSE(realm_server::IsValidTenantId("ab"));
  EXPECT_FALSE(realm_server::IsValidTenantId("has space"));
}

TEST(WsChatServerTest, ParsesNestedAndFlattenedOptions) {
  auto nested = ws_chat_server::ParseClientMessage(
      R"({"type":"user_message","id":"U","data":{"text":"Say hello","options":{"temperature":0.7,"maxTokens":256,"tokenDelayMs":3,"tools":["search",{"name":"calc"}],"fault":"500"}}})");
  ASSERT_TRUE(nested.ok());
  EXPECT_EQ(nested->type, "user_message");
  EXPECT_EQ(nested->text, "Say hello");
  EXPECT_EQ(nested->options.max_tokens, 256);
  EXPECT_EQ(nested->options.token_delay_ms, 3.0);
  EXPECT_EQ(nested->options.tools, (std::vector<std::string>{"search", "calc"}));
  EXPECT_EQ(nested->options.fault, "500");
  auto flat = ws_chat_server::ParseClientMessage(
      R"({"type":"user_message","id":"U","data":{"text":"x","temperature":0.7,"maxTokens":5}})");
  ASSERT_TRUE(flat.ok());
  EXPECT_EQ(flat->options.max_tokens, 5);
  auto control = ws_chat_server::ParseClientMessage(
      R"({"type":"control","id":"C","data":{"type":"get_status"}})");
  ASSERT_TRUE(control.ok());
  EXPECT_EQ(control->control_type, "get_status");
  EXPECT_FALSE(ws_chat_server::ParseClientMessage("this is not json").ok());
  EXPECT_FALSE(ws_chat_server::ParseClientMessage("[1]").ok());
}

TEST(WsChatServerTest, EnvelopesInTheServersKeyOrder) {
  ws_chat_server::Meta meta{1735689600400, "client_1", "session_1"};
  std::string chunk;
  ws_chat_server::AppendChunk(&chunk, "msg_1", "Hello", meta);
  EXPECT_EQ(chunk,
            R"({"type":"llm_chunk","id":"msg_1","data":{"chunk":"Hello","isComplete":false},"metadata":{"timestamp":1735689600400,"clientId":"client_1","sessionId":"session_1"}})");
  EXPECT_EQ(ws_chat_server::EncodePong("p1", 5), R"({"type":"pong","id":"p1","metadata":{"timestamp":5}})");
  EXPECT_EQ(ws_chat_server::EncodeError("e", "UNKNOWN_CONTROL", "Unknown control type: pause", 7),
            R"({"type":"error","id":"e","data":{"code":"UNKNOWN_CONTROL","message":"Unknown control type: pause","recoverable":true},"metadata":{"timestamp":7}})");
  const json::value done = json::parse(
      ws_chat_server::EncodeComplete("U", "Hello there!", 2, 3, meta));
  EXPECT_EQ(done.at("type").as_string(), "llm_complete");
  EXPECT_EQ(done.at("data").at("fullText").as_string(), "Hello there!");
  EXPECT_EQ(done.at("data").at("tokenUsage").at("totalTokens").as_int64(), 5);
  const json::value connected =
      json::parse(ws_chat_server::EncodeConnected("m", "client_1", "session_1", 9));
  EXPECT_EQ(connected.at("data").at("status").as_string(), "connected");
  EXPECT_EQ(connected.at("data").at("message").as_string(), "Connected to chat server");
}

}  // namespace
}  // namespace llmload::protocol
