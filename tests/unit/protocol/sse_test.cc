#include "lib/protocol/sse.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace llmload::protocol::sse {
namespace {

struct Ev {
  std::string type;
  std::string data;
  std::string id;
  int64_t retry = -1;
  bool operator==(const Ev& o) const {
    return type == o.type && data == o.data && id == o.id && retry == o.retry;
  }
};

std::ostream& operator<<(std::ostream& os, const Ev& e) {
  return os << "{" << e.type << "|" << e.data << "|" << e.id << "|" << e.retry << "}";
}

// Feeds `input` split at the given offsets; returns the events (and status).
std::vector<Ev> ParseSplit(std::string_view input, const std::vector<size_t>& cuts,
                           absl::Status* status = nullptr) {
  SseParser p;
  std::vector<Ev> out;
  auto sink = [&](const SseEvent& e) {
    out.push_back(Ev{std::string(e.type), std::string(e.data), std::string(e.id),
                     e.retry_ms ? static_cast<int64_t>(*e.retry_ms) : -1});
  };
  size_t prev = 0;
  absl::Status st;
  for (size_t c : cuts) {
    st.Update(p.Feed(input.substr(prev, c - prev), sink));
    prev = c;
  }
  st.Update(p.Feed(input.substr(prev), sink));
  if (status != nullptr) {
    *status = st;
  }
  return out;
}

std::vector<Ev> Parse(std::string_view input) { return ParseSplit(input, {}); }

std::string ReadFixture(const std::string& name) {
  std::ifstream in(std::string(LLMLOAD_FIXTURES_DIR) + "/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(SseParserTest, BasicEventsAndDefaults) {
  EXPECT_EQ(Parse("data: hello\n\n"), (std::vector<Ev>{{"message", "hello", "", -1}}));
  EXPECT_EQ(Parse("event: add\ndata: 1\n\n"), (std::vector<Ev>{{"add", "1", "", -1}}));
  // One leading space is dropped, not more.
  EXPECT_EQ(Parse("data:  two\n\n"), (std::vector<Ev>{{"message", " two", "", -1}}));
  EXPECT_EQ(Parse("data:nospace\n\n"), (std::vector<Ev>{{"message", "nospace", "", -1}}));
}

TEST(SseParserTest, MultiLineDataCommentsAndUnknownFields) {
  EXPECT_EQ(Parse(": comment\ndata: a\nfoo: bar\ndata: b\n\n"),
            (std::vector<Ev>{{"message", "a\nb", "", -1}}));
  // A line without a colon is a field with an empty value.
  EXPECT_EQ(Parse("data\n\n"), (std::vector<Ev>{{"message", "", "", -1}}));
  EXPECT_EQ(Parse("data\ndata\n\n"), (std::vector<Ev>{{"message", "\n", "", -1}}));
  // Events without data are not dispatched; the type does not leak.
  EXPECT_EQ(Parse("event: x\n\ndata: y\n\n"), (std::vector<Ev>{{"message", "y", "", -1}}));
  EXPECT_TRUE(Parse(": only a comment\n\n").empty());
}

TEST(SseParserTest, IdPersistsAndRetryNeedsDigits) {
  EXPECT_EQ(Parse("id: 7\ndata: a\n\ndata: b\n\n"),
            (std::vector<Ev>{{"message", "a", "7", -1}, {"message", "b", "7", -1}}));
  EXPECT_EQ(Parse(std::string("id: a\0b\ndata: x\n\n", 17)),
            (std::vector<Ev>{{"message", "x", "", -1}}));
  EXPECT_EQ(Parse("retry: 1500\ndata: x\n\n"), (std::vector<Ev>{{"message", "x", "", 1500}}));
  EXPECT_EQ(Parse("retry: 15s\ndata: x\n\n"), (std::vector<Ev>{{"message", "x", "", -1}}));
}

TEST(SseParserTest, EveryLineEnding) {
  const std::vector<Ev> want = {{"e", "1", "", -1}, {"message", "2", "", -1}};
  EXPECT_EQ(Parse("event: e\ndata: 1\n\ndata: 2\n\n"), want);
  EXPECT_EQ(Parse("event: e\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n"), want);
  EXPECT_EQ(Parse("event: e\rdata: 1\r\rdata: 2\r\r"), want);
  EXPECT_EQ(Parse("event: e\r\ndata: 1\n\rdata: 2\r\n\n"), want);
}

TEST(SseParserTest, UnterminatedLastEventIsDropped) {
  EXPECT_EQ(Parse("data: 1\n\ndata: 2\n"), (std::vector<Ev>{{"message", "1", "", -1}}));
  EXPECT_EQ(Parse("data: 1\n\ndata: 2"), (std::vector<Ev>{{"message", "1", "", -1}}));
}

TEST(SseParserTest, LeadingBomIsSkippedOnlyAtTheStart) {
  EXPECT_EQ(Parse("\xEF\xBB\xBF" "data: x\n\n"), (std::vector<Ev>{{"message", "x", "", -1}}));
  // A BOM split over reads.
  EXPECT_EQ(ParseSplit("\xEF\xBB\xBF" "data: x\n\n", {1, 2}),
            (std::vector<Ev>{{"message", "x", "", -1}}));
  // Not a BOM: the bytes are data.
  EXPECT_EQ(Parse("\xEF" "data: x\n\n").size(), 0u);  // "\xEFdata" is an unknown field
  EXPECT_EQ(Parse("d"), std::vector<Ev>{});
  // The start of a BOM, split, then other bytes: the start is text of the
  // first line (here a line of its own, an unknown field).
  EXPECT_EQ(ParseSplit("\xEF\xBB" "\ndata: x\n\n", {1, 2}),
            (std::vector<Ev>{{"message", "x", "", -1}}));
  EXPECT_EQ(ParseSplit("\xEF\xBB" "data: x\n\n", {1, 2}).size(), 0u);
}

TEST(SseParserTest, SplitAtEveryByteBoundaryGivesTheSameEvents) {
  const std::string input =
      "\xEF\xBB\xBF: c\r\nevent: a\r\ndata: {\"x\":1}\r\nid: 9\r\n\r\n"
      "data: line1\rdata: line2\r\rretry: 20\ndata: end\n\n";
  const std::vector<Ev> whole = Parse(input);
  ASSERT_EQ(whole.size(), 3u);
  for (size_t i = 0; i <= input.size(); ++i) {
    EXPECT_EQ(ParseSplit(input, {i}), whole) << "cut at " << i;
    for (size_t j = i; j <= input.size(); j += 7) {
      EXPECT_EQ(ParseSplit(input, {i, j}), whole) << "cuts at " << i << "," << j;
    }
  }
  // One byte at a time.
  std::vector<size_t> all;
  for (size_t i = 1; i < input.size(); ++i) {
    all.push_back(i);
  }
  EXPECT_EQ(ParseSplit(input, all), whole);
}

TEST(SseParserTest, ProviderFixturesSplitAnywhere) {
  for (const char* name : {"openai-chat-stream.sse", "anthropic-messages-stream.sse",
                           "gemini-stream.sse", "gemini-stream-error.sse",
                           "openai-chat-stream-error.sse", "anthropic-messages-stream-error.sse"}) {
    const std::string body = ReadFixture(name);
    ASSERT_FALSE(body.empty()) << name;
    const std::vector<Ev> whole = Parse(body);
    EXPECT_GE(whole.size(), 2u) << name;
    for (size_t i = 0; i <= body.size(); ++i) {
      ASSERT_EQ(ParseSplit(body, {i}), whole) << name << " cut at " << i;
    }
  }
  EXPECT_EQ(Parse(ReadFixture("openai-chat-stream.sse")).size(), 7u);
  EXPECT_EQ(Parse(ReadFixture("anthropic-messages-stream.sse")).size(), 9u);
  EXPECT_EQ(Parse(ReadFixture("gemini-stream.sse")).size(), 3u);
}

TEST(SseParserTest, CapsTurnIntoErrorsNotMemory) {
  SseParser p(64, 128);
  absl::Status s = p.Feed(std::string(100, 'x'), [](const SseEvent&) {});
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  // Sticky.
  EXPECT_FALSE(p.Feed("data: ok\n\n", [](const SseEvent&) {}).ok());
  SseParser q(64, 128);
  std::string many;
  for (int i = 0; i < 10; ++i) {
    many += "data: 0123456789012345678901234567890\n";
  }
  EXPECT_EQ(q.Feed(many, [](const SseEvent&) {}).code(), absl::StatusCode::kResourceExhausted);
  q.Reset();
  int n = 0;
  EXPECT_TRUE(q.Feed("data: ok\n\n", [&](const SseEvent&) { ++n; }).ok());
  EXPECT_EQ(n, 1);
}

}  // namespace
}  // namespace llmload::protocol::sse
