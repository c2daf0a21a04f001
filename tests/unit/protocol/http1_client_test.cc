#include "lib/protocol/http1_client.h"

#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace llmload::protocol::http1 {
namespace {

// Records every event; OnBody returns false on call number `stop_at_body`.
class RecordingSink final : public ResponseSink {
 public:
  void OnHead(const ResponseHead& head) override {
    ++heads;
    last_head = head;
  }
  bool OnBody(std::string_view bytes) override {
    EXPECT_EQ(completes, 0) << "body after OnComplete";
    EXPECT_FALSE(bytes.empty()) << "empty body piece";
    body.append(bytes);
    return ++body_calls != stop_at_body;
  }
  void OnComplete() override { ++completes; }

  int heads = 0;
  ResponseHead last_head;
  std::string body;
  int body_calls = 0;
  int completes = 0;
  int stop_at_body = -1;
};

// What a run through the reader produced.
struct Outcome {
  int heads = 0;
  int status = 0;
  bool keep_alive = false;
  std::string body;
  int completes = 0;
  size_t consumed = 0;
  absl::Status error;

  bool operator==(const Outcome& o) const {
    return heads == o.heads && status == o.status && keep_alive == o.keep_alive && body == o.body &&
           completes == o.completes && consumed == o.consumed && error.code() == o.error.code();
  }
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  return os << "{heads=" << o.heads << " status=" << o.status << " keep_alive=" << o.keep_alive
            << " body=\"" << o.body << "\" completes=" << o.completes << " consumed=" << o.consumed
            << " error=" << o.error << "}";
}

// Feeds `input` cut at `cuts` (increasing offsets), stopping early when the
// reader consumes less than a piece; then reports EOF when `eof`.
Outcome Drive(std::string_view input, const std::vector<size_t>& cuts, bool eof,
              size_t max_head = 16 * 1024) {
  ResponseReader reader(max_head);
  RecordingSink sink;
  Outcome out;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  bool stopped = false;
  for (size_t end : ends) {
    const std::string_view piece = input.substr(from, end - from);
    from = end;
    absl::StatusOr<size_t> used = reader.Feed(piece, sink);
    if (!used.ok()) {
      out.error = used.status();
      stopped = true;
      break;
    }
    EXPECT_LE(*used, piece.size());
    out.consumed += *used;
    if (*used < piece.size()) {
      stopped = true;
      break;
    }
  }
  if (eof && !stopped) {
    out.error = reader.OnEof(sink);
  }
  out.heads = sink.heads;
  out.status = sink.last_head.status;
  out.keep_alive = sink.last_head.keep_alive;
  out.body = sink.body;
  out.completes = sink.completes;
  return out;
}

Outcome RunWhole(std::string_view input, bool eof = false) { return Drive(input, {}, eof); }

Outcome Expected(int status, bool keep_alive, std::string body, size_t consumed) {
  Outcome o;
  o.heads = 1;
  o.status = status;
  o.keep_alive = keep_alive;
  o.body = std::move(body);
  o.completes = 1;
  o.consumed = consumed;
  return o;
}

struct SplitCase {
  const char* name;
  std::string input;
  bool eof;
  Outcome expected;
};

std::vector<SplitCase> SplitCases() {
  const std::string length =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 11\r\n\r\n"
      "hello world";
  const std::string chunked =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n6 ; x=\"y\"\r\n world\r\na\r\n0123456789\r\n"
      "0\r\nX-Trailer: yes\r\nY:z\r\n\r\n";
  const std::string until_close =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\n\ndata: b\n\n";
  const std::string interim =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  const std::string no_content = "HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n";
  return {
      {"Length", length, false, Expected(200, true, "hello world", length.size())},
      {"Chunked", chunked, false, Expected(200, true, "hello world0123456789", chunked.size())},
      {"UntilClose", until_close, true,
       Expected(200, false, "data: a\n\ndata: b\n\n", until_close.size())},
      {"Interim", interim, false, Expected(200, true, "ok", interim.size())},
      {"NoContent", no_content, false, Expected(204, true, "", no_content.size())},
  };
}

TEST(Http1SplitTest, WholeInputGivesTheExpectedEvents) {
  for (const SplitCase& c : SplitCases()) {
    EXPECT_EQ(Drive(c.input, {}, c.eof), c.expected) << c.name;
  }
}

TEST(Http1SplitTest, EveryTwoPieceSplitGivesTheSameEvents) {
  for (const SplitCase& c : SplitCases()) {
    for (size_t cut = 0; cut <= c.input.size(); ++cut) {
      EXPECT_EQ(Drive(c.input, {cut}, c.eof), c.expected) << c.name << " cut at " << cut;
    }
  }
}

TEST(Http1SplitTest, OneByteAtATimeGivesTheSameEvents) {
  for (const SplitCase& c : SplitCases()) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < c.input.size(); ++i) {
      cuts.push_back(i);
    }
    EXPECT_EQ(Drive(c.input, cuts, c.eof), c.expected) << c.name;
  }
}

