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


// With history: a subscriber that leaves mid-run and comes back with its
// position gets what it missed in its reply, then the rest live; none twice.
class ChannelHistoryTest : public testing::Test {
 protected:
  explicit ChannelHistoryTest(size_t size = 1000)
      : hub_([this] { return "E" + std::to_string(++epochs_); },
             ChannelHistoryOptions{size, std::chrono::seconds(300)}) {}

  int epochs_ = 0;
  boost::asio::io_context context_;
  ChannelHub hub_;
};

// Tokens of pub objects, in order.
std::vector<std::string> TokensOf(const std::vector<std::string>& pubs) {
  std::vector<std::string> out;
  for (const std::string& p : pubs) {
    const json::object o = json::parse(p).as_object();
    const json::object& data = o.at("data").as_object();
    out.emplace_back(data.contains("done") ? "<done>" : std::string(data.at("token").as_string()));
  }
  return out;
}

TEST_F(ChannelHistoryTest, AReturningSubscriberRecoversWhatItMissed) {
  auto first = std::make_shared<RecordingSubscriber>();
  ASSERT_EQ(hub_.Subscribe("session:a", first, first.get(), &context_).epoch, "E1");
  // Gone after two tokens: the stream goes on into the history.
  first->on_push = [&](size_t n) {
    if (n == 2) {
      hub_.Unsubscribe("session:a", first.get());
    }
  };
  ASSERT_TRUE(hub_.StartTokenStream("session:a", {"a", "b", "c", "d", "e."}, milliseconds(0)));
  context_.run();
  EXPECT_EQ(first->frames.size(), 2u);
  EXPECT_EQ(hub_.ChannelCountForTest(), 1u);  // kept for its history
  auto back = std::make_shared<RecordingSubscriber>();
  protocol::centrifugo::SubRecovery from{"session:a", true, 2, "E1"};
  const protocol::centrifugo::ServerSubscription sub =
      hub_.Subscribe("session:a", back, back.get(), &context_, from);
  EXPECT_EQ(sub.epoch, "E1");
  EXPECT_EQ(sub.offset, 6u);
  EXPECT_TRUE(sub.was_recovering);
  EXPECT_TRUE(sub.recovered);
  EXPECT_EQ(TokensOf(sub.publications), (std::vector<std::string>{"c", "d", "e.", "<done>"}));
  EXPECT_EQ(json::parse(sub.publications[0]).at("offset").to_number<uint64_t>(), 3u);
  // Nothing missed: recovered, nothing to send.
  auto again = std::make_shared<RecordingSubscriber>();
  const auto up_to_date = hub_.Subscribe("session:a", again, again.get(), &context_,
                                         {"session:a", true, 6, "E1"});
  EXPECT_TRUE(up_to_date.recovered);
  EXPECT_TRUE(up_to_date.publications.empty());
  EXPECT_EQ(hub_.recoveries_attempted(), 2u);
  EXPECT_EQ(hub_.recoveries_succeeded(), 2u);
  EXPECT_EQ(hub_.publications_recovered(), 4u);
}

TEST_F(ChannelHistoryTest, AnotherEpochOrAnOffsetAheadIsNotRecovered) {
  auto sub = std::make_shared<RecordingSubscriber>();
  hub_.Subscribe("session:a", sub, sub.get(), &context_);
  ASSERT_TRUE(hub_.StartTokenStream("session:a", {"a."}, milliseconds(0)));
  context_.run();
  for (const protocol::centrifugo::SubRecovery& r :
       {protocol::centrifugo::SubRecovery{"session:a", true, 0, "E9"},
        protocol::centrifugo::SubRecovery{"session:a", true, 7, "E1"}}) {
    auto other = std::make_shared<RecordingSubscriber>();
    const auto s = hub_.Subscribe("session:a", other, other.get(), &context_, r);
    EXPECT_TRUE(s.was_recovering);
    EXPECT_FALSE(s.recovered);
    EXPECT_TRUE(s.publications.empty());
  }
  EXPECT_EQ(hub_.recoveries_attempted(), 2u);
  EXPECT_EQ(hub_.recoveries_succeeded(), 0u);
}

// Deleting the session drops the history: a run nobody listens to stops
// there (and counts as abandoned), and the channel is forgotten.
TEST_F(ChannelHistoryTest, RemovingTheHistoryStopsAnUnheardRun) {
  BehaviourConfig config;
  config.length_words = 6;
  config.token_delay_seconds = 0;
  Behaviour behaviour(config);
  auto sub = std::make_shared<RecordingSubscriber>();
  hub_.Subscribe("session:a", sub, sub.get(), &context_);
  sub->on_push = [&](size_t n) {
    if (n == 2) {
      hub_.Unsubscribe("session:a", sub.get());
      hub_.RemoveHistory("session:a");
    }
  };
  ASSERT_TRUE(hub_.StartTokenStream("session:a", behaviour.Plan(Protocol::kCentrifugo, "q", {})));
  context_.run();
  EXPECT_EQ(sub->frames.size(), 2u);
  EXPECT_EQ(behaviour.AbandonedCount(Protocol::kCentrifugo), 1u);
  EXPECT_EQ(hub_.ChannelCountForTest(), 0u);
}

