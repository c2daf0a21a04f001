// WS_CHAT tools on the client side: options.tools in the request, and the
// tool_call / tool_result frames (as the emulator encodes them and with
// missing or wrongly typed fields) parsed into their own events.

#include <string>
#include <vector>

#include "boost/json/parse.hpp"
#include "gtest/gtest.h"
#include "lib/protocol/ws_chat_server.h"
#include "lib/protocol/ws_llm_client.h"

namespace llmload::protocol::wsllm {
namespace {

TEST(WsChatToolsTest, RequestCarriesOptionsTools) {
  const std::vector<std::string> tools = {"search", "calc"};
  RequestParams p;
  p.id = "r1";
  p.prompt = "hi";
  p.tools = tools;
  auto chat = boost::json::parse(WsLlmClient(Dialect::kWsChat).EncodeRequest(p));
  const auto& sent = chat.at("data").at("options").at("tools").as_array();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].as_string(), "search");
  EXPECT_EQ(sent[1].as_string(), "calc");
  p.max_tokens = 4;
  p.token_delay_ms = 1;
  chat = boost::json::parse(WsLlmClient(Dialect::kWsChat).EncodeRequest(p));
  EXPECT_EQ(chat.at("data").at("options").at("tools").as_array().size(), 2u);
  EXPECT_EQ(chat.at("data").at("options").at("maxTokens").as_int64(), 4);
  // No tools: no key; the server parses what the client sends.
  p.tools = {};
  chat = boost::json::parse(WsLlmClient(Dialect::kWsChat).EncodeRequest(p));
  EXPECT_FALSE(chat.at("data").at("options").as_object().contains("tools"));
}

TEST(WsChatToolsTest, ToolFramesAreTheirOwnEvents) {
  const ws_chat_server::Meta meta{1735689600000, "c1", "s1"};
  const std::string call =
      ws_chat_server::EncodeToolCall("m1", "call_7", "search", "start", meta);
  const std::string result =
      ws_chat_server::EncodeToolResult("m1", "call_7", "search", R"({"ok":true})", meta);
  WsLlmClient c(Dialect::kWsChat);
  std::vector<WsEvent::Kind> kinds;
  std::vector<std::string> ids, names, statuses;
  for (const std::string& frame : {call, result}) {
    ASSERT_TRUE(c.Parse(frame, [&](const WsEvent& e) {
                   kinds.push_back(e.kind);
                   ids.emplace_back(e.tool_call_id);
                   names.emplace_back(e.tool_name);
                   statuses.emplace_back(e.tool_status);
                 }).ok());
  }
  ASSERT_EQ(kinds.size(), 2u);
  EXPECT_EQ(kinds[0], WsEvent::Kind::kToolCall);
  EXPECT_EQ(kinds[1], WsEvent::Kind::kToolResult);
  EXPECT_EQ(ids, (std::vector<std::string>{"call_7", "call_7"}));
  EXPECT_EQ(names, (std::vector<std::string>{"search", "search"}));
  EXPECT_EQ(statuses[0], "start");

  // Wrong types are read as absent, never as a crash or an error.
  WsEvent seen;
  ASSERT_TRUE(c.Parse(R"({"type":"tool_call","id":"m1","data":{"toolCallId":7,"toolName":null}})",
                      [&](const WsEvent& e) { seen = e; })
                  .ok());
  EXPECT_EQ(seen.kind, WsEvent::Kind::kToolCall);
  EXPECT_TRUE(seen.tool_call_id.empty());
  // Realm has no tool frames.
  WsLlmClient realm(Dialect::kRealm);
  ASSERT_TRUE(realm.Parse(call, [&](const WsEvent& e) { seen = e; }).ok());
  EXPECT_NE(seen.kind, WsEvent::Kind::kToolCall);
}

}  // namespace
}  // namespace llmload::protocol::wsllm
