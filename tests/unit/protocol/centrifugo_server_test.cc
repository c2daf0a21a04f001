#include "lib/protocol/centrifugo_server.h"

#include <string>

#include "boost/json.hpp"
#include "gtest/gtest.h"

namespace llmload::protocol::centrifugo {
namespace {

constexpr char kFixtureToken[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiI5ZjJjNmExZS00YjdkLTRjMmEtOWUxNS0zZDhmMGI2YTdjMjEiLCJleHAiOjE3NjcyMjkyMDAsImNoYW5u"
    "ZWxzIjpbInNlc3Npb246OWYyYzZhMWUtNGI3ZC00YzJhLTllMTUtM2Q4ZjBiNmE3YzIxIl19."
    "b6IPtxMAp9zlEa50oyOOPAWSIFGj1rJhTqBHTAPYHoM";
constexpr char kChannel[] = "session:9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21";

// The exact frame centrifuge-js 5.8.0 sends (centrifugo-session.jsonl).
std::string FixtureConnectFrame() {
  return std::string("{\"connect\":{\"token\":\"") + kFixtureToken +
         "\",\"name\":\"js\"},\"id\":1}\n{\"subscribe\":{\"channel\":\"" + kChannel +
         "\",\"flag\":1},\"id\":2}";
}

TEST(ParseClientFrameTest, ParsesFixtureConnectAndSubscribeFrame) {
  absl::StatusOr<std::vector<ClientCommand>> cmds = ParseClientFrame(FixtureConnectFrame());
  ASSERT_TRUE(cmds.ok()) << cmds.status();
  ASSERT_EQ(cmds->size(), 2u);
  const ClientCommand& connect = (*cmds)[0];
  EXPECT_EQ(connect.method, ClientMethod::kConnect);
  EXPECT_EQ(connect.id, 1u);
  EXPECT_EQ(connect.token, kFixtureToken);
  EXPECT_EQ(connect.name, "js");
  EXPECT_TRUE(connect.channel.empty());
  const ClientCommand& subscribe = (*cmds)[1];
  EXPECT_EQ(subscribe.method, ClientMethod::kSubscribe);
  EXPECT_EQ(subscribe.id, 2u);
  EXPECT_EQ(subscribe.channel, kChannel);
  EXPECT_EQ(subscribe.flag, 1u);
  EXPECT_TRUE(subscribe.token.empty());
}

TEST(ParseClientFrameTest, EmptyObjectIsPong) {
  absl::StatusOr<std::vector<ClientCommand>> cmds = ParseClientFrame("{}");
  ASSERT_TRUE(cmds.ok());
  ASSERT_EQ(cmds->size(), 1u);
  EXPECT_EQ((*cmds)[0].method, ClientMethod::kPong);
  EXPECT_EQ((*cmds)[0].id, 0u);
}

TEST(ParseClientFrameTest, SkipsBlankLines) {
  absl::StatusOr<std::vector<ClientCommand>> cmds =
      ParseClientFrame("\n{}\n  \r\n{\"unsubscribe\":{\"channel\":\"a\"},\"id\":7}\n");
  ASSERT_TRUE(cmds.ok()) << cmds.status();
  ASSERT_EQ(cmds->size(), 2u);
  EXPECT_EQ((*cmds)[1].method, ClientMethod::kUnsubscribe);
  EXPECT_EQ((*cmds)[1].channel, "a");
  EXPECT_EQ((*cmds)[1].id, 7u);
  absl::StatusOr<std::vector<ClientCommand>> empty = ParseClientFrame("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(ParseClientFrameTest, ClassifiesOtherMethods) {
  struct Case {
    const char* frame;
    ClientMethod method;
  };
  for (const Case& c : {
           Case{"{\"publish\":{\"channel\":\"c\",\"data\":{}},\"id\":3}", ClientMethod::kPublish},
           Case{"{\"presence\":{\"channel\":\"c\"},\"id\":3}", ClientMethod::kPresence},
           Case{"{\"presence_stats\":{\"channel\":\"c\"},\"id\":3}", ClientMethod::kPresenceStats},
           Case{"{\"history\":{\"channel\":\"c\",\"limit\":1},\"id\":3}", ClientMethod::kHistory},
           Case{"{\"rpc\":{\"method\":\"m\"},\"id\":3}", ClientMethod::kRpc},
           Case{"{\"refresh\":{\"token\":\"t\"},\"id\":3}", ClientMethod::kRefresh},
           Case{"{\"sub_refresh\":{\"channel\":\"c\",\"token\":\"t\"},\"id\":3}",
                ClientMethod::kSubRefresh},
           Case{"{\"send\":{\"data\":1}}", ClientMethod::kSend},
           Case{"{\"id\":3}", ClientMethod::kUnknown},
           Case{"{\"frobnicate\":{},\"id\":3}", ClientMethod::kUnknown},
           // null params count as absent, like Go's decoder.
           Case{"{\"connect\":null}", ClientMethod::kPong},
       }) {
    absl::StatusOr<std::vector<ClientCommand>> cmds = ParseClientFrame(c.frame);
    ASSERT_TRUE(cmds.ok()) << c.frame << ": " << cmds.status();
    ASSERT_EQ(cmds->size(), 1u) << c.frame;
    EXPECT_EQ((*cmds)[0].method, c.method) << c.frame;
  }
}

TEST(ParseClientFrameTest, RejectsMalformedInput) {
  for (const char* frame : {
           "not json",
           "{\"connect\":{}",                              // truncated
           "[]",                                           // not an object
           "42",
           "{}\n{",                                        // second line broken
           "{\"connect\":{},\"subscribe\":{},\"id\":1}",   // two methods
           "{\"connect\":\"token\",\"id\":1}",             // params not an object
           "{\"connect\":{\"token\":5},\"id\":1}",         // token not a string
           "{\"subscribe\":{\"channel\":[]},\"id\":1}",    // channel not a string
           "{\"subscribe\":{\"channel\":\"c\",\"flag\":-1},\"id\":1}",
           "{\"id\":-1}",
           "{\"id\":4294967296}",
           "{\"id\":1.5}",
           "{\"id\":\"1\"}",
       }) {
    EXPECT_FALSE(ParseClientFrame(frame).ok()) << frame;
  }
}

TEST(EncodeConnectReplyTest, MatchesFixtureBytes) {
  ServerConnectResult result;
  result.client = "3b1f7a52-8c0e-4d6b-a0f4-2e9d51c7b8a3";
  result.version = "6.5.0";
  result.ttl_seconds = 3599;
  ServerSubscription sub;
  sub.channel = kChannel;
  sub.epoch = "XbQm";
  result.subs.push_back(sub);
  result.ping_seconds = 25;
  result.pong = true;
  EXPECT_EQ(EncodeConnectReply(1, result),
            "{\"id\":1,\"connect\":{\"client\":\"3b1f7a52-8c0e-4d6b-a0f4-2e9d51c7b8a3\","
            "\"version\":\"6.5.0\",\"expires\":true,\"ttl\":3599,\"subs\":{\"session:9f2c6a1e-"
            "4b7d-4c2a-9e15-3d8f0b6a7c21\":{\"recoverable\":true,\"epoch\":\"XbQm\","
            "\"positioned\":true}},\"ping\":25,\"pong\":true}}");
}

TEST(EncodeConnectReplyTest, OmitsEmptyFieldsAndCarriesOffset) {
  ServerConnectResult result;
  result.client = "c";
  ServerSubscription a;
  a.channel = "a";
  a.epoch = "e";
  a.offset = 12;
  ServerSubscription b;
  b.channel = "b\"q";
  b.recoverable = false;
  b.positioned = false;
  result.subs = {a, b};
  const std::string reply = EncodeConnectReply(9, result);
  EXPECT_EQ(reply,
            "{\"id\":9,\"connect\":{\"client\":\"c\",\"subs\":{\"a\":{\"recoverable\":true,"
            "\"epoch\":\"e\",\"offset\":12,\"positioned\":true},\"b\\\"q\":{}}}}");
  boost::system::error_code ec;
  boost::json::parse(reply, ec);
  EXPECT_FALSE(ec);
}

TEST(EncodeErrorReplyTest, AlreadySubscribedMatchesFixture) {
  EXPECT_EQ(EncodeErrorReply(2, ServerErrorCode::kAlreadySubscribed),
            "{\"id\":2,\"error\":{\"code\":105,\"message\":\"already subscribed\"}}");
}

TEST(EncodeErrorReplyTest, TokenExpiredMatchesFixture) {
  EXPECT_EQ(EncodeErrorReply(1, ServerErrorCode::kTokenExpired),
            "{\"id\":1,\"error\":{\"code\":109,\"message\":\"token expired\"}}");
}

TEST(EncodeErrorReplyTest, CarriesTemporaryFlag) {
  EXPECT_EQ(EncodeErrorReply(3, 100, "internal \"x\"", true),
            "{\"id\":3,\"error\":{\"code\":100,\"message\":\"internal \\\"x\\\"\","
            "\"temporary\":true}}");
}

TEST(EncodeReplyTest, SubscribeAndEmptyReplies) {
  ServerSubscription sub;
  sub.channel = "ignored";
  sub.epoch = "EP";
  sub.offset = 3;
  EXPECT_EQ(EncodeSubscribeReply(4, sub),
            "{\"id\":4,\"subscribe\":{\"recoverable\":true,\"epoch\":\"EP\",\"offset\":3,"
            "\"positioned\":true}}");
  EXPECT_EQ(EncodeEmptyReply(5, "unsubscribe"), "{\"id\":5,\"unsubscribe\":{}}");
}

TEST(ServerCodesTest, MessagesAndReasons) {
  EXPECT_EQ(ServerErrorMessage(ServerErrorCode::kMethodNotFound), "method not found");
  EXPECT_EQ(ServerErrorMessage(ServerErrorCode::kPermissionDenied), "permission denied");
  EXPECT_EQ(ServerDisconnectReason(ServerDisconnectCode::kInvalidToken), "invalid token");
  EXPECT_EQ(ServerDisconnectReason(ServerDisconnectCode::kBadRequest), "bad request");
  EXPECT_EQ(ServerDisconnectReason(ServerDisconnectCode::kNoPong), "no pong");
  EXPECT_EQ(static_cast<int>(ServerDisconnectCode::kNoPong), 3012);
  EXPECT_EQ(static_cast<int>(ServerDisconnectCode::kInvalidToken), 3500);
  EXPECT_EQ(static_cast<int>(ServerDisconnectCode::kBadRequest), 3501);
}

TEST(PushEncodingTest, TokenAndDonePushesMatchFixture) {
  std::string out;
  AppendTokenPush(&out, kChannel, "Lorem", 1);
  EXPECT_EQ(out,
            "{\"push\":{\"channel\":\"session:9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21\",\"pub\":{"
            "\"data\":{\"token\":\"Lorem\"},\"offset\":1}}}");
  out.clear();
  AppendDonePush(&out, kChannel, 6);
  EXPECT_EQ(out,
            "{\"push\":{\"channel\":\"session:9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21\",\"pub\":{"
            "\"data\":{\"done\":true},\"offset\":6}}}");
}

TEST(PushEncodingTest, AppendsAndEscapes) {
  std::string out = "x";
  AppendTokenPush(&out, "c", "a\"b\\c\n\x01", 18446744073709551615ull);
  EXPECT_EQ(out,
            "x{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":{\"token\":\"a\\\"b\\\\c\\n\\u0001\"},"
            "\"offset\":18446744073709551615}}}");
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(std::string_view(out).substr(1), ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(v.at("push").at("pub").at("data").at("token").as_string(), "a\"b\\c\n\x01");
}

TEST(PushEncodingTest, PublicationCopiesDataVerbatim) {
  std::string out;
  AppendPublicationPush(&out, "c", "[1,{\"a\":null}]", 2);
  EXPECT_EQ(out, "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":[1,{\"a\":null}],\"offset\":2}}}");
}


TEST(RecoveryCodecTest, ConnectSubsAndSubscribeRecoveryAreDecoded) {
  absl::StatusOr<std::vector<ClientCommand>> cmds = ParseClientFrame(
      R"({"connect":{"token":"t","subs":{"session:a":{"recover":true,"offset":17,"epoch":"XbQm"},)"
      R"("session:b":{}}},"id":1})"
      "\n"
      R"({"subscribe":{"channel":"session:c","recover":true,"offset":3,"epoch":"E"},"id":2})");
  ASSERT_TRUE(cmds.ok()) << cmds.status();
  ASSERT_EQ(cmds->size(), 2u);
  const ClientCommand& connect = (*cmds)[0];
  ASSERT_EQ(connect.subs.size(), 2u);
  EXPECT_EQ(connect.subs[0].channel, "session:a");
  EXPECT_TRUE(connect.subs[0].recover);
  EXPECT_EQ(connect.subs[0].offset, 17u);
  EXPECT_EQ(connect.subs[0].epoch, "XbQm");
  EXPECT_EQ(connect.subs[1].channel, "session:b");
  EXPECT_FALSE(connect.subs[1].recover);
  const ClientCommand& subscribe = (*cmds)[1];
  EXPECT_EQ(subscribe.channel, "session:c");
  EXPECT_TRUE(subscribe.recovery.recover);
  EXPECT_EQ(subscribe.recovery.offset, 3u);
  EXPECT_EQ(subscribe.recovery.epoch, "E");
}

TEST(RecoveryCodecTest, IllTypedRecoveryFieldsAreRefused) {
  for (const char* bad : {
           R"({"connect":{"subs":[]},"id":1})",
           R"({"connect":{"subs":{"session:a":true}},"id":1})",
           R"({"connect":{"subs":{"session:a":{"recover":1}}},"id":1})",
           R"({"connect":{"subs":{"session:a":{"offset":-1}}},"id":1})",
           R"({"connect":{"subs":{"session:a":{"offset":1.5}}},"id":1})",
           R"({"connect":{"subs":{"session:a":{"epoch":7}}},"id":1})",
           R"({"subscribe":{"channel":"session:a","recover":"yes"},"id":2})",
       }) {
    EXPECT_EQ(ParseClientFrame(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(RecoveryCodecTest, RecoveredSubscriptionListsItsPublications) {
  ServerSubscription sub;
  sub.channel = "session:a";
  sub.epoch = "E";
  sub.offset = 9;
  sub.was_recovering = true;
  sub.recovered = true;
  std::string pub;
  AppendTokenPub(&pub, "do\"lor", 8);
  sub.publications.push_back(pub);
  pub.clear();
  AppendDonePub(&pub, 9);
  sub.publications.push_back(pub);
  EXPECT_EQ(EncodeSubscribeReply(4, sub),
            R"({"id":4,"subscribe":{"recoverable":true,"epoch":"E","offset":9,"positioned":true,)"
            R"("recovered":true,"was_recovering":true,"publications":[{"data":{"token":"do\"lor"},)"
            R"("offset":8},{"data":{"done":true},"offset":9}]}})");
  // The push around a pub object is the push the stream sends.
  std::string push;
  AppendPushOfPub(&push, "session:a", sub.publications[1]);
  std::string direct;
  AppendDonePush(&direct, "session:a", 9);
  EXPECT_EQ(push, direct);
  push.clear();
  direct.clear();
  AppendPushOfPub(&push, "session:a", sub.publications[0]);
  AppendTokenPush(&direct, "session:a", "do\"lor", 8);
  EXPECT_EQ(push, direct);
}

}  // namespace
}  // namespace llmload::protocol::centrifugo