// A run asked for while its client is away (the connection just dropped)
// starts into the history when the hub allows it, and the client gets it
// by recovery; a deleted session's channel takes no run.
TEST(ChannelHistoryAwayTest, ARunStartsIntoTheHistoryOfAnAbsentClient) {
  boost::asio::io_context context;
  ChannelHub hub([] { return std::string("E1"); },
                 ChannelHistoryOptions{1000, std::chrono::seconds(300), true});
  auto sub = std::make_shared<RecordingSubscriber>();
  hub.Subscribe("session:a", sub, sub.get(), &context);
  ASSERT_TRUE(hub.StartTokenStream("session:a", {"a."}, milliseconds(0)));
  context.run();
  hub.Unsubscribe("session:a", sub.get());
  ASSERT_TRUE(hub.StartTokenStream("session:a", {"b", "c."}, milliseconds(0)));
  context.restart();
  context.run();
  auto back = std::make_shared<RecordingSubscriber>();
  const auto s =
      hub.Subscribe("session:a", back, back.get(), &context, {"session:a", true, 2, "E1"});
  EXPECT_TRUE(s.recovered);
  EXPECT_EQ(TokensOf(s.publications), (std::vector<std::string>{"b", "c.", "<done>"}));
  hub.Unsubscribe("session:a", back.get());
  hub.RemoveHistory("session:a");
  EXPECT_FALSE(hub.StartTokenStream("session:a", {"d."}, milliseconds(0)));
  // Without the option (a group of processes) an absent client's channel
  // takes no run: it is relayed to the process that has the client.
  ChannelHub group([] { return std::string("E1"); }, ChannelHistoryOptions{1000});
  auto member = std::make_shared<RecordingSubscriber>();
  group.Subscribe("session:a", member, member.get(), &context);
  ASSERT_TRUE(group.StartTokenStream("session:a", {"a."}, milliseconds(0)));
  context.restart();
  context.run();
  group.Unsubscribe("session:a", member.get());
  EXPECT_FALSE(group.StartTokenStream("session:a", {"b."}, milliseconds(0)));
}

class SmallHistoryTest : public ChannelHistoryTest {
 protected:
  SmallHistoryTest() : ChannelHistoryTest(2) {}
};

// A gap larger than the history: recovered false, with what the history
// still holds (the publications after the lost ones).
TEST_F(SmallHistoryTest, AGapLargerThanTheHistoryIsNotRecovered) {
  auto first = std::make_shared<RecordingSubscriber>();
  hub_.Subscribe("session:a", first, first.get(), &context_);
  first->on_push = [&](size_t n) {
    if (n == 1) {
      hub_.Unsubscribe("session:a", first.get());
    }
  };
  ASSERT_TRUE(hub_.StartTokenStream("session:a", {"a", "b", "c", "d", "e."}, milliseconds(0)));
  context_.run();
  ASSERT_EQ(first->frames.size(), 1u);
  auto back = std::make_shared<RecordingSubscriber>();
  const auto sub = hub_.Subscribe("session:a", back, back.get(), &context_,
                                  {"session:a", true, 1, "E1"});
  EXPECT_TRUE(sub.was_recovering);
  EXPECT_FALSE(sub.recovered);
  // Offsets 2, 3 and 4 are gone; 5 and 6 remain.
  EXPECT_EQ(TokensOf(sub.publications), (std::vector<std::string>{"e.", "<done>"}));
  EXPECT_EQ(hub_.recoveries_succeeded(), 0u);
  EXPECT_EQ(hub_.publications_recovered(), 2u);
  // Just within the history: recovered.
  auto late = std::make_shared<RecordingSubscriber>();
  const auto ok = hub_.Subscribe("session:a", late, late.get(), &context_,
                                 {"session:a", true, 4, "E1"});
  EXPECT_TRUE(ok.recovered);
  EXPECT_EQ(TokensOf(ok.publications), (std::vector<std::string>{"e.", "<done>"}));
}

// Without history (size 0) the channel is forgotten with its last
// subscriber, as before: a returning client finds a new epoch.
TEST_F(ChannelHubTest, WithoutHistoryAReturningSubscriberFindsANewEpoch) {
  auto sub = Subscribe("session:a");
  hub_.Unsubscribe("session:a", sub.get());
  auto back = std::make_shared<RecordingSubscriber>();
  const auto s = hub_.Subscribe("session:a", back, back.get(), &context_,
                                {"session:a", true, 0, "E1"});
  EXPECT_EQ(s.epoch, "E2");
  EXPECT_FALSE(s.recovered);
  EXPECT_TRUE(s.was_recovering);
}

// What the hub hands the endpoint must make a real reply: the recovered
// publications appear in the subscribe reply in offset order.
TEST_F(ChannelHistoryTest, TheReplyCarriesThePublications) {
  auto sub = std::make_shared<RecordingSubscriber>();
  hub_.Subscribe("session:a", sub, sub.get(), &context_);
  ASSERT_TRUE(hub_.StartTokenStream("session:a", {"x"}, milliseconds(0)));
  context_.run();
  hub_.Unsubscribe("session:a", sub.get());
  auto back = std::make_shared<RecordingSubscriber>();
  const auto s =
      hub_.Subscribe("session:a", back, back.get(), &context_, {"session:a", true, 0, "E1"});
  EXPECT_EQ(protocol::centrifugo::EncodeSubscribeReply(2, s),
            R"({"id":2,"subscribe":{"recoverable":true,"epoch":"E1","offset":2,)"
            R"("positioned":true,"recovered":true,"was_recovering":true,"publications":[)"
            R"({"data":{"token":"x"},"offset":1},{"data":{"done":true},"offset":2}]}})");
}

}  // namespace
}  // namespace llmload::emulator
