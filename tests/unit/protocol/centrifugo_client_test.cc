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

namespace llmload::protocol::centrifugo {
namespace {

TEST(CentrifugoClientRecoveryTest, EncodesConnectWithRecoverySubs) {
  EXPECT_EQ(EncodeConnectCommand("t.k.n", 1, StreamPosition{"session:a", 17, "XbQm"}),
            R"({"connect":{"token":"t.k.n","name":"js","subs":{"session:a":)"
            R"({"recover":true,"offset":17,"epoch":"XbQm"}}},"id":1})");
  // Offset 0 is left out, as Centrifugo's own encoder leaves zero values.
  EXPECT_EQ(EncodeConnectCommand("t", 3, StreamPosition{"session:\"q", 0, "E"}),
            R"({"connect":{"token":"t","name":"js","subs":{"session:\"q":)"
            R"({"recover":true,"epoch":"E"}}},"id":3})");
}

TEST(CentrifugoClientRecoveryTest, ConnectReplyThenItsRecoveredPublicationsInOrder) {
  const std::string frame =
      R"({"id":1,"connect":{"client":"c","subs":{"session:a":{"recoverable":true,)"
      R"("epoch":"XbQm","offset":9,"positioned":true,"recovered":true,"was_recovering":true,)"
      R"("publications":[{"data":{"token":"dolor"},"offset":7},{"data":{"token":"sit"},)"
      R"("offset":8},{"data":{"done":true},"offset":9}]}},"ping":25,"pong":true}})"
      "\n"
      R"({"push":{"channel":"session:a","pub":{"data":{"token":"next"},"offset":10}}})";
  ClientFrameParser p;
  struct Event {
    Kind kind;
    std::string channel, epoch, token;
    uint64_t offset;
    bool recovered, was_recovering, from_recovery, done;
    uint32_t count;
  };
  std::vector<Event> seen;
  ASSERT_TRUE(p.Parse(frame, [&](const ServerEvent& e) {
                 seen.push_back(Event{e.kind, std::string(e.channel), std::string(e.epoch),
                                      std::string(e.token), e.offset, e.recovered,
                                      e.was_recovering, e.from_recovery, e.done,
                                      e.recovered_count});
               }).ok());
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[0].kind, Kind::kConnectReply);
  EXPECT_EQ(seen[0].channel, "session:a");
  EXPECT_EQ(seen[0].epoch, "XbQm");
  EXPECT_EQ(seen[0].offset, 9u);
  EXPECT_TRUE(seen[0].recovered);
  EXPECT_TRUE(seen[0].was_recovering);
  EXPECT_EQ(seen[0].count, 3u);
  const char* tokens[] = {"dolor", "sit", ""};
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(seen[i].kind, Kind::kPublication) << i;
    EXPECT_TRUE(seen[i].from_recovery) << i;
    EXPECT_EQ(seen[i].channel, "session:a") << i;
    EXPECT_EQ(seen[i].offset, static_cast<uint64_t>(6 + i)) << i;
    EXPECT_EQ(seen[i].token, tokens[i - 1]) << i;
  }
  EXPECT_TRUE(seen[3].done);
  EXPECT_EQ(seen[4].kind, Kind::kPublication);
  EXPECT_FALSE(seen[4].from_recovery);
  EXPECT_EQ(seen[4].offset, 10u);
}

TEST(CentrifugoClientRecoveryTest, UnrecoveredReplyAndJunkPublicationsAreSkipped) {
  // Not recovered: the server kept only part of the gap. Entries that are
  // not objects are no publications; a sub that is not an object is no sub.
  const std::string frame =
      R"({"id":1,"connect":{"subs":{"session:x":7,"session:a":{"epoch":"E2","offset":40,)"
      R"("was_recovering":true,"publications":[3,{"data":{"token":"late"},"offset":39},)"
      R"(null]}}}})";
  ClientFrameParser p;
  std::vector<ServerEvent> seen;
  std::vector<std::string> tokens;
  ASSERT_TRUE(p.Parse(frame, [&](const ServerEvent& e) {
                 seen.push_back(e);
                 tokens.emplace_back(e.token);
               }).ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].kind, Kind::kConnectReply);
  EXPECT_TRUE(seen[0].has_sub);
  EXPECT_FALSE(seen[0].recovered);
  EXPECT_TRUE(seen[0].was_recovering);
  EXPECT_EQ(seen[0].recovered_count, 1u);
  EXPECT_EQ(seen[0].offset, 40u);
  EXPECT_TRUE(seen[1].from_recovery);
  EXPECT_EQ(seen[1].offset, 39u);
  EXPECT_EQ(tokens[1], "late");
  // A reply without subs has no sub.
  seen.clear();
  ASSERT_TRUE(p.Parse(R"({"id":1,"connect":{"client":"c"}})",
                      [&](const ServerEvent& e) { seen.push_back(e); })
                  .ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].has_sub);
  EXPECT_EQ(seen[0].recovered_count, 0u);
}

}  // namespace
}  // namespace llmload::protocol::centrifugo