TEST(Http1SplitTest, EveryThreePieceSplitOfChunkedGivesTheSameEvents) {
  const SplitCase c = SplitCases()[1];
  for (size_t a = 0; a <= c.input.size(); ++a) {
    for (size_t b = a; b <= c.input.size(); ++b) {
      ASSERT_EQ(Drive(c.input, {a, b}, c.eof), c.expected) << "cuts " << a << ", " << b;
    }
  }
}

TEST(Http1ResponseReaderTest, HeadIsBufferedOnlyUntilParsed) {
  ResponseReader reader;
  RecordingSink sink;
  EXPECT_FALSE(reader.started());
  ASSERT_TRUE(reader.Feed("HTTP/1.1 200 OK\r\nContent-Le", sink).ok());
  EXPECT_TRUE(reader.started());
  EXPECT_EQ(reader.buffered(), 27u);
  absl::StatusOr<size_t> used = reader.Feed("ngth: 4\r\n\r\nab", sink);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, 13u);
  EXPECT_EQ(reader.buffered(), 0u);
  EXPECT_EQ(sink.last_head.head_bytes, 38u);
  EXPECT_FALSE(reader.complete());
  ASSERT_TRUE(reader.Feed("cd", sink).ok());
  EXPECT_TRUE(reader.complete());
  EXPECT_EQ(sink.body, "abcd");
  reader.Reset();
  EXPECT_FALSE(reader.started());
  EXPECT_FALSE(reader.complete());
}

TEST(Http1ResponseReaderTest, ReaderStaysSmall) {
  // The worker keeps one reader per open stream.
  EXPECT_LE(sizeof(ResponseReader), 96u);
}

TEST(Http1ResponseReaderTest, BackToBackResponsesInOneFeed) {
  const std::string first =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  const std::string second = "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nxyz";
  const std::string both = first + second;
  ResponseReader reader;
  RecordingSink a;
  absl::StatusOr<size_t> used = reader.Feed(both, a);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, first.size());
  EXPECT_TRUE(reader.complete());
  EXPECT_EQ(a.body, "abc");
  EXPECT_EQ(a.completes, 1);
  // Fed again before Reset, the reader takes nothing of the next response.
  used = reader.Feed(std::string_view(both).substr(*used), a);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, 0u);

  reader.Reset();
  RecordingSink b;
  used = reader.Feed(std::string_view(both).substr(first.size()), b);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, second.size());
  EXPECT_EQ(b.last_head.status, 201);
  EXPECT_EQ(b.body, "xyz");
  EXPECT_EQ(b.completes, 1);
}

TEST(Http1ResponseReaderTest, BackToBackResponsesAtEverySplit) {
  const std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  const std::string second =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
  const std::string both = first + second;
  for (size_t cut = 0; cut <= both.size(); ++cut) {
    ResponseReader reader;
    std::vector<std::string> bodies(1);
    int completes = 0;
    RecordingSink sink;
    std::string_view pieces[2] = {std::string_view(both).substr(0, cut),
                                  std::string_view(both).substr(cut)};
    for (std::string_view piece : pieces) {
      while (!piece.empty()) {
        absl::StatusOr<size_t> used = reader.Feed(piece, sink);
        ASSERT_TRUE(used.ok()) << used.status() << " cut " << cut;
        piece.remove_prefix(*used);
        if (reader.complete()) {
          bodies.back() = sink.body;
          completes += sink.completes;
          sink = RecordingSink();
          bodies.emplace_back();
          reader.Reset();
        }
      }
    }
    EXPECT_EQ(completes, 2) << "cut " << cut;
    ASSERT_EQ(bodies.size(), 3u) << "cut " << cut;
    EXPECT_EQ(bodies[0], "hello") << "cut " << cut;
    EXPECT_EQ(bodies[1], "hi") << "cut " << cut;
  }
}

