// The emulator's SSE output for every provider, read back by a standard
// (HTML spec) SSE parser fed the bytes whole, split at every byte boundary,
// and one byte at a time: the events must be identical and every data
// payload valid JSON (except OpenAI's [DONE]).

#include "lib/protocol/sse_encode.h"

#include <string>
#include <vector>

#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "lib/protocol/anthropic_messages_server.h"
#include "lib/protocol/gemini_server.h"
#include "lib/protocol/openai_chat_server.h"

namespace llmload::protocol {
namespace {

struct Event {
  std::string event;
  std::string data;
  bool operator==(const Event&) const = default;
};

// A line-based SSE parser per the HTML standard: CRLF, LF or CR end a
// line; a blank line dispatches; "field: value" drops one leading space;
// comments and unknown fields are ignored; an unterminated event is dropped.
class SseReader {
 public:
  void Feed(std::string_view bytes) {
    for (char c : bytes) {
      if (after_cr_ && c == '\n') {
        after_cr_ = false;
        continue;
      }
      after_cr_ = false;
      if (c == '\r' || c == '\n') {
        after_cr_ = c == '\r';
        Line(line_);
        line_.clear();
      } else {
        line_.push_back(c);
      }
    }
  }
  const std::vector<Event>& events() const { return events_; }

 private:
  void Line(const std::string& line) {
    if (line.empty()) {
      if (has_data_) {
        if (!data_.empty() && data_.back() == '\n') {
          data_.pop_back();
        }
        events_.push_back(Event{event_, data_});
      }
      event_.clear();
      data_.clear();
      has_data_ = false;
      return;
    }
    if (line[0] == ':') {
      return;
    }
    const size_t colon = line.find(':');
    std::string field = line.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') {
      value.erase(0, 1);
    }
    if (field == "event") {
      event_ = value;
    } else if (field == "data") {
      data_ += value;
      data_.push_back('\n');
      has_data_ = true;
    }
  }

