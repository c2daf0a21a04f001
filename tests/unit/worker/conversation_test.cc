// The history a multi-turn conversation resends (Target.turns).

#include "services/worker/conversation.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "services/worker/session_util.h"
#include "services/worker/shard.h"

namespace llmload::worker {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs Of(const Conversation& c) {
  Pairs out;
  for (const protocol::llm::ChatMessage& m : c.Messages()) {
    out.emplace_back(std::string(m.role), std::string(m.content));
  }
  return out;
}

TEST(ConversationTest, EachTurnSendsTheHistoryWithTheAnswersReceived) {
  Conversation c;
  c.Begin(1, "q1", nullptr);
  EXPECT_EQ(Of(c), (Pairs{{"user", "q1"}}));
  c.AppendReply("a1 ");
  c.AppendReply("part");
  c.End(/*answered=*/true);
  c.Begin(2, "q2", nullptr);
  EXPECT_EQ(Of(c), (Pairs{{"user", "q1"}, {"assistant", "a1 part"}, {"user", "q2"}}));
  c.AppendReply("a2");
  c.End(true);
  c.Begin(3, "q3", nullptr);
  EXPECT_EQ(Of(c), (Pairs{{"user", "q1"}, {"assistant", "a1 part"}, {"user", "q2"},
                          {"assistant", "a2"}, {"user", "q3"}}));
  c.End(true);  // no text arrived: the turn leaves no trace
  EXPECT_EQ(c.history_size(), 4u);
  // Turn 1 again: a new conversation.
  c.Begin(1, "fresh", nullptr);
  EXPECT_EQ(Of(c), (Pairs{{"user", "fresh"}}));
}

TEST(ConversationTest, AFailedTurnLeavesNoTrace) {
  Conversation c;
  c.Begin(1, "q1", nullptr);
  c.AppendReply("a1");
  c.End(true);
  c.Begin(2, "q2", nullptr);
  c.AppendReply("half an ans");
  c.End(/*answered=*/false);
  c.Begin(3, "q3", nullptr);
  EXPECT_EQ(Of(c), (Pairs{{"user", "q1"}, {"assistant", "a1"}, {"user", "q3"}}));
}

TEST(ConversationTest, AResendBeginsTheTurnAfresh) {
  Conversation c;
  c.Begin(1, "q1", nullptr);
  c.AppendReply("a1");
  c.End(true);
  c.Begin(2, "q2", nullptr);
  c.AppendReply("stale");
  c.Begin(2, "q2", nullptr);  // sent again on a new connection
  EXPECT_EQ(Of(c), (Pairs{{"user", "q1"}, {"assistant", "a1"}, {"user", "q2"}}));
  c.AppendReply("a2");
  c.End(true);
  c.Begin(3, "q3", nullptr);
  EXPECT_EQ(Of(c).at(3), (std::pair<std::string, std::string>{"assistant", "a2"}));
}

TEST(ConversationTest, ADatasetEntryOpensTheConversationWhole) {
  v1::PromptConversation entry;
  auto add = [&](const char* role, const char* content) {
    v1::PromptMessage* m = entry.add_messages();
    m->set_role(role);
    m->set_content(content);
  };
  add("system", "Be terse.");
  add("user", "Hi");
  Conversation c;
  c.Begin(1, "Hi", &entry);
  EXPECT_EQ(Of(c), (Pairs{{"system", "Be terse."}, {"user", "Hi"}}));
  c.AppendReply("Hello.");
  c.End(true);
  // Later turns add the entry's user message only.
  c.Begin(2, "Bye", &entry);
  EXPECT_EQ(Of(c), (Pairs{{"system", "Be terse."}, {"user", "Hi"}, {"assistant", "Hello."},
                          {"user", "Bye"}}));
}

TEST(ConversationTest, TurnOfNumbersRequestsWithinConversations) {
  EXPECT_EQ(TurnOf(1, 0), 0);
  EXPECT_EQ(TurnOf(5, 1), 0);
  EXPECT_EQ(TurnOf(1, 3), 1);
  EXPECT_EQ(TurnOf(3, 3), 3);
  EXPECT_EQ(TurnOf(4, 3), 1);
  EXPECT_EQ(TurnOf(8, 3), 2);
}

TEST(ConversationTest, TheMeterRecordsEachTurnApart) {
  metrics::MetricSet m;
  RequestMeter meter;
  const Clock::time_point t0 = Clock::now();
  for (int32_t turn : {1, 2, 2}) {
    NextStep step;
    step.kind = NextStep::Kind::kRequest;
    step.turn = turn;
    meter.Begin(step, t0);
    meter.SetInputEstimate(10 * turn);
    meter.ReportInput(7 * turn);  // the target's count wins
    meter.Chunk(m, t0 + std::chrono::milliseconds(3 * turn));
    const RequestOutcome out = meter.Complete(m, t0 + std::chrono::milliseconds(10), 4);
    EXPECT_EQ(out.turn, turn);
    EXPECT_EQ(out.input_tokens, static_cast<uint64_t>(7 * turn));
  }
  ASSERT_EQ(m.Turns().size(), 2u);
  const metrics::TurnMetrics& t1 = m.Turns().At(1);
  const metrics::TurnMetrics& t2 = m.Turns().At(2);
  EXPECT_EQ(t1.requests, 1u);
  EXPECT_EQ(t1.input_tokens, 7u);
  EXPECT_EQ(t1.tokens, 4u);
  EXPECT_EQ(t1.ttft.Count(), 1u);
  EXPECT_EQ(t2.requests, 2u);
  EXPECT_EQ(t2.input_tokens, 28u);
  EXPECT_EQ(t2.ttft.Count(), 2u);
  EXPECT_EQ(m.Hist(v1::TTFT).Count(), 3u);  // and every request in the run's ttft
  // A single-turn request records no turn.
  metrics::MetricSet single;
  meter.Begin(NextStep{}, t0);
  meter.Chunk(single, t0);
  meter.Complete(single, t0, 1);
  EXPECT_TRUE(single.Turns().Empty());
}

}  // namespace
}  // namespace llmload::worker