TEST(Http1ResponseReaderTest, InterimResponsesAreSkipped) {
  const std::string input =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
  ResponseReader reader;
  RecordingSink sink;
  absl::StatusOr<size_t> used = reader.Feed(input, sink);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, input.size());
  EXPECT_EQ(sink.heads, 1);
  EXPECT_EQ(sink.last_head.status, 200);
  EXPECT_EQ(sink.last_head.head_bytes, 38u);
  EXPECT_EQ(sink.body, "x");
}

TEST(Http1ResponseReaderTest, InterimAloneIsNotAResponse) {
  ResponseReader reader;
  RecordingSink sink;
  ASSERT_TRUE(reader.Feed("HTTP/1.1 100 Continue\r\n\r\n", sink).ok());
  EXPECT_EQ(sink.heads, 0);
  EXPECT_FALSE(reader.complete());
  EXPECT_EQ(reader.OnEof(sink).code(), absl::StatusCode::kUnavailable);
}

TEST(Http1ResponseReaderTest, SwitchingProtocolsIsRejected) {
  const Outcome o = RunWhole("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_EQ(o.error.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(o.heads, 0);
}

TEST(Http1ResponseReaderTest, NoBodyFor204And304) {
  const std::string no_content = "HTTP/1.1 204 No Content\r\n\r\n";
  Outcome o = RunWhole(no_content + "junk");
  EXPECT_EQ(o, Expected(204, true, "", no_content.size()));
  // A 304's Content-Length describes the representation, not this message.
  const std::string not_modified = "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n";
  o = RunWhole(not_modified + "junk");
  EXPECT_EQ(o, Expected(304, true, "", not_modified.size()));
}

TEST(Http1ResponseReaderTest, ZeroContentLengthCompletesAtTheHead) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  EXPECT_EQ(RunWhole(head + "next"), Expected(200, true, "", head.size()));
}

