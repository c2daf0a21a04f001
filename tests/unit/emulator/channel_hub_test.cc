#include "services/emulator/channel_hub.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "boost/asio/io_context.hpp"
#include "boost/json.hpp"
#include "gtest/gtest.h"

namespace llmload::emulator {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

class RecordingSubscriber : public ChannelSubscriber {
 public:
  void DeliverPush(std::string frame) override {
    frames.push_back(std::move(frame));
    if (on_push) {
      on_push(frames.size());
    }
  }
  std::vector<std::string> frames;
  std::function<void(size_t)> on_push;
};

struct Pub {
  std::string channel;
  std::string token;
  bool done = false;
  uint64_t offset = 0;
};

Pub Decode(const std::string& frame) {
  const json::value v = json::parse(frame);
  const json::object& push = v.at("push").as_object();
  Pub p;
  p.channel = std::string(push.at("channel").as_string());
  const json::object& pub = push.at("pub").as_object();
  p.offset = pub.at("offset").to_number<uint64_t>();
  const json::object& data = pub.at("data").as_object();
  if (const json::value* t = data.if_contains("token")) {
    p.token = std::string(t->as_string());
  }
  if (const json::value* d = data.if_contains("done")) {
    p.done = d->as_bool();
  }
  return p;
}

class ChannelHubTest : public testing::Test {
 protected:
  ChannelHubTest() : hub_([this] { return "E" + std::to_string(++epochs_); }) {}

  std::shared_ptr<RecordingSubscriber> Subscribe(const std::string& channel) {
    auto sub = std::make_shared<RecordingSubscriber>();
    hub_.Subscribe(channel, sub, sub.get(), &context_);
    return sub;
  }

