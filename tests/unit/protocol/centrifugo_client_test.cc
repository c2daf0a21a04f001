#include "lib/protocol/centrifugo_client.h"

#include <string>
#include <vector>

#include "boost/json/parse.hpp"
#include "gtest/gtest.h"

namespace llmload::protocol::centrifugo {
namespace {

using Kind = ServerEvent::Kind;

struct Seen {
  Kind kind;
  uint32_t id;
  uint32_t code;
  std::string message;
  uint32_t ping;
  bool pong;
  std::string channel;
  bool has_token;
  std::string token;
  bool done;
  uint64_t offset;
};

absl::Status ParseAll(ClientFrameParser& p, std::string_view frame, std::vector<Seen>* out) {
  return p.Parse(frame, [&](const ServerEvent& e) {
    out->push_back(Seen{e.kind, e.id, e.code, std::string(e.message), e.ping_interval_seconds,
                        e.pong, std::string(e.channel), e.has_token, std::string(e.token), e.done,
                        e.offset});
  });
}

TEST(CentrifugoClientTest, EncodesConnectLikeCentrifugeJs) {
  EXPECT_EQ(EncodeConnectCommand("abc.def.ghi", 1),
            R"({"connect":{"token":"abc.def.ghi","name":"js"},"id":1})");
  // Escapes what JSON needs escaped.
  const std::string cmd = EncodeConnectCommand("a\"b\\c", 7);
  boost::json::error_code ec;
  auto v = boost::json::parse(cmd, ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(v.at("connect").at("token").as_string(), "a\"b\\c");
  EXPECT_EQ(v.at("id").as_int64(), 7);
  EXPECT_EQ(EncodeSubscribeCommand("session:x", 2), R"({"subscribe":{"channel":"session:x"},"id":2})");
}

TEST(CentrifugoClientTest, ConnectReplyAndAlreadySubscribedInOneFrame) {
  // The fixture frame of shared/protocols/fixtures/centrifugo-session.jsonl.
  const std::string frame =
      R"({"id":1,"connect":{"client":"3b1f","version":"6.5.0","expires":true,"ttl":3599,)"
      R"("subs":{"session:9f2c":{"recoverable":true,"epoch":"XbQm","positioned":true}},)"
      R"("ping":25,"pong":true}})"
      "\n"
      R"({"id":2,"error":{"code":105,"message":"already subscribed"}})";
  ClientFrameParser p;
  std::vector<Seen> seen;
  ASSERT_TRUE(ParseAll(p, frame, &seen).ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].kind, Kind::kConnectReply);
  EXPECT_EQ(seen[0].id, 1u);
  EXPECT_EQ(seen[0].ping, 25u);
  EXPECT_TRUE(seen[0].pong);
  EXPECT_EQ(seen[1].kind, Kind::kReplyError);
  EXPECT_EQ(seen[1].id, 2u);
  EXPECT_EQ(seen[1].code, 105u);
  EXPECT_EQ(seen[1].message, "already subscribed");
}

TEST(CentrifugoClientTest, PublicationsTokensDoneAndTwoPushFrames) {
  const std::string frame =
      R"({"push":{"channel":"session:s","pub":{"data":{"token":"sit"},"offset":4}}})"
      "\n"
      R"({"push":{"channel":"session:s","pub":{"data":{"token":"amet."},"offset":5}}})";
  ClientFrameParser p;
  std::vector<Seen> seen;
  ASSERT_TRUE(ParseAll(p, frame, &seen).ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].kind, Kind::kPublication);
  EXPECT_TRUE(seen[0].has_token);
  EXPECT_EQ(seen[0].token, "sit");
  EXPECT_EQ(seen[0].offset, 4u);
  EXPECT_EQ(seen[0].channel, "session:s");
  EXPECT_EQ(seen[1].token, "amet.");
  EXPECT_EQ(seen[1].offset, 5u);