TEST(Http1ResponseReaderTest, KeepAliveRules) {
  EXPECT_FALSE(RunWhole("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
  EXPECT_TRUE(RunWhole("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
                  .keep_alive);
  EXPECT_FALSE(
      RunWhole("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive);
  EXPECT_FALSE(
      RunWhole("HTTP/1.1 200 OK\r\nconnection: keep-alive, CLOSE\r\nContent-Length: 0\r\n\r\n")
          .keep_alive);
  EXPECT_TRUE(RunWhole("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").keep_alive);
}

TEST(Http1ResponseReaderTest, TransferEncodingWinsOverContentLength) {
  const std::string input =
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "2\r\nok\r\n0\r\n\r\n";
  EXPECT_EQ(RunWhole(input), Expected(200, false, "ok", input.size()));
}

TEST(Http1ResponseReaderTest, RetryAfterHeadersAreReported) {
  ResponseReader reader;
  RecordingSink sink;
  ASSERT_TRUE(reader
                  .Feed("HTTP/1.1 429 Too Many Requests\r\nretry-after:  7 \r\n"
                        "Retry-After-Ms: 6500\r\nContent-Length: 0\r\n\r\n",
                        sink)
                  .ok());
  EXPECT_EQ(sink.last_head.status, 429);
  EXPECT_EQ(sink.last_head.retry_after, "7");
  EXPECT_EQ(sink.last_head.retry_after_ms, "6500");
  EXPECT_EQ(sink.completes, 1);
}

TEST(Http1ResponseReaderTest, OnBodyFalseStopsAtOnce) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string first_chunk = "5;a=b\r\nhello\r\n";
  const std::string rest = "6\r\n world\r\n0\r\n\r\n";
  const std::string input = head + first_chunk + rest;
  ResponseReader reader;
  RecordingSink sink;
  sink.stop_at_body = 1;
  absl::StatusOr<size_t> used = reader.Feed(input, sink);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, head.size() + first_chunk.size() - 2);  // up to the end of "hello"
  EXPECT_EQ(sink.body, "hello");
  EXPECT_EQ(sink.completes, 0);
  EXPECT_FALSE(reader.complete());
  // The reader can go on from where it stopped.
  used = reader.Feed(std::string_view(input).substr(*used), sink);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(sink.body, "hello world");
  EXPECT_EQ(sink.completes, 1);
}

TEST(Http1ResponseReaderTest, OnBodyFalseOnTheLastBytesCompletesOnTheNextCall) {
  ResponseReader reader;
  RecordingSink sink;
  sink.stop_at_body = 1;
  const std::string input = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  absl::StatusOr<size_t> used = reader.Feed(input, sink);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, input.size());
  EXPECT_EQ(sink.completes, 0);
  used = reader.Feed("", sink);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, 0u);
  EXPECT_EQ(sink.completes, 1);
}

TEST(Http1ResponseReaderTest, HeadLimitIsExact) {
  const std::string head = "HTTP/1.1 200 OK\r\nX: 1234567890\r\nContent-Length: 0\r\n\r\n";
  EXPECT_TRUE(Drive(head, {}, false, head.size()).error.ok());
  const Outcome over = Drive(head, {}, false, head.size() - 1);
  EXPECT_EQ(over.error.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(over.heads, 0);
}

TEST(Http1ResponseReaderTest, HeadOverTheLimitFedByteByByte) {
  ResponseReader reader(64);
  RecordingSink sink;
  const std::string input = "HTTP/1.1 200 OK\r\nX-Long: " + std::string(100, 'a') + "\r\n\r\n";
  absl::Status error;
  for (char c : input) {
    absl::StatusOr<size_t> used = reader.Feed(std::string_view(&c, 1), sink);
    if (!used.ok()) {
      error = used.status();
      break;
    }
    EXPECT_LE(reader.buffered(), 64u);
  }
  EXPECT_EQ(error.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(Http1ResponseReaderTest, BadContentLengthIsRejected) {
  for (const char* headers :
       {"Content-Length: 12a\r\n", "Content-Length: -1\r\n", "Content-Length: \r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n", "Content-Length: 5, 5\r\n",
        "Content-Length: 99999999999999999999999\r\n",
        "Content-Length: 18446744073709551616\r\n"}) {
    const Outcome o = RunWhole(std::string("HTTP/1.1 200 OK\r\n") + headers + "\r\nhello");
    EXPECT_EQ(o.error.code(), absl::StatusCode::kInvalidArgument) << headers;
    EXPECT_EQ(o.heads, 0) << headers;
  }
}

TEST(Http1ResponseReaderTest, RepeatedEqualContentLengthIsAccepted) {
  const std::string input =
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello";
  EXPECT_EQ(RunWhole(input), Expected(200, true, "hello", input.size()));
}

TEST(Http1ResponseReaderTest, UnsupportedTransferEncodingIsRejected) {
  for (const char* te : {"gzip, chunked", "chunked, gzip", "identity", "chunked, chunked",
                         "chunked\r\nTransfer-Encoding: chunked", "", "chunked;q=1"}) {
    const Outcome o =
        RunWhole(std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: ") + te + "\r\n\r\n0\r\n\r\n");
    EXPECT_EQ(o.error.code(), absl::StatusCode::kInvalidArgument) << te;
  }
}

TEST(Http1ResponseReaderTest, BadChunksAreRejected) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const char* body : {"zz\r\n", "\r\n", ";ext\r\n", "1000000000000000\r\n", "5\r\nhelloXX",
                           "5\r\nhello\n0\r\n\r\n", "5\rx", "5 x\r\n", "0\r\n bad: fold\r\n\r\n",
                           "0\r\nno-colon\r\n\r\n", "0\r\n\rx"}) {
    const Outcome o = RunWhole(head + body);
    EXPECT_EQ(o.error.code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(o.completes, 0) << body;
  }
}

TEST(Http1ResponseReaderTest, FifteenHexDigitsAreAccepted) {
  const Outcome o =
      RunWhole("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFF\r\nabc");
  EXPECT_TRUE(o.error.ok()) << o.error;
  EXPECT_EQ(o.body, "abc");
  EXPECT_EQ(o.completes, 0);
}

TEST(Http1ResponseReaderTest, TrailersOverTheLimitAreRejected) {
  const std::string input =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + std::string(200, 't') +
      "\r\n\r\n";
  EXPECT_EQ(Drive(input, {}, false, 128).error.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Drive(input, {}, false, 256).error.ok());
}

TEST(Http1ResponseReaderTest, MalformedHeadsAreRejected) {
  for (const char* input :
       {"HTTP/2 200 OK\r\n\r\n", "ICY 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n", "HTTP/1.1 600 High\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n", "\r\nHTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\n\n",
        "HTTP/1.1 200 OK\r\nA: b\n\r\n", "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: b\r\n  folded\r\n\r\n", "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: b\r\n\r\n", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n"}) {
    const Outcome o = RunWhole(input);
    EXPECT_EQ(o.error.code(), absl::StatusCode::kInvalidArgument) << input;
    EXPECT_EQ(o.heads, 0) << input;
  }
}

TEST(Http1ResponseReaderTest, ErrorIsStickyUntilReset) {
  ResponseReader reader;
  RecordingSink sink;
  EXPECT_FALSE(reader.Feed("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", sink).ok());
  const std::string good = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  absl::StatusOr<size_t> used = reader.Feed(good, sink);
  EXPECT_EQ(used.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reader.OnEof(sink).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sink.heads, 0);
  reader.Reset();
  used = reader.Feed(good, sink);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, good.size());
  EXPECT_EQ(sink.body, "ok");
  EXPECT_EQ(sink.completes, 1);
}

TEST(Http1ResponseReaderTest, TruncatedResponsesFailAtEof) {
  for (const char* input :
       {"H", "HTTP/1.1 200 OK\r\nContent-", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n"}) {
    const Outcome o = Drive(input, {}, true);
    EXPECT_EQ(o.error.code(), absl::StatusCode::kUnavailable) << input;
    EXPECT_EQ(o.completes, 0) << input;
  }
}

TEST(Http1ResponseReaderTest, EofWithNothingReadOrAfterCompletionIsQuiet) {
  ResponseReader reader;
  RecordingSink sink;
  EXPECT_TRUE(reader.OnEof(sink).ok());
  EXPECT_EQ(sink.completes, 0);
  ASSERT_TRUE(reader.Feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", sink).ok());
  EXPECT_TRUE(reader.OnEof(sink).ok());
  EXPECT_EQ(sink.completes, 1);
}

TEST(Http1ResponseReaderTest, EofEndsABodyDelimitedByClose) {
  ResponseReader reader;
  RecordingSink sink;
  ASSERT_TRUE(reader.Feed("HTTP/1.0 200 OK\r\n\r\nall of it", sink).ok());
  EXPECT_EQ(sink.completes, 0);
  EXPECT_FALSE(sink.last_head.keep_alive);
  EXPECT_TRUE(reader.OnEof(sink).ok());
  EXPECT_EQ(sink.completes, 1);
  EXPECT_TRUE(reader.complete());
  EXPECT_EQ(sink.body, "all of it");
}

TEST(Http1RequestTest, PostWithHeaders) {
  std::string out = "prefix|";
  AppendRequest(out, "POST", "/v1/chat/completions", "api.example.com:8443",
                {{"Authorization", "Bearer k"}, {"Content-Type", "application/json"}}, "{\"a\":1}");
  EXPECT_EQ(out,
            "prefix|POST /v1/chat/completions HTTP/1.1\r\n"
            "Host: api.example.com:8443\r\n"
            "Authorization: Bearer k\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: 7\r\n"
            "\r\n"
            "{\"a\":1}");
}

TEST(Http1RequestTest, GetWithoutBody) {
  std::string out;
  AppendRequest(out, "GET", "/health", "localhost", {}, "");
  EXPECT_EQ(out, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

TEST(Http1RequestTest, EmptyPostStillSendsContentLength) {
  std::string out;
  AppendRequest(out, "PUT", "/x", "h", {}, "");
  EXPECT_EQ(out, "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
}

}  // namespace
}  // namespace llmload::protocol::http1
