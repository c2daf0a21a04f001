#include <chrono>

#include "gtest/gtest.h"
#include "services/worker/session_util.h"

namespace llmload::worker {
namespace {

using std::chrono::milliseconds;

TEST(RequestMeterTest, ARequestTheSpecKeepsIsNeverDue) {
  RequestMeter meter;
  metrics::MetricSet m;
  const Clock::time_point t0 = Clock::now();
  meter.Begin(NextStep{}, t0);
  for (int i = 1; i <= 50; ++i) {
    meter.Chunk(m, t0 + milliseconds(i));
  }
  EXPECT_FALSE(meter.CancelDue(t0 + std::chrono::hours(1)));
  EXPECT_EQ(meter.cancel_at(), Clock::time_point::max());
}

TEST(RequestMeterTest, DueAfterItsTokensOrItsTimeWhicheverFirst) {
  RequestMeter meter;
  metrics::MetricSet m;
  const Clock::time_point t0 = Clock::now();
  NextStep step;
  step.kind = NextStep::Kind::kRequest;
  step.cancel_after_tokens = 3;
  step.cancel_after = milliseconds(100);
  meter.Begin(step, t0);
  EXPECT_EQ(meter.cancel_at(), t0 + milliseconds(100));
  meter.Chunk(m, t0 + milliseconds(10));
  meter.Chunk(m, t0 + milliseconds(20));
  EXPECT_FALSE(meter.CancelDue(t0 + milliseconds(20)));
  EXPECT_TRUE(meter.CancelDue(t0 + milliseconds(100)));  // the time limit
  meter.Chunk(m, t0 + milliseconds(30));
  EXPECT_TRUE(meter.CancelDue(t0 + milliseconds(30)));  // the third token

  // The next request starts clean.
  meter.Begin(NextStep{}, t0 + milliseconds(200));
  meter.Chunk(m, t0 + milliseconds(210));
  EXPECT_FALSE(meter.CancelDue(t0 + milliseconds(900)));
}

TEST(RequestMeterTest, AnAbandonedRequestKeepsItsTokensAndIsNeitherOkNorFailed) {
  RequestMeter meter;
  metrics::MetricSet m;
  const Clock::time_point t0 = Clock::now();
  NextStep step;
  step.kind = NextStep::Kind::kRequest;
  step.cancel_after_tokens = 3;
  meter.Begin(step, t0);
  meter.Chunk(m, t0 + milliseconds(40));
  meter.Chunk(m, t0 + milliseconds(50));
  meter.Chunk(m, t0 + milliseconds(60));
  const RequestOutcome out = meter.Abandon(m, t0 + milliseconds(60));
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.counter, v1::REQUESTS_CANCELLED);
  EXPECT_EQ(out.tokens, 3u);
  EXPECT_EQ(out.ttft_us, 40000u);
  EXPECT_EQ(out.e2e_us, 60000u);
  EXPECT_EQ(m.Get(v1::REQUESTS_CANCELLED), 1u);
  EXPECT_EQ(m.Get(v1::TOKENS), 3u);
  EXPECT_EQ(m.Get(v1::CHUNKS), 3u);
  EXPECT_EQ(m.Get(v1::CYCLES), 1u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 0u);
  EXPECT_EQ(metrics::FailedRequests(m), 0u);
  // ttft and the two gaps were measured; an answer it never finished has
  // no e2e or tpot.
  EXPECT_EQ(m.Hist(v1::TTFT).Count(), 1u);
  EXPECT_EQ(m.Hist(v1::ITL).Count(), 2u);
  EXPECT_EQ(m.Hist(v1::E2E).Count(), 0u);
  EXPECT_EQ(m.Hist(v1::TPOT).Count(), 0u);
}

}  // namespace
}  // namespace llmload::worker
