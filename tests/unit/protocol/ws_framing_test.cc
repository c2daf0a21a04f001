#include "lib/protocol/ws_framing.h"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace llmload::protocol::ws {
namespace {

// An unmasked server frame with first byte `b0` (FIN/opcode as given).
std::string ServerFrame(uint8_t b0, std::string_view payload) {
  std::string f(1, static_cast<char>(b0));
  const size_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(n));
  } else if (n <= 0xffff) {
    f.push_back(126);
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xff));
  } else {
    f.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      f.push_back(static_cast<char>((static_cast<uint64_t>(n) >> shift) & 0xff));
    }
  }
  f.append(payload);
  return f;
}

constexpr uint8_t kFinText = 0x81;
constexpr uint8_t kFinBinary = 0x82;
constexpr uint8_t kText = 0x01;
constexpr uint8_t kFinCont = 0x80;
constexpr uint8_t kCont = 0x00;
constexpr uint8_t kPing = 0x89;
constexpr uint8_t kClose = 0x88;

using Messages = std::vector<std::pair<Opcode, std::string>>;

absl::Status FeedAll(FrameReader& r, const std::vector<std::string_view>& parts, Messages* out) {
  for (std::string_view part : parts) {
    if (auto s = r.Feed(part, [&](Opcode op, std::string_view p) { out->emplace_back(op, p); });
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

TEST(WsHandshakeTest, AcceptKeyMatchesTheRfcExample) {
  EXPECT_EQ(AcceptFor("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const uint8_t nonce[16] = {'t', 'h', 'e', ' ', 's', 'a', 'm', 'p',
                             'l', 'e', ' ', 'n', 'o', 'n', 'c', 'e'};
  EXPECT_EQ(ClientKey(nonce), "dGhlIHNhbXBsZSBub25jZQ==");
}

TEST(WsHandshakeTest, RequestCarriesTheUpgradeHeadersAndExtras) {
  const std::string req = UpgradeRequest("127.0.0.1:8080", "/api/ws", "k==", {{"X-Tenant", "t1"}});
  EXPECT_EQ(req,
            "GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: k==\r\nSec-WebSocket-Version: 13\r\n"
            "X-Tenant: t1\r\n\r\n");
}

std::string Response101(std::string_view key, std::string_view extra = "") {
  return "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, Upgrade"
         "\r\nSec-WebSocket-Accept: " +
         AcceptFor(key) + "\r\n" + std::string(extra) + "\r\n";
}

TEST(WsHandshakeTest, AcceptedResponseEndsWhereTheFramesBegin) {
  const std::string head = Response101("abc");
  const std::string data = head + ServerFrame(kFinText, "hi");
  for (size_t cut = 0; cut < head.size(); ++cut) {
    EXPECT_EQ(ParseUpgradeResponse(data.substr(0, cut), "abc").state,
              UpgradeResponse::State::kIncomplete)
        << cut;
  }
  const UpgradeResponse r = ParseUpgradeResponse(data, "abc");
  EXPECT_EQ(r.state, UpgradeResponse::State::kAccepted) << r.error;
  EXPECT_EQ(r.status, 101);
  EXPECT_EQ(r.header_bytes, head.size());
}

TEST(WsHandshakeTest, RefusalsAndBadUpgradesAreTold) {
  UpgradeResponse r = ParseUpgradeResponse("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", "k");
  EXPECT_EQ(r.state, UpgradeResponse::State::kRefused);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ParseUpgradeResponse(Response101("other"), "k").state, UpgradeResponse::State::kInvalid);
  EXPECT_EQ(ParseUpgradeResponse(Response101("k", "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
                                 "k")
                .state,
            UpgradeResponse::State::kInvalid);
  EXPECT_EQ(ParseUpgradeResponse("SSH-2.0-OpenSSH\r\n\r\n", "k").state,
            UpgradeResponse::State::kInvalid);
  EXPECT_EQ(ParseUpgradeResponse("HTTP/1.1 101 OK\r\nbroken line\r\n\r\n", "k").state,
            UpgradeResponse::State::kInvalid);
  EXPECT_EQ(ParseUpgradeResponse(std::string(20000, 'x'), "k").state,
            UpgradeResponse::State::kInvalid);
}

TEST(WsFrameTest, ClientFrameIsMaskedAsInTheRfcExample) {
  std::string out;
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  uint32_t mask;
  std::memcpy(&mask, key, 4);
  AppendClientFrame(out, Opcode::kText, "Hello", mask);
  EXPECT_EQ(out, std::string("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11));
}

// Unmasks a client frame: (opcode, payload).
std::pair<int, std::string> DecodeClientFrame(const std::string& f) {
  const auto* p = reinterpret_cast<const uint8_t*>(f.data());
  EXPECT_EQ(p[0] & 0x80, 0x80);
  EXPECT_EQ(p[1] & 0x80, 0x80);
  uint64_t n = p[1] & 0x7f;
  size_t h = 2;
  if (n == 126) {
    n = (uint64_t{p[2]} << 8) | p[3];
    h = 4;
  } else if (n == 127) {
    n = 0;
    for (int i = 2; i < 10; ++i) n = (n << 8) | p[i];
    h = 10;
  }
  std::string payload = f.substr(h + 4);
  EXPECT_EQ(payload.size(), n);
  for (size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<char>(payload[i] ^ f[h + (i & 3)]);
  }
  return {p[0] & 0x0f, payload};
}

TEST(WsFrameTest, EveryLengthFormRoundTrips) {
  for (size_t n : {0, 1, 7, 8, 9, 125, 126, 127, 65535, 65536, 200000}) {
    std::string payload(n, '\0');
    for (size_t i = 0; i < n; ++i) payload[i] = static_cast<char>('a' + i % 26);
    std::string out = "prefix";
    AppendClientFrame(out, Opcode::kBinary, payload, 0x9abcdef1u);
    ASSERT_EQ(out.substr(0, 6), "prefix");
    const auto [op, back] = DecodeClientFrame(out.substr(6));
    EXPECT_EQ(op, 2);
    EXPECT_EQ(back, payload) << n;
    const size_t expected_header = n < 126 ? 6 : n <= 0xffff ? 8 : 14;
    EXPECT_EQ(out.size() - 6, expected_header + n) << n;
  }
}

TEST(WsFrameReaderTest, MessagesArriveWholeHoweverTheBytesAreSplit) {
  const std::string big(70000, 'b');
  const std::string stream = ServerFrame(kFinText, "{\"type\":\"llm_chunk\"}") +
                             ServerFrame(kPing, "p") + ServerFrame(kText, "frag") +
                             ServerFrame(kPing, "") + ServerFrame(kCont, "men") +
                             ServerFrame(kFinCont, "ted \xc3\xa9") +
                             ServerFrame(kFinBinary, big) + ServerFrame(kFinText, "") +
                             ServerFrame(kClose, std::string("\x03\xe8", 2) + "bye");
  const Messages expected = {{Opcode::kText, "{\"type\":\"llm_chunk\"}"},
                             {Opcode::kPing, "p"},
                             {Opcode::kPing, ""},
                             {Opcode::kText, "fragmented \xc3\xa9"},
                             {Opcode::kBinary, big},
                             {Opcode::kText, ""},
                             {Opcode::kClose, std::string("\x03\xe8", 2) + "bye"}};
  {
    FrameReader r(1 << 20);
    Messages got;
    ASSERT_TRUE(FeedAll(r, {stream}, &got).ok());
    EXPECT_EQ(got, expected);
    EXPECT_EQ(r.buffered(), 0u);
  }
  // Every cut into two reads, on a prefix of the stream small enough to be
  // quick but covering every frame kind.
  const std::string small = stream.substr(0, stream.size() - big.size() - 4 - 2 - 7);
  for (size_t cut = 0; cut <= small.size(); ++cut) {
    FrameReader r(1 << 20);
    Messages got;
    ASSERT_TRUE(FeedAll(r, {std::string_view(small).substr(0, cut),
                            std::string_view(small).substr(cut)},
                        &got)
                    .ok())
        << cut;
    EXPECT_EQ(got, Messages(expected.begin(), expected.begin() + 4)) << cut;
  }
  {
    FrameReader r(1 << 20);
    Messages got;
    for (char c : stream) {
      ASSERT_TRUE(FeedAll(r, {std::string_view(&c, 1)}, &got).ok());
    }
    EXPECT_EQ(got, expected);
    EXPECT_EQ(r.buffered(), 0u);
  }
}

TEST(WsFrameReaderTest, WholePayloadsAreViewsIntoTheCallersBuffer) {
  const std::string data = ServerFrame(kFinText, "abc") + ServerFrame(kFinText, "defg");
  FrameReader r(1 << 20);
  std::vector<const char*> where;
  ASSERT_TRUE(r.Feed(data, [&](Opcode, std::string_view p) { where.push_back(p.data()); }).ok());
  ASSERT_EQ(where.size(), 2u);
  EXPECT_EQ(where[0], data.data() + 2);
  EXPECT_EQ(where[1], data.data() + 7);
}

TEST(WsFrameReaderTest, StopDropsTheRestOfTheRead) {
  const std::string data = ServerFrame(kFinText, "a") + ServerFrame(kFinText, "b");
  FrameReader r(1 << 20);
  int calls = 0;
  ASSERT_TRUE(r.Feed(data, [&](Opcode, std::string_view) {
                 ++calls;
                 r.Stop();
               }).ok());
  EXPECT_EQ(calls, 1);
}

TEST(WsFrameReaderTest, ProtocolViolationsAreErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"masked", std::string("\x81\x81\x00\x00\x00\x00x", 7)},
      {"rsv", ServerFrame(0xc1, "x")},
      {"opcode 3", ServerFrame(0x83, "x")},
      {"fragmented ping", ServerFrame(0x09, "x")},
      {"long ping", ServerFrame(kPing, std::string(126, 'p'))},
      {"lone continuation", ServerFrame(kFinCont, "x")},
      {"message in message", ServerFrame(kText, "a") + ServerFrame(kFinText, "b")},
      {"bad utf-8", ServerFrame(kFinText, "\xc0\x80")},
      {"bad utf-8 across fragments", ServerFrame(kText, "\xe2\x82") + ServerFrame(kFinCont, "x")},
      {"high bit length", std::string("\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10)},
  };
  for (const auto& [name, bytes] : cases) {
    for (bool split : {false, true}) {
      FrameReader r(1 << 20);
      Messages got;
      absl::Status s = split ? FeedAll(r, {bytes.substr(0, 1), bytes.substr(1)}, &got)
                             : FeedAll(r, {bytes}, &got);
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name << " split=" << split;
    }
  }
}

TEST(WsFrameReaderTest, OversizedMessagesFailAtTheHeader) {
  FrameReader r(1000);
  Messages got;
  // Only the header of a 1001-byte frame: refused before any payload is kept.
  const std::string header = ServerFrame(kFinText, std::string(1001, 'x')).substr(0, 4);
  EXPECT_EQ(FeedAll(r, {header}, &got).code(), absl::StatusCode::kResourceExhausted);
  // Fragments whose sum exceeds the limit.
  FrameReader r2(1000);
  EXPECT_EQ(FeedAll(r2, {ServerFrame(kText, std::string(600, 'a')),
                         ServerFrame(kFinCont, std::string(600, 'b'))},
                    &got)
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_LE(r2.buffered(), 1000u);
  // At the limit is fine.
  FrameReader r3(1000);
  EXPECT_TRUE(FeedAll(r3, {ServerFrame(kFinText, std::string(1000, 'c'))}, &got).ok());
}

TEST(WsFrameReaderTest, ResetForgetsAHalfFrame) {
  FrameReader r(1 << 20);
  Messages got;
  ASSERT_TRUE(FeedAll(r, {ServerFrame(kFinText, "hello").substr(0, 4)}, &got).ok());
  EXPECT_GT(r.buffered(), 0u);
  r.Reset();
  EXPECT_EQ(r.buffered(), 0u);
  ASSERT_TRUE(FeedAll(r, {ServerFrame(kFinText, "new")}, &got).ok());
  EXPECT_EQ(got, (Messages{{Opcode::kText, "new"}}));
}

TEST(WsCloseTest, CodesAndReasons) {
  ClosePayload c;
  ASSERT_TRUE(ParseClosePayload("", &c).ok());
  EXPECT_EQ(c.code, 0);
  const std::string with_reason = std::string("\x0f\xa0", 2) + "bye";  // c.reason views it
  ASSERT_TRUE(ParseClosePayload(with_reason, &c).ok());
  EXPECT_EQ(c.code, 4000);
  EXPECT_EQ(c.reason, "bye");
  EXPECT_FALSE(ParseClosePayload("x", &c).ok());
  EXPECT_FALSE(ParseClosePayload(std::string("\x03\xed", 2), &c).ok());  // 1005
  EXPECT_FALSE(ParseClosePayload(std::string("\x03\xe7", 2), &c).ok());  // 999
  EXPECT_FALSE(ParseClosePayload(std::string("\x03\xe8\xff", 3), &c).ok());
}

TEST(WsUtf8Test, AcceptsWellFormedAndRejectsTheRest) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii that is longer than eight bytes"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"));
  for (const char* bad : {"\x80", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80",
                          "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82",
                          "abcdefgh\xff"}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << bad;
  }
}

}  // namespace
}  // namespace llmload::protocol::ws
