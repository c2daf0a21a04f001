// Per-turn metrics (TurnTable): shipped as tagged ttft deltas, merged apart
// from the untagged histograms, summarized per turn.

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"

namespace llmload::metrics {
namespace {

using ::testing::HasSubstr;

TEST(TurnTableTest, RoundTripsThroughABatch) {
  MetricSet worker;
  worker.RecordUs(v1::TTFT, 1000);
  worker.Turns().Complete(1, 1000, true, 3, 5);
  worker.Turns().Complete(3, 4000, true, 19, 5);
  worker.Turns().Complete(3, 6000, true, 21, 4);
  v1::SampleBatch batch;
  worker.AppendTo(batch);
  int tagged = 0;
  for (const v1::HistogramDelta& d : batch.histograms()) {
    tagged += d.has_turn() ? 1 : 0;
  }
  EXPECT_EQ(tagged, 2);  // turns 1 and 3; turn 2 has nothing

  MetricSet collector;
  ASSERT_TRUE(collector.MergeBatch(batch).ok());
  ASSERT_TRUE(collector.MergeBatch(batch).ok());
  EXPECT_EQ(collector.Hist(v1::TTFT).Count(), 2u);  // tagged deltas stay apart
  google::protobuf::RepeatedPtrField<v1::TurnStats> stats;
  collector.Turns().Fill(stats);
  ASSERT_EQ(stats.size(), 2);
  EXPECT_EQ(stats[0].turn(), 1);
  EXPECT_EQ(stats[0].requests(), 2u);
  EXPECT_EQ(stats[0].input_tokens(), 6u);
  EXPECT_DOUBLE_EQ(stats[0].input_tokens_mean(), 3.0);
  EXPECT_EQ(stats[1].turn(), 3);
  EXPECT_EQ(stats[1].requests(), 4u);
  EXPECT_EQ(stats[1].tokens(), 18u);
  EXPECT_DOUBLE_EQ(stats[1].input_tokens_mean(), 20.0);
  EXPECT_EQ(stats[1].ttft().count(), 4u);
  EXPECT_DOUBLE_EQ(stats[1].ttft().min_ms(), 4.0);
}

TEST(TurnTableTest, BadTagsRejectTheWholeBatch) {
  MetricSet worker;
  worker.Turns().Complete(2, 1000, true, 3, 5);
  v1::SampleBatch good;
  worker.AppendTo(good);
  for (int32_t turn : {0, -1, kMaxTurns + 1}) {
    v1::SampleBatch bad = good;
    bad.mutable_histograms(0)->mutable_turn()->set_turn(turn);
    TurnTable t;
    const absl::Status s = t.MergeBatch(bad);
    EXPECT_THAT(std::string(s.message()), HasSubstr("turn out of range"));
    EXPECT_TRUE(t.Empty());
  }
  v1::SampleBatch other = good;
  other.mutable_histograms(0)->set_metric(v1::E2E);
  MetricSet m;
  EXPECT_FALSE(m.MergeBatch(other).ok());
  v1::SampleBatch garbled = good;
  garbled.mutable_histograms(0)->set_encoded("\xff\xff garbage");
  EXPECT_FALSE(m.MergeBatch(garbled).ok());
  EXPECT_TRUE(m.Empty());
}

}  // namespace
}  // namespace llmload::metrics
