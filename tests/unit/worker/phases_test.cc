// Warm-up and cool-down (RunSpec.warmup, cooldown): which requests belong to
// which phase, and how a phase's measurements are reported apart.

#include <chrono>

#include "gtest/gtest.h"
#include "services/worker/shard.h"

namespace llmload::worker {
namespace {

using std::chrono::seconds;

TEST(PhasePlanTest, WarmupRequestsAreSplitEvenlyOverTheClients) {
  PhasePlan p;
  p.warmup_requests = 5;
  p.clients = 3;
  EXPECT_EQ(p.WarmupRequestsOf(0), 2);
  EXPECT_EQ(p.WarmupRequestsOf(1), 2);
  EXPECT_EQ(p.WarmupRequestsOf(2), 1);
  EXPECT_EQ(p.WarmupRequestsOf(-1), 0);  // the open model has no client
  p.warmup_requests = 2;
  p.clients = 4;
  EXPECT_EQ(p.WarmupRequestsOf(0) + p.WarmupRequestsOf(1) + p.WarmupRequestsOf(2) +
                p.WarmupRequestsOf(3),
            2);
  EXPECT_EQ(p.WarmupRequestsOf(3), 0);
}

TEST(PhasePlanTest, EachRequestFallsInOnePhase) {
  PhasePlan p;
  EXPECT_FALSE(p.enabled());
  p.warmup_requests = 2;
  p.clients = 1;
  EXPECT_TRUE(p.enabled());
  EXPECT_EQ(p.PhaseOf(0, 0, seconds(0), seconds(0)), Phase::kWarmup);
  EXPECT_EQ(p.PhaseOf(0, 1, seconds(9), seconds(0)), Phase::kWarmup);
  EXPECT_EQ(p.PhaseOf(0, 2, seconds(9), seconds(0)), Phase::kCounted);
  PhasePlan timed;
  timed.warmup_for = seconds(2);
  timed.cooldown_for = seconds(3);
  const auto length = seconds(10);
  EXPECT_EQ(timed.PhaseOf(0, 0, std::chrono::milliseconds(1999), length), Phase::kWarmup);
  EXPECT_EQ(timed.PhaseOf(0, 7, seconds(2), length), Phase::kCounted);
  EXPECT_EQ(timed.PhaseOf(0, 7, std::chrono::milliseconds(6999), length), Phase::kCounted);
  EXPECT_EQ(timed.PhaseOf(0, 7, seconds(7), length), Phase::kCooldown);
  // A closed load (no length) has no cool-down.
  EXPECT_EQ(timed.PhaseOf(0, 7, seconds(100), seconds(0)), Phase::kCounted);
}

TEST(PhasePlanTest, FoldPhaseReportsAPhaseApart) {
  metrics::MetricSet warm;
  warm.Add(v1::OFFERED, 5);
  warm.Add(v1::REQUESTS_OK, 3);
  warm.Add(v1::TIMEOUT, 1);
  warm.Add(v1::UNFINISHED, 1);
  warm.Add(v1::TOKENS, 40);
  warm.Add(v1::BYTES_IN, 900);
  warm.Add(v1::SESSIONS_OPENED, 2);
  warm.RecordUs(v1::TTFT, 1000);
  warm.RecordUs(v1::CONNECT, 300);
  metrics::MetricSet out;
  FoldPhase(warm, Phase::kWarmup, out);
  EXPECT_EQ(out.Get(v1::WARMUP_REQUESTS), 5u);
  EXPECT_EQ(out.Get(v1::WARMUP_FAILED), 1u);
  EXPECT_EQ(out.Get(v1::WARMUP_TOKENS), 40u);
  // Nothing of the requests reaches the run's own numbers...
  EXPECT_EQ(out.Get(v1::OFFERED), 0u);
  EXPECT_EQ(out.Get(v1::REQUESTS_OK), 0u);
  EXPECT_EQ(out.Get(v1::TIMEOUT), 0u);
  EXPECT_EQ(out.Get(v1::UNFINISHED), 0u);
  EXPECT_EQ(out.Get(v1::TOKENS), 0u);
  EXPECT_TRUE(out.Hist(v1::TTFT).Empty());
  // ...but what the connections did does.
  EXPECT_EQ(out.Get(v1::BYTES_IN), 900u);
  EXPECT_EQ(out.Get(v1::SESSIONS_OPENED), 2u);
  EXPECT_EQ(out.Hist(v1::CONNECT).Count(), 1u);
  metrics::MetricSet cool_out;
  FoldPhase(warm, Phase::kCooldown, cool_out);
  EXPECT_EQ(cool_out.Get(v1::COOLDOWN_REQUESTS), 5u);
  EXPECT_EQ(cool_out.Get(v1::COOLDOWN_TOKENS), 40u);
  EXPECT_EQ(cool_out.Get(v1::WARMUP_REQUESTS), 0u);
}

}  // namespace
}  // namespace llmload::worker
