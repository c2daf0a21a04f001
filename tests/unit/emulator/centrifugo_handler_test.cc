#include "services/emulator/centrifugo_handler.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/protocol/jwt.h"

namespace llmload::emulator {
namespace {

namespace centrifugo = protocol::centrifugo;
using centrifugo::ServerDisconnectCode;

constexpr char kSecret[] = "super-secret-jwt-key";
constexpr char kChannel[] = "session:9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21";
// centrifugo-session.jsonl: exp 1767229200 (2026-01-01).
constexpr char kFixtureToken[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiI5ZjJjNmExZS00YjdkLTRjMmEtOWUxNS0zZDhmMGI2YTdjMjEiLCJleHAiOjE3NjcyMjkyMDAsImNoYW5u"
    "ZWxzIjpbInNlc3Npb246OWYyYzZhMWUtNGI3ZC00YzJhLTllMTUtM2Q4ZjBiNmE3YzIxIl19."
    "b6IPtxMAp9zlEa50oyOOPAWSIFGj1rJhTqBHTAPYHoM";
constexpr char kFixtureBadToken[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiI5ZjJjNmExZS00YjdkLTRjMmEtOWUxNS0zZDhmMGI2YTdjMjEiLCJleHAiOjE3NjcyMjkyMDAsImNoYW5u"
    "ZWxzIjpbInNlc3Npb246OWYyYzZhMWUtNGI3ZC00YzJhLTllMTUtM2Q4ZjBiNmE3YzIxIl19."
    "b6IPtxMAp9zlEa50oyOOPAWSIFGj1rJhTqBHTAPAAAA";
constexpr int64_t kBeforeFixtureExp = 1767229200 - 3599;
constexpr int64_t kAfterFixtureExp = 1767229200 + 1;

class FakeChannels : public CentrifugoChannels {
 public:
  centrifugo::ServerSubscription Subscribe(const std::string& channel,
                                           const centrifugo::SubRecovery& recovery) override {
    subscribed.push_back(channel);
    recoveries.push_back(recovery);
    centrifugo::ServerSubscription s;
    s.channel = "overwritten-by-handler";
    s.epoch = "XbQm";
    s.offset = offset;
    return s;
  }
  void Unsubscribe(const std::string& channel) override { unsubscribed.push_back(channel); }

  std::vector<std::string> subscribed;
  std::vector<std::string> unsubscribed;
  std::vector<centrifugo::SubRecovery> recoveries;
  uint64_t offset = 0;
};

std::string ConnectFrame(const std::string& token) {
  return "{\"connect\":{\"token\":\"" + token + "\",\"name\":\"js\"},\"id\":1}\n{\"subscribe\":{"
         "\"channel\":\"" + kChannel + "\",\"flag\":1},\"id\":2}";
}

class CentrifugoHandlerTest : public testing::Test {
 protected:
  CentrifugoHandlerTest() : handler_(&options_, &channels_, "3b1f7a52-8c0e-4d6b-a0f4-2e9d51c7b8a3") {
    options_.jwt_secret = kSecret;
    options_.version = "6.5.0";
    options_.ping_seconds = 25;
  }

  void Connect() {
    CentrifugoOutput out = handler_.OnMessage(ConnectFrame(kFixtureToken), kBeforeFixtureExp);
    ASSERT_TRUE(out.connected);
    ASSERT_FALSE(out.disconnect.has_value());
  }

  CentrifugoHandlerOptions options_;
  FakeChannels channels_;
  CentrifugoHandler handler_;
};

TEST_F(CentrifugoHandlerTest, FixtureFrameGetsConnectReplyAnd105InOneFrame) {
  CentrifugoOutput out = handler_.OnMessage(ConnectFrame(kFixtureToken), kBeforeFixtureExp);
  EXPECT_TRUE(out.connected);
  EXPECT_FALSE(out.disconnect.has_value());
  // Byte for byte the server frame of centrifugo-session.jsonl.
  EXPECT_EQ(out.frame,
            "{\"id\":1,\"connect\":{\"client\":\"3b1f7a52-8c0e-4d6b-a0f4-2e9d51c7b8a3\","
            "\"version\":\"6.5.0\",\"expires\":true,\"ttl\":3599,\"subs\":{\"session:9f2c6a1e-"
            "4b7d-4c2a-9e15-3d8f0b6a7c21\":{\"recoverable\":true,\"epoch\":\"XbQm\","
            "\"positioned\":true}},\"ping\":25,\"pong\":true}}\n"
            "{\"id\":2,\"error\":{\"code\":105,\"message\":\"already subscribed\"}}");
  EXPECT_EQ(channels_.subscribed, std::vector<std::string>{kChannel});
  EXPECT_TRUE(handler_.connected());
  EXPECT_EQ(handler_.subscriptions(), std::vector<std::string>{kChannel});
}

TEST_F(CentrifugoHandlerTest, ConnectReplyCarriesCurrentOffset) {
  channels_.offset = 17;
  CentrifugoOutput out = handler_.OnMessage(
      "{\"connect\":{\"token\":\"" + std::string(kFixtureToken) + "\"},\"id\":1}",
      kBeforeFixtureExp);
  EXPECT_NE(out.frame.find("\"epoch\":\"XbQm\",\"offset\":17,\"positioned\":true"),
            std::string::npos)
      << out.frame;
}

TEST_F(CentrifugoHandlerTest, BadSignatureClosesWith3500WithoutReply) {
  CentrifugoOutput out = handler_.OnMessage(ConnectFrame(kFixtureBadToken), kBeforeFixtureExp);
  EXPECT_EQ(out.disconnect, ServerDisconnectCode::kInvalidToken);
  EXPECT_TRUE(out.frame.empty());
  EXPECT_TRUE(channels_.subscribed.empty());
  EXPECT_FALSE(handler_.connected());
}

TEST_F(CentrifugoHandlerTest, MalformedTokenClosesWith3500) {
  for (const char* token : {"", "abc", "a.b.c"}) {
    CentrifugoHandler h(&options_, &channels_, "c");
    CentrifugoOutput out = h.OnMessage(
        std::string("{\"connect\":{\"token\":\"") + token + "\"},\"id\":1}", kBeforeFixtureExp);
    EXPECT_EQ(out.disconnect, ServerDisconnectCode::kInvalidToken) << token;
  }
}

TEST_F(CentrifugoHandlerTest, ExpiredTokenGets109AndTheRestOfTheFrameIsIgnored) {
  CentrifugoOutput out = handler_.OnMessage(ConnectFrame(kFixtureToken), kAfterFixtureExp);
  // centrifugo-error-token-expired.jsonl: only the error reply, no close.
  EXPECT_EQ(out.frame, "{\"id\":1,\"error\":{\"code\":109,\"message\":\"token expired\"}}");
  EXPECT_FALSE(out.disconnect.has_value());
  EXPECT_FALSE(out.connected);
  EXPECT_TRUE(channels_.subscribed.empty());
  // The client may retry with a fresh token on the same socket.
  const std::string fresh = protocol::jwt::SignHs256(
      "{\"sub\":\"u\",\"exp\":" + std::to_string(kAfterFixtureExp + 100) +
          ",\"channels\":[\"session:u\"]}",
      kSecret);
  CentrifugoOutput retry = handler_.OnMessage(
      "{\"connect\":{\"token\":\"" + fresh + "\"},\"id\":3}", kAfterFixtureExp);
  EXPECT_TRUE(retry.connected);
  EXPECT_NE(retry.frame.find("\"ttl\":100"), std::string::npos) << retry.frame;
}

TEST_F(CentrifugoHandlerTest, TokenWithoutExpHasNoExpiresInReply) {
  const std::string token = protocol::jwt::SignHs256("{\"sub\":\"u\"}", kSecret);
  CentrifugoOutput out =
      handler_.OnMessage("{\"connect\":{\"token\":\"" + token + "\"},\"id\":1}", kAfterFixtureExp);
  EXPECT_EQ(out.frame,
            "{\"id\":1,\"connect\":{\"client\":\"3b1f7a52-8c0e-4d6b-a0f4-2e9d51c7b8a3\","
            "\"version\":\"6.5.0\",\"ping\":25,\"pong\":true}}");
}

TEST_F(CentrifugoHandlerTest, CommandBeforeConnectCloses3501) {
  for (const char* frame : {"{\"subscribe\":{\"channel\":\"session:x\"},\"id\":1}", "{}",
                            "{\"connect\":{\"token\":\"x\"}}"}) {
    CentrifugoHandler h(&options_, &channels_, "c");
    CentrifugoOutput out = h.OnMessage(frame, kBeforeFixtureExp);
    EXPECT_EQ(out.disconnect, ServerDisconnectCode::kBadRequest) << frame;
    EXPECT_TRUE(out.frame.empty()) << frame;
  }
}

TEST_F(CentrifugoHandlerTest, MalformedJsonCloses3501) {
  for (const char* frame : {"not json", "{\"connect\":", "[1]", "{\"id\":\"x\"}"}) {
    CentrifugoHandler h(&options_, &channels_, "c");
    EXPECT_EQ(h.OnMessage(frame, kBeforeFixtureExp).disconnect, ServerDisconnectCode::kBadRequest)
        << frame;
  }
  Connect();
  EXPECT_EQ(handler_.OnMessage("{{", kBeforeFixtureExp).disconnect,
            ServerDisconnectCode::kBadRequest);
  // Closing unsubscribes the token's channel; later input is ignored.
  EXPECT_EQ(channels_.unsubscribed, std::vector<std::string>{kChannel});
  CentrifugoOutput after = handler_.OnMessage("{}", kBeforeFixtureExp);
  EXPECT_TRUE(after.frame.empty());
  EXPECT_FALSE(after.disconnect.has_value());
}

TEST_F(CentrifugoHandlerTest, SecondConnectCloses3501) {
  Connect();
  EXPECT_EQ(handler_.OnMessage("{\"connect\":{\"token\":\"" + std::string(kFixtureToken) +
                                   "\"},\"id\":5}",
                               kBeforeFixtureExp)
                .disconnect,
            ServerDisconnectCode::kBadRequest);
}

TEST_F(CentrifugoHandlerTest, PingPongCycle) {
  Connect();
  CentrifugoOutput ping = handler_.OnPingDue();
  EXPECT_EQ(ping.frame, "{}");
  EXPECT_TRUE(handler_.awaiting_pong());
  CentrifugoOutput pong = handler_.OnMessage("{}", kBeforeFixtureExp);
  EXPECT_TRUE(pong.frame.empty());
  EXPECT_FALSE(pong.disconnect.has_value());
  EXPECT_FALSE(handler_.awaiting_pong());
  EXPECT_FALSE(handler_.OnPongDeadline().disconnect.has_value());
  // Next round.
  EXPECT_EQ(handler_.OnPingDue().frame, "{}");
  EXPECT_FALSE(handler_.OnMessage("{}", kBeforeFixtureExp).disconnect.has_value());
}

TEST_F(CentrifugoHandlerTest, MissingPongCloses3012) {
  Connect();
  handler_.OnPingDue();
  EXPECT_EQ(handler_.OnPongDeadline().disconnect, ServerDisconnectCode::kNoPong);
}

TEST_F(CentrifugoHandlerTest, UnansweredPingAtNextPingCloses3012) {
  Connect();
  handler_.OnPingDue();
  EXPECT_EQ(handler_.OnPingDue().disconnect, ServerDisconnectCode::kNoPong);
}

TEST_F(CentrifugoHandlerTest, PongWithoutPingCloses3501) {
  Connect();
  EXPECT_EQ(handler_.OnMessage("{}", kBeforeFixtureExp).disconnect,
            ServerDisconnectCode::kBadRequest);
}

TEST_F(CentrifugoHandlerTest, NoPingsBeforeConnect) {
  EXPECT_TRUE(handler_.OnPingDue().frame.empty());
  EXPECT_FALSE(handler_.OnPongDeadline().disconnect.has_value());
}

TEST_F(CentrifugoHandlerTest, StaleBeforeConnectOnly) {
  EXPECT_EQ(handler_.OnStaleDeadline().disconnect, ServerDisconnectCode::kStale);
  CentrifugoHandler h(&options_, &channels_, "c");
  ASSERT_TRUE(h.OnMessage(ConnectFrame(kFixtureToken), kBeforeFixtureExp).connected);
  EXPECT_FALSE(h.OnStaleDeadline().disconnect.has_value());
}

TEST_F(CentrifugoHandlerTest, SubscribeRules) {
  Connect();
  channels_.offset = 4;
  CentrifugoOutput out = handler_.OnMessage(
      "{\"subscribe\":{\"channel\":\"session:other\"},\"id\":3}\n"
      "{\"subscribe\":{\"channel\":\"session:other\"},\"id\":4}\n"
      "{\"subscribe\":{\"channel\":\"chat:x\"},\"id\":5}\n"
      "{\"subscribe\":{\"channel\":\"news\"},\"id\":6}",
      kBeforeFixtureExp);
  EXPECT_EQ(out.frame,
            "{\"id\":3,\"subscribe\":{\"recoverable\":true,\"epoch\":\"XbQm\",\"offset\":4,"
            "\"positioned\":true}}\n"
            "{\"id\":4,\"error\":{\"code\":105,\"message\":\"already subscribed\"}}\n"
            "{\"id\":5,\"error\":{\"code\":102,\"message\":\"unknown channel\"}}\n"
            "{\"id\":6,\"error\":{\"code\":103,\"message\":\"permission denied\"}}");
  EXPECT_EQ(channels_.subscribed, (std::vector<std::string>{kChannel, "session:other"}));
  EXPECT_EQ(handler_.OnMessage("{\"subscribe\":{},\"id\":7}", kBeforeFixtureExp).disconnect,
            ServerDisconnectCode::kBadRequest);
}

// A connect whose subs asks to recover the token's channel hands the
// position to the channels; one naming a channel the token does not grant
// subscribes nothing. subscribe carries its own recover/offset/epoch.
TEST_F(CentrifugoHandlerTest, RecoveryPositionsReachTheChannels) {
  CentrifugoOutput out = handler_.OnMessage(
      std::string("{\"connect\":{\"token\":\"") + kFixtureToken +
          "\",\"subs\":{\"session:not-granted\":{\"recover\":true,\"offset\":1,"
          "\"epoch\":\"Z\"},\"" +
          kChannel + "\":{\"recover\":true,\"offset\":12,\"epoch\":\"XbQm\"}}},\"id\":1}\n" +
          "{\"subscribe\":{\"channel\":\"session:other\",\"recover\":true,\"offset\":3,"
          "\"epoch\":\"Q\"},\"id\":2}",
      kBeforeFixtureExp);
  ASSERT_TRUE(out.connected);
  EXPECT_EQ(channels_.subscribed, (std::vector<std::string>{kChannel, "session:other"}));
  ASSERT_EQ(channels_.recoveries.size(), 2u);
  EXPECT_TRUE(channels_.recoveries[0].recover);
  EXPECT_EQ(channels_.recoveries[0].channel, kChannel);
  EXPECT_EQ(channels_.recoveries[0].offset, 12u);
  EXPECT_EQ(channels_.recoveries[0].epoch, "XbQm");
  EXPECT_TRUE(channels_.recoveries[1].recover);
  EXPECT_EQ(channels_.recoveries[1].offset, 3u);
  EXPECT_EQ(channels_.recoveries[1].epoch, "Q");
  // A plain connect asks for nothing.
  CentrifugoHandler plain(&options_, &channels_, "c2");
  ASSERT_TRUE(plain.OnMessage(ConnectFrame(kFixtureToken), kBeforeFixtureExp).connected);
  EXPECT_FALSE(channels_.recoveries[2].recover);
}

TEST_F(CentrifugoHandlerTest, UnsubscribeAndUnsupportedMethods) {
  Connect();
  CentrifugoOutput out = handler_.OnMessage(
      std::string("{\"unsubscribe\":{\"channel\":\"") + kChannel + "\"},\"id\":3}\n"
      "{\"publish\":{\"channel\":\"session:x\",\"data\":{}},\"id\":4}\n"
      "{\"history\":{\"channel\":\"session:x\"},\"id\":5}\n"
      "{\"rpc\":{\"method\":\"m\"},\"id\":6}\n"
      "{\"send\":{\"data\":1}}\n"
      "{\"frob\":{},\"id\":7}",
      kBeforeFixtureExp);
  EXPECT_EQ(out.frame,
            "{\"id\":3,\"unsubscribe\":{}}\n"
            "{\"id\":4,\"error\":{\"code\":103,\"message\":\"permission denied\"}}\n"
            "{\"id\":5,\"error\":{\"code\":108,\"message\":\"not available\"}}\n"
            "{\"id\":6,\"error\":{\"code\":104,\"message\":\"method not found\"}}\n"
            "{\"id\":7,\"error\":{\"code\":104,\"message\":\"method not found\"}}");
  EXPECT_FALSE(out.disconnect.has_value());
  EXPECT_EQ(channels_.unsubscribed, std::vector<std::string>{kChannel});
  EXPECT_TRUE(handler_.subscriptions().empty());
  // Without id a command other than send is a protocol error.
  EXPECT_EQ(handler_.OnMessage("{\"publish\":{\"channel\":\"a\"}}", kBeforeFixtureExp).disconnect,
            ServerDisconnectCode::kBadRequest);
}

TEST_F(CentrifugoHandlerTest, OnClosedUnsubscribesOnce) {
  Connect();
  handler_.OnClosed();
  handler_.OnClosed();
  EXPECT_EQ(channels_.unsubscribed, std::vector<std::string>{kChannel});
}

TEST_F(CentrifugoHandlerTest, ConnectionExpiresAtTokenExpUnlessRefreshed) {
  CentrifugoOutput out = handler_.OnMessage(ConnectFrame(kFixtureToken), kBeforeFixtureExp);
  ASSERT_EQ(out.expires_at_unix, 1767229200);
  // Not yet.
  EXPECT_FALSE(handler_.OnExpiryDeadline(1767229200 - 1).disconnect.has_value());
  // A fresh token moves the expiry and is answered with the new ttl.
  protocol::jwt::Claims claims;
  claims.sub = "u";
  claims.exp = 1767229200 + 600;
  const std::string fresh =
      protocol::jwt::SignHs256(protocol::jwt::EncodeClaims(claims), kSecret);
  CentrifugoOutput refreshed = handler_.OnMessage(
      "{\"refresh\":{\"token\":\"" + fresh + "\"},\"id\":3}", 1767229200 - 100);
  EXPECT_EQ(refreshed.frame,
            "{\"id\":3,\"refresh\":{\"client\":\"3b1f7a52-8c0e-4d6b-a0f4-2e9d51c7b8a3\","
            "\"version\":\"6.5.0\",\"expires\":true,\"ttl\":700}}");
  EXPECT_EQ(refreshed.expires_at_unix, 1767229200 + 600);
  EXPECT_FALSE(handler_.OnExpiryDeadline(1767229200 + 1).disconnect.has_value());
  EXPECT_EQ(handler_.OnExpiryDeadline(1767229200 + 600).disconnect, ServerDisconnectCode::kExpired);
}

TEST_F(CentrifugoHandlerTest, RefreshWithExpiredOrBadTokens) {
  Connect();
  CentrifugoOutput expired = handler_.OnMessage(
      "{\"refresh\":{\"token\":\"" + std::string(kFixtureToken) + "\"},\"id\":3}",
      kAfterFixtureExp);
  EXPECT_EQ(expired.frame, "{\"id\":3,\"error\":{\"code\":109,\"message\":\"token expired\"}}");
  EXPECT_FALSE(expired.disconnect.has_value());
  CentrifugoOutput bad = handler_.OnMessage(
      "{\"refresh\":{\"token\":\"" + std::string(kFixtureBadToken) + "\"},\"id\":4}",
      kBeforeFixtureExp);
  EXPECT_EQ(bad.disconnect, ServerDisconnectCode::kInvalidToken);
}

}  // namespace
}  // namespace llmload::emulator
