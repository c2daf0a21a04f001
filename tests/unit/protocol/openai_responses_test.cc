// The OpenAI Responses API on both sides: the worker's stream decoder reads
// the recorded fixture and every terminal/error event, its request body has
// the API's shape, the non-streaming response parses; the emulator's
// encoder produces a stream the decoder reads back exactly, with sequence
// numbers 0, 1, 2, ... and `event:` names equal to the data's type.

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "boost/json/parse.hpp"
#include "gtest/gtest.h"
#include "lib/protocol/openai_responses_server.h"
#include "lib/protocol/provider_stream.h"

namespace llmload::protocol {
namespace {

using llm::Provider;
using llm::StreamItem;

std::string ReadFixture(const std::string& name) {
  std::ifstream in(std::string(LLMLOAD_FIXTURES_DIR) + "/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Decoded {
  std::string text;
  int deltas = 0;
  int64_t output_tokens = -1;
  int64_t input_tokens = -1;
  int done = 0;
  int errors = 0;
  std::string error_type, error_message;
  std::vector<std::string> event_types;
  absl::Status status;
};

Decoded Decode(std::string_view body, size_t piece = 0) {
  Decoded d;
  sse::SseParser parser;
  llm::StreamDecoder decoder(Provider::kOpenAiResponses);
  auto on_item = [&](const StreamItem& it) {
    switch (it.kind) {
      case StreamItem::Kind::kContent:
        d.text += std::string(it.text);
        ++d.deltas;
        break;
      case StreamItem::Kind::kUsage:
        d.output_tokens = it.output_tokens;
        d.input_tokens = it.input_tokens;
        break;
      case StreamItem::Kind::kDone:
        ++d.done;
        break;
      case StreamItem::Kind::kError:
        ++d.errors;
        d.error_type = std::string(it.error_type);
        d.error_message = std::string(it.error_message);
        break;
    }
  };
  auto on_event = [&](const sse::SseEvent& e) {
    d.event_types.emplace_back(e.type);
    d.status.Update(decoder.OnEvent(e, on_item));
  };
  if (piece == 0) {
    d.status.Update(parser.Feed(body, on_event));
  } else {
    for (size_t i = 0; i < body.size(); i += piece) {
      d.status.Update(parser.Feed(body.substr(i, piece), on_event));
    }
  }
  return d;
}

TEST(OpenAiResponsesDecoderTest, RecordedStream) {
  for (size_t piece : {0, 1, 7, 64}) {
    const Decoded d = Decode(ReadFixture("openai-responses-stream.sse"), piece);
    ASSERT_TRUE(d.status.ok()) << d.status;
    EXPECT_EQ(d.text, "Hello world!");
    EXPECT_EQ(d.deltas, 2);  // only response.output_text.delta carries text
    EXPECT_EQ(d.output_tokens, 3);
    EXPECT_EQ(d.input_tokens, 9);
    EXPECT_EQ(d.done, 1);
    EXPECT_EQ(d.errors, 0);
    EXPECT_EQ(d.event_types.size(), 10u);
  }
}

TEST(OpenAiResponsesDecoderTest, TerminalAndErrorEvents) {
  const Decoded incomplete = Decode(
      "event: response.output_text.delta\n"
      "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"delta\":\"Hi\"}\n\n"
      "event: response.incomplete\n"
      "data: {\"type\":\"response.incomplete\",\"sequence_number\":5,\"response\":{\"status\":"
      "\"incomplete\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n");
  ASSERT_TRUE(incomplete.status.ok()) << incomplete.status;
  EXPECT_EQ(incomplete.text, "Hi");
  EXPECT_EQ(incomplete.done, 1);
  EXPECT_EQ(incomplete.output_tokens, 1);
  EXPECT_EQ(incomplete.input_tokens, 4);

  const Decoded error = Decode(
      "event: error\n"
      "data: {\"type\":\"error\",\"sequence_number\":3,\"code\":\"server_error\",\"message\":"
      "\"boom\",\"param\":null}\n\n");
  ASSERT_TRUE(error.status.ok()) << error.status;
  EXPECT_EQ(error.errors, 1);
  EXPECT_EQ(error.done, 0);
  EXPECT_EQ(error.error_type, "server_error");
  EXPECT_EQ(error.error_message, "boom");

  const Decoded failed = Decode(
      "event: response.failed\n"
      "data: {\"type\":\"response.failed\",\"sequence_number\":3,\"response\":{\"status\":"
      "\"failed\",\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\"}}}\n\n");
  EXPECT_EQ(failed.errors, 1);
  EXPECT_EQ(failed.done, 0);
  EXPECT_EQ(failed.error_type, "rate_limit_exceeded");

  // "error": null on the response events is no error; a delta without a
  // string delta is malformed; so is data that is not JSON.
  const Decoded created = Decode(
      "event: response.created\n"
      "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"error\":null},"
      "\"error\":null}\n\n");
  EXPECT_TRUE(created.status.ok());
  EXPECT_EQ(created.errors, 0);
  EXPECT_FALSE(Decode("event: response.output_text.delta\n"
                      "data: {\"type\":\"response.output_text.delta\",\"delta\":5}\n\n")
                   .status.ok());
  EXPECT_FALSE(Decode("event: response.output_text.delta\ndata: {\"type\":\n\n").status.ok());
}

TEST(OpenAiResponsesDecoderTest, RequestShapeAndPath) {
  EXPECT_EQ(llm::RequestPath(Provider::kOpenAiResponses, "m", true), "/v1/responses");
  EXPECT_EQ(llm::RequestPathBelow(Provider::kOpenAiResponses, "/openai/v1/responses", "m", true),
            "");
  EXPECT_EQ(llm::RequestPathBelow(Provider::kOpenAiResponses, "/base", "m", false),
            "/v1/responses");

  llm::RequestParams one;
  one.model = "gpt-x";
  one.prompt = "say \"hi\"";
  one.max_tokens = 20;
  auto v = boost::json::parse(llm::RequestBody(Provider::kOpenAiResponses, one));
  EXPECT_EQ(v.at("model").as_string(), "gpt-x");
  EXPECT_EQ(v.at("input").as_string(), "say \"hi\"");
  EXPECT_EQ(v.at("max_output_tokens").as_int64(), 20);
  EXPECT_TRUE(v.at("stream").as_bool());

  const llm::ChatMessage messages[] = {{"system", "Be brief."}, {"user", "Hello"}};
  llm::RequestParams conv;
  conv.model = "gpt-x";
  conv.messages = messages;
  conv.stream = false;
  v = boost::json::parse(llm::RequestBody(Provider::kOpenAiResponses, conv));
  ASSERT_EQ(v.at("input").as_array().size(), 2u);
  EXPECT_EQ(v.at("input").as_array()[0].at("role").as_string(), "system");
  EXPECT_EQ(v.at("input").as_array()[1].at("content").as_string(), "Hello");
  EXPECT_FALSE(v.as_object().contains("stream"));
  EXPECT_FALSE(v.as_object().contains("max_output_tokens"));
}

TEST(OpenAiResponsesServerTest, EncodedStreamDecodesExactly) {
  openai_responses::EventEncoder enc("resp_1", "msg_1", 1735689600, "emu");
  std::string body;
  enc.AppendHead(&body);
  enc.AppendDelta(&body, "one");
  enc.AppendDelta(&body, " two");
  enc.AppendDelta(&body, " three");
  enc.AppendTail(&body, "one two three", 5, 3);
  const Decoded d = Decode(body, 13);
  ASSERT_TRUE(d.status.ok()) << d.status;
  EXPECT_EQ(d.text, "one two three");
  EXPECT_EQ(d.deltas, 3);
  EXPECT_EQ(d.output_tokens, 3);
  EXPECT_EQ(d.input_tokens, 5);
  EXPECT_EQ(d.done, 1);
  // 4 head events, 3 deltas, 4 tail events; data.type == event name and
  // sequence numbers count from 0.
  ASSERT_EQ(d.event_types.size(), 11u);
  EXPECT_EQ(d.event_types.front(), "response.created");
  EXPECT_EQ(d.event_types.back(), "response.completed");
  sse::SseParser parser;
  int64_t expected_seq = 0;
  ASSERT_TRUE(parser
                  .Feed(body,
                        [&](const sse::SseEvent& e) {
                          auto v = boost::json::parse(e.data);
                          EXPECT_EQ(v.at("type").as_string(), e.type);
                          EXPECT_EQ(v.at("sequence_number").as_int64(), expected_seq++);
                        })
                  .ok());
  EXPECT_EQ(expected_seq, 11);

  std::string err;
  openai_responses::EventEncoder enc2("resp_2", "msg_2", 1, "emu");
  enc2.AppendError(&err, "server_error", "oops");
  const Decoded e = Decode(err);
  EXPECT_EQ(e.errors, 1);
  EXPECT_EQ(e.error_type, "server_error");
}

TEST(OpenAiResponsesServerTest, NonStreamingResponseParses) {
  const std::string body =
      openai_responses::EncodeResponse("resp_1", "msg_1", 1, "emu", "a b c d", 6, 4);
  absl::StatusOr<llm::Completion> c = llm::ParseCompletion(Provider::kOpenAiResponses, body);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->text, "a b c d");
  EXPECT_EQ(c->output_tokens, 4);
  EXPECT_EQ(c->input_tokens, 6);
  EXPECT_FALSE(llm::ParseCompletion(Provider::kOpenAiResponses, "{\"id\":\"r\"}").ok());
}

TEST(OpenAiResponsesServerTest, ParsesRequestsAndRefusesBadOnes) {
  auto r = openai_responses::ParseResponsesRequest(
      R"({"model":"m","instructions":"be brief","input":[{"role":"user","content":"one two"},)"
      R"({"role":"user","content":"three four five"}],"max_output_tokens":32,"stream":true})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model, "m");
  EXPECT_EQ(r->prompt, "three four five");
  EXPECT_EQ(r->input_tokens, 7);  // 2 instruction words + 2 + 3
  EXPECT_EQ(r->max_output_tokens, 32);
  EXPECT_TRUE(r->stream);
  auto s = openai_responses::ParseResponsesRequest(R"({"model":"m","input":"hi there"})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->input_tokens, 2);
  EXPECT_FALSE(s->stream);
  for (const char* bad : {"not json", R"({"input":"x"})", R"({"model":1,"input":"x"})",
                          R"({"model":"m"})", R"({"model":"m","input":5})",
                          R"({"model":"m","input":[]})", R"({"model":"m","input":"x","stream":1})",
                          R"({"model":"m","input":"x","max_output_tokens":0})",
                          R"({"model":"m","input":"x","max_output_tokens":"9"})"}) {
    EXPECT_FALSE(openai_responses::ParseResponsesRequest(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace llmload::protocol