  seen.clear();
  ASSERT_TRUE(
      ParseAll(p, R"({"push":{"channel":"session:s","pub":{"data":{"done":true},"offset":6}}})",
               &seen)
          .ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].kind, Kind::kPublication);
  EXPECT_FALSE(seen[0].has_token);
  EXPECT_TRUE(seen[0].done);
}

TEST(CentrifugoClientTest, EmptyTokenIsNotAToken) {
  ClientFrameParser p;
  std::vector<Seen> seen;
  ASSERT_TRUE(
      ParseAll(p, R"({"push":{"channel":"c","pub":{"data":{"token":""}}}})", &seen).ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].has_token);
  seen.clear();
  ASSERT_TRUE(ParseAll(p, R"({"push":{"channel":"c","pub":{"data":{"token":5}}}})", &seen).ok());
  EXPECT_FALSE(seen[0].has_token);
}

TEST(CentrifugoClientTest, PingIsAnEmptyObjectAndBlankLinesAreSkipped) {
  ClientFrameParser p;
  std::vector<Seen> seen;
  ASSERT_TRUE(ParseAll(p, "{}", &seen).ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].kind, Kind::kPing);
  seen.clear();
  ASSERT_TRUE(ParseAll(p, "\n{}\n\n  \n{}\n", &seen).ok());
  EXPECT_EQ(seen.size(), 2u);
  seen.clear();
  ASSERT_TRUE(ParseAll(p, "", &seen).ok());
  EXPECT_TRUE(seen.empty());
}

TEST(CentrifugoClientTest, DisconnectAndOtherPushes) {
  ClientFrameParser p;
  std::vector<Seen> seen;
  ASSERT_TRUE(ParseAll(p,
                       R"({"push":{"disconnect":{"code":3001,"reason":"shutdown"}}})"
                       "\n"
                       R"({"push":{"channel":"c","join":{"info":{"user":"u"}}}})",
                       &seen)
                  .ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].kind, Kind::kDisconnectPush);
  EXPECT_EQ(seen[0].code, 3001u);
  EXPECT_EQ(seen[0].message, "shutdown");
  EXPECT_EQ(seen[1].kind, Kind::kOtherPush);
}

TEST(CentrifugoClientTest, OtherRepliesAreReplies) {
  ClientFrameParser p;
  std::vector<Seen> seen;
  ASSERT_TRUE(ParseAll(p, R"({"id":3,"subscribe":{}})", &seen).ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].kind, Kind::kReply);
  EXPECT_EQ(seen[0].id, 3u);
}

TEST(CentrifugoClientTest, MalformedInputIsAnErrorNeverACrash) {
  ClientFrameParser p;
  for (const std::string& bad : std::vector<std::string>{"{", "not json", "[1,2]", "\"str\"", "{}\n{\"id\":", "{} x",
                                std::string("{\"a\":\"\xff\"}")}) {
    std::vector<Seen> seen;
    EXPECT_FALSE(ParseAll(p, bad, &seen).ok()) << bad;
  }
  // Earlier lines of a frame were delivered before the bad one.
  std::vector<Seen> seen;
  EXPECT_FALSE(ParseAll(p, "{}\n{oops", &seen).ok());
  EXPECT_EQ(seen.size(), 1u);
  // Oversized frames are refused.
  std::string huge(ClientFrameParser::kMaxFrameBytes + 1, ' ');
  seen.clear();
  EXPECT_FALSE(ParseAll(p, huge, &seen).ok());
}

TEST(CentrifugoClientTest, LargeMessagesBeyondScratchStillParse) {
  std::string token(ClientFrameParser::kScratchBytes * 2, 'x');
  const std::string frame =
      R"({"push":{"channel":"c","pub":{"data":{"token":")" + token + R"("},"offset":1}}})";
  ClientFrameParser p;
  std::vector<Seen> seen;
  ASSERT_TRUE(ParseAll(p, frame, &seen).ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].token.size(), token.size());
}

}  // namespace
}  // namespace llmload::protocol::centrifugo