  std::string line_;
  bool after_cr_ = false;
  std::string event_;
  std::string data_;
  bool has_data_ = false;
  std::vector<Event> events_;
};

std::vector<Event> ParseWhole(std::string_view body) {
  SseReader r;
  r.Feed(body);
  return r.events();
}

// Every split point, and byte by byte, gives the same events.
void ExpectSplitInvariant(const std::string& body, const std::vector<Event>& want) {
  for (size_t k = 0; k <= body.size(); ++k) {
    SseReader r;
    r.Feed(std::string_view(body).substr(0, k));
    r.Feed(std::string_view(body).substr(k));
    ASSERT_EQ(r.events(), want) << "split at byte " << k;
  }
  SseReader bytewise;
  for (char c : body) {
    bytewise.Feed(std::string_view(&c, 1));
  }
  EXPECT_EQ(bytewise.events(), want);
}

void ExpectJson(const std::vector<Event>& events) {
  for (const Event& e : events) {
    if (e.data == "[DONE]") {
      continue;
    }
    boost::system::error_code ec;
    boost::json::parse(e.data, ec);
    EXPECT_FALSE(ec) << e.data;
  }
}

TEST(SseEncodeTest, EventLineThenDataLineThenBlankLine) {
  std::string out;
  sse::AppendEvent(&out, "ping", "{\"type\": \"ping\"}");
  EXPECT_EQ(out, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
  out.clear();
  sse::AppendEvent(&out, "", "{}", true);
  EXPECT_EQ(out, "data: {}\r\n\r\n");
}

TEST(SseEncodeTest, OpenAiStreamSurvivesEverySplit) {
  openai_server::ChunkEncoder enc("chatcmpl-1", 1735689600, "gpt-4o-mini", "fp_x", true);
  std::string body;
  enc.AppendRole(&body);
  enc.AppendContent(&body, "Hello");
  enc.AppendContent(&body, " w\"orld\n");
  enc.AppendFinish(&body, "stop");
  enc.AppendUsage(&body, 9, 2);
  openai_server::AppendDone(&body);
  const std::vector<Event> events = ParseWhole(body);
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events.back().data, "[DONE]");
  for (const Event& e : events) {
    EXPECT_EQ(e.event, "");
  }
  ExpectJson(events);
  const auto chunk = boost::json::parse(events[2].data);
  EXPECT_EQ(chunk.at("choices").at(0).at("delta").at("content").as_string(), " w\"orld\n");
  EXPECT_TRUE(chunk.at("usage").is_null());
  EXPECT_EQ(boost::json::parse(events[4].data).at("usage").at("total_tokens").as_int64(), 11);
  EXPECT_EQ(events[1].data.rfind("{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
                                 "\"created\":1735689600,\"model\":\"gpt-4o-mini\","
                                 "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_x\","
                                 "\"choices\":[",
                                 0),
            0u);
  ExpectSplitInvariant(body, events);
}

TEST(SseEncodeTest, AnthropicStreamSurvivesEverySplit) {
  namespace an = anthropic_server;
  std::string body;
  an::AppendMessageStart(&body, "msg_1", "claude", 12);
  an::AppendContentBlockStart(&body, 0);
  an::AppendPing(&body);
  an::AppendTextDelta(&body, 0, "Hello");
  an::AppendTextDelta(&body, 0, " world");
  an::AppendContentBlockStop(&body, 0);
  an::AppendMessageDelta(&body, "end_turn", 2);
  an::AppendMessageStop(&body);
  const std::vector<Event> events = ParseWhole(body);
  const std::vector<std::string> names = {"message_start",       "content_block_start",
                                          "ping",                "content_block_delta",
                                          "content_block_delta", "content_block_stop",
                                          "message_delta",       "message_stop"};
  ASSERT_EQ(events.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(events[i].event, names[i]);
    EXPECT_EQ(boost::json::parse(events[i].data).at("type").as_string(), names[i]);
  }
  EXPECT_EQ(boost::json::parse(events[6].data).at("usage").at("output_tokens").as_int64(), 2);
  ExpectSplitInvariant(body, events);

  std::string error;
  an::AppendErrorEvent(&error, "overloaded_error", "Overloaded");
  EXPECT_EQ(error,
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
            "\"message\":\"Overloaded\"}}\n\n");
}

TEST(SseEncodeTest, GeminiCrlfAndLfStreamsSurviveEverySplit) {
  namespace gm = gemini_server;
  gm::ChunkContext ctx{"gemini-2.0-flash", "resp1", 5};
  for (bool crlf : {true, false}) {
    std::string body;
    gm::AppendChunkEvent(&body, ctx, "Hello", "", 2, crlf);
    gm::AppendChunkEvent(&body, ctx, " world", "STOP", 2, crlf);
    EXPECT_EQ(body.find(crlf ? "\n\n" : "\r"), std::string::npos);
    const std::vector<Event> events = ParseWhole(body);
    ASSERT_EQ(events.size(), 2u);
    ExpectJson(events);
    const auto last = boost::json::parse(events[1].data);
    EXPECT_EQ(last.at("candidates").at(0).at("finishReason").as_string(), "STOP");
    EXPECT_EQ(last.at("usageMetadata").at("candidatesTokenCount").as_int64(), 2);
    EXPECT_EQ(last.at("usageMetadata").at("totalTokenCount").as_int64(), 7);
    EXPECT_EQ(boost::json::parse(events[0].data).at("usageMetadata").as_object().if_contains("candidatesTokenCount"),
              nullptr);
    ExpectSplitInvariant(body, events);
  }
  std::string error;
  gm::AppendStreamError(&error, true);
  EXPECT_EQ(boost::json::parse(ParseWhole(error).at(0).data).at("error").at("code").as_int64(),
            503);
}

}  // namespace
}  // namespace llmload::protocol
