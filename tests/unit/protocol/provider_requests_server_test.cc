// Request parsing and one-shot encoders of the SSE providers (server side).

#include <string>

#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "lib/protocol/anthropic_messages_server.h"
#include "lib/protocol/gemini_server.h"
#include "lib/protocol/openai_chat_server.h"

namespace llmload::protocol {
namespace {

namespace json = boost::json;

TEST(OpenAiChatServerTest, ParsesTheSdkRequest) {
  auto r = openai_server::ParseChatRequest(
      R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},)"
      R"({"role":"user","content":[{"type":"text","text":"hi there"}]}],"stream":true,)"
      R"("stream_options":{"include_usage":true},"max_tokens":7})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model, "gpt-4o-mini");
  EXPECT_EQ(r->prompt, "hi there");
  EXPECT_EQ(r->prompt_tokens, 4);
  EXPECT_EQ(r->max_tokens, 7);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
}

TEST(OpenAiChatServerTest, MaxCompletionTokensWins) {
  auto r = openai_server::ParseChatRequest(
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":3,"max_completion_tokens":5})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->max_tokens, 5);
  EXPECT_FALSE(r->stream);
}

TEST(OpenAiChatServerTest, RejectsBadBodiesWithTheApiMessages) {
  EXPECT_EQ(openai_server::ParseChatRequest("{").status().message().substr(0, 30),
            "We could not parse the JSON bo");
  EXPECT_EQ(openai_server::ParseChatRequest(R"({"messages":[]})").status().message(),
            "you must provide a model parameter");
  EXPECT_EQ(openai_server::ParseChatRequest(R"({"model":"m"})").status().message(),
            "Missing required parameter: 'messages'.");
  EXPECT_FALSE(openai_server::ParseChatRequest(
                   R"({"model":"m","messages":[{"content":"x"}],"max_tokens":0})")
                   .ok());
  EXPECT_FALSE(
      openai_server::ParseChatRequest(R"({"model":"m","messages":[{"content":"x"}],"stream":1})")
          .ok());
}

TEST(OpenAiChatServerTest, CompletionAndErrorShapes) {
  const json::value c = json::parse(
      openai_server::EncodeCompletion("id1", 5, "m", "fp", "Hi there.", "stop", 2, 2));
  EXPECT_EQ(c.at("object").as_string(), "chat.completion");
  EXPECT_EQ(c.at("choices").at(0).at("message").at("content").as_string(), "Hi there.");
  EXPECT_EQ(c.at("usage").at("total_tokens").as_int64(), 4);
  EXPECT_EQ(openai_server::EncodeError("slow down", "requests", "", "rate_limit_exceeded"),
            R"({"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}})");
  std::string e;
  openai_server::AppendStreamError(&e);
  EXPECT_EQ(json::parse(e.substr(6)).at("error").at("type").as_string(), "server_error");
}

TEST(AnthropicMessagesServerTest, ParsesAndValidates) {
  auto r = anthropic_server::ParseMessagesRequest(
      R"({"model":"claude","max_tokens":256,"system":"one two","messages":[{"role":"user","content":"hi"}],"stream":true})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->max_tokens, 256);
  EXPECT_EQ(r->input_tokens, 3);
  EXPECT_EQ(r->prompt, "hi");
  EXPECT_TRUE(r->stream);
  EXPECT_EQ(anthropic_server::ParseMessagesRequest(R"({"model":"c","messages":[]})")
                .status()
                .message(),
            "max_tokens: Field required");
  EXPECT_EQ(anthropic_server::ParseMessagesRequest(R"({"max_tokens":1,"messages":[]})")
                .status()
                .message(),
            "model: Field required");
}

TEST(AnthropicMessagesServerTest, MessageAndErrorShapes) {
  const json::value m =
      json::parse(anthropic_server::EncodeMessage("msg_1", "c", "Hi.", "end_turn", 3, 1));
  EXPECT_EQ(m.at("type").as_string(), "message");
  EXPECT_EQ(m.at("content").at(0).at("text").as_string(), "Hi.");
  EXPECT_EQ(m.at("usage").at("output_tokens").as_int64(), 1);
  EXPECT_EQ(anthropic_server::EncodeError("overloaded_error", "Overloaded", "req_1"),
            R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"})");
}

TEST(GeminiServerTest, ModelMethodFromThePath) {
  auto s = gemini_server::ParseModelMethod("gemini-2.0-flash:streamGenerateContent");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->model, "gemini-2.0-flash");
  EXPECT_EQ(s->method, gemini_server::Method::kStreamGenerateContent);
  auto g = gemini_server::ParseModelMethod("gemini-pro:generateContent");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->method, gemini_server::Method::kGenerateContent);
  EXPECT_FALSE(gemini_server::ParseModelMethod("gemini-pro:countTokens").ok());
  EXPECT_FALSE(gemini_server::ParseModelMethod(":generateContent").ok());
  EXPECT_FALSE(gemini_server::ParseModelMethod("gemini-pro").ok());
}

TEST(GeminiServerTest, ParsesContentsAndMaxOutputTokens) {
  auto r = gemini_server::ParseGenerateRequest(
      R"({"contents":[{"role":"user","parts":[{"text":"hi you"}]}],"generationConfig":{"maxOutputTokens":9}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, "hi you");
  EXPECT_EQ(r->prompt_tokens, 2);
  EXPECT_EQ(r->max_output_tokens, 9);
  // A system instruction counts towards the prompt, as the API counts it.
  r = gemini_server::ParseGenerateRequest(
      R"({"systemInstruction":{"parts":[{"text":"be brief"}]},)"
      R"("contents":[{"role":"user","parts":[{"text":"hi you"}]}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt_tokens, 4);
  EXPECT_FALSE(gemini_server::ParseGenerateRequest(R"({"contents":[]})").ok());
  EXPECT_FALSE(gemini_server::ParseGenerateRequest("nope").ok());
}

TEST(GeminiServerTest, ErrorWithRetryInfo) {
  const json::value e = json::parse(
      gemini_server::EncodeError(429, "quota", "RESOURCE_EXHAUSTED", 17));
  EXPECT_EQ(e.at("error").at("code").as_int64(), 429);
  EXPECT_EQ(e.at("error").at("details").at(0).at("retryDelay").as_string(), "17s");
  EXPECT_EQ(json::parse(gemini_server::EncodeError(500, "x", "INTERNAL")).at("error").as_object().if_contains("details"),
            nullptr);
}

}  // namespace
}  // namespace llmload::protocol