  int epochs_ = 0;
  boost::asio::io_context context_;
  ChannelHub hub_;
};

TEST_F(ChannelHubTest, SubscribeReportsEpochAndOffset) {
  auto sub = std::make_shared<RecordingSubscriber>();
  protocol::centrifugo::ServerSubscription s = hub_.Subscribe("session:a", sub, sub.get(), &context_);
  EXPECT_EQ(s.channel, "session:a");
  EXPECT_EQ(s.epoch, "E1");
  EXPECT_EQ(s.offset, 0u);
  EXPECT_TRUE(s.recoverable);
  EXPECT_TRUE(s.positioned);
  // Idempotent per subscriber; a second channel gets its own epoch.
  EXPECT_EQ(hub_.Subscribe("session:a", sub, sub.get(), &context_).epoch, "E1");
  EXPECT_EQ(hub_.Subscribe("session:b", sub, sub.get(), &context_).epoch, "E2");
  EXPECT_EQ(hub_.ChannelCountForTest(), 2u);
}

TEST_F(ChannelHubTest, StreamsTokensThenDoneWithIncreasingOffsets) {
  auto sub = Subscribe("session:a");
  ASSERT_TRUE(hub_.StartTokenStream("session:a", {"Lorem", "ipsum", "dolor", "sit", "amet."},
                                    milliseconds(1)));
  const auto start = std::chrono::steady_clock::now();
  context_.run();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(sub->frames.size(), 6u);
  // The fixture's exact first push.
  EXPECT_EQ(sub->frames[0],
            "{\"push\":{\"channel\":\"session:a\",\"pub\":{\"data\":{\"token\":\"Lorem\"},"
            "\"offset\":1}}}");
  const std::vector<std::string> words = {"Lorem", "ipsum", "dolor", "sit", "amet."};
  for (size_t i = 0; i < 5; ++i) {
    const Pub p = Decode(sub->frames[i]);
    EXPECT_EQ(p.token, words[i]);
    EXPECT_EQ(p.offset, i + 1);
    EXPECT_FALSE(p.done);
  }
  const Pub done = Decode(sub->frames[5]);
  EXPECT_TRUE(done.done);
  EXPECT_EQ(done.offset, 6u);
  // Five delays: after each token, including the last.
  EXPECT_GE(elapsed, milliseconds(5));
}

TEST_F(ChannelHubTest, OffsetsContinueAcrossRuns) {
  auto sub = Subscribe("session:a");
  ASSERT_TRUE(hub_.StartTokenStream("session:a", {"A."}, milliseconds(0)));
  context_.run();
  context_.restart();
  ASSERT_TRUE(hub_.StartTokenStream("session:a", {"B."}, milliseconds(0)));
  context_.run();
  ASSERT_EQ(sub->frames.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(Decode(sub->frames[i]).offset, i + 1);
  }
  auto late = std::make_shared<RecordingSubscriber>();
  EXPECT_EQ(hub_.Subscribe("session:a", late, late.get(), &context_).offset, 4u);
}

TEST_F(ChannelHubTest, ZeroDelayLongRunIsDeliveredInOrder) {
  auto sub = Subscribe("session:a");
  std::vector<std::string> tokens;
  for (int i = 0; i < 2000; ++i) {
    tokens.push_back("w" + std::to_string(i));
  }
  ASSERT_TRUE(hub_.StartTokenStream("session:a", tokens, milliseconds(0)));
  context_.run();
  ASSERT_EQ(sub->frames.size(), 2001u);
  for (size_t i = 0; i < 2000; ++i) {
    const Pub p = Decode(sub->frames[i]);
    ASSERT_EQ(p.token, tokens[i]);
    ASSERT_EQ(p.offset, i + 1);
  }
  EXPECT_TRUE(Decode(sub->frames[2000]).done);
}

TEST_F(ChannelHubTest, NoSubscriberMeansDropped) {
  EXPECT_FALSE(hub_.StartTokenStream("session:nobody", {"A."}, milliseconds(0)));
  auto sub = Subscribe("session:a");
  hub_.Unsubscribe("session:a", sub.get());
  EXPECT_EQ(hub_.ChannelCountForTest(), 0u);
  EXPECT_FALSE(hub_.StartTokenStream("session:a", {"A."}, milliseconds(0)));
}

TEST_F(ChannelHubTest, StreamStopsWhenTheLastSubscriberLeaves) {
  auto sub = Subscribe("session:a");
  sub->on_push = [&](size_t n) {
    if (n == 3) {
      hub_.Unsubscribe("session:a", sub.get());
    }
  };
  ASSERT_TRUE(hub_.StartTokenStream("session:a", {"a", "b", "c", "d", "e."}, milliseconds(0)));
  EXPECT_EQ(hub_.ChannelCountForTest(), 1u);  // kept while the stream runs
  context_.run();
  EXPECT_EQ(sub->frames.size(), 3u);
  EXPECT_EQ(hub_.ChannelCountForTest(), 0u);  // forgotten once the stream ended
}

// A run whose subscriber left before its end is what a cancelled request
// looks like from the emulator: counted for the plan's protocol.
TEST_F(ChannelHubTest, ARunTheSubscriberLeftIsCountedAsAbandoned) {
  BehaviourConfig config;
  config.length_words = 5;
  config.token_delay_seconds = 0;
  Behaviour behaviour(config);
  auto whole = Subscribe("session:whole");
  ASSERT_TRUE(hub_.StartTokenStream("session:whole",
                                    behaviour.Plan(Protocol::kCentrifugo, "q", {})));
  context_.run();
  EXPECT_EQ(whole->frames.size(), 6u);  // 5 tokens and done
  EXPECT_EQ(behaviour.AbandonedCount(Protocol::kCentrifugo), 0u);

  auto left = Subscribe("session:left");
  left->on_push = [&](size_t n) {
    if (n == 2) {
      hub_.Unsubscribe("session:left", left.get());
    }
  };
  ASSERT_TRUE(
      hub_.StartTokenStream("session:left", behaviour.Plan(Protocol::kCentrifugo, "q", {})));
  context_.restart();
  context_.run();
  EXPECT_EQ(left->frames.size(), 2u);
  EXPECT_EQ(behaviour.AbandonedCount(Protocol::kCentrifugo), 1u);
}

TEST_F(ChannelHubTest, ExpiredSubscriberIsSkipped) {
  auto keep = Subscribe("session:a");
  {
    auto gone = Subscribe("session:a");
  }  // destroyed without unsubscribing
  ASSERT_TRUE(hub_.StartTokenStream("session:a", {"A."}, milliseconds(0)));
  context_.run();
  EXPECT_EQ(keep->frames.size(), 2u);
}

TEST_F(ChannelHubTest, EverySubscriberGetsTheSamePushes) {
  auto a = Subscribe("session:a");
  boost::asio::io_context other;
  auto b = std::make_shared<RecordingSubscriber>();
  hub_.Subscribe("session:a", b, b.get(), &other);  // on another loop
  ASSERT_TRUE(hub_.StartTokenStream("session:a", {"x", "y."}, milliseconds(0)));
  context_.run();
  other.run();  // pushes for b were posted to its loop
  ASSERT_EQ(a->frames.size(), 3u);
  EXPECT_EQ(a->frames, b->frames);
}

}  // namespace
}  // namespace llmload::emulator
