#include "lib/common/backoff.h"

#include <set>

#include "gtest/gtest.h"

namespace llmload {
namespace {

TEST(BackoffTest, WindowDoublesUpToTheCapAndResets) {
  Backoff b(absl::Milliseconds(100), absl::Seconds(1), 1);
  EXPECT_EQ(b.Window(), absl::Milliseconds(100));
  for (absl::Duration want : {absl::Milliseconds(100), absl::Milliseconds(200),
                              absl::Milliseconds(400), absl::Milliseconds(800), absl::Seconds(1),
                              absl::Seconds(1)}) {
    EXPECT_EQ(b.Window(), want);
    const absl::Duration d = b.Next();
    EXPECT_GE(d, absl::ZeroDuration());
    EXPECT_LE(d, want);
  }
  b.Reset();
  EXPECT_EQ(b.Window(), absl::Milliseconds(100));
}

TEST(BackoffTest, FullJitterSpreadsClientsThatFailedTogether) {
  // A hundred clients lose the server at once: their first delays spread
  // over the window instead of coinciding.
  std::set<int64_t> distinct;
  int64_t lo = INT64_MAX;
  int64_t hi = 0;
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    Backoff b(absl::Seconds(1), absl::Seconds(5), seed);
    const int64_t ms = absl::ToInt64Milliseconds(b.Next());
    distinct.insert(ms);
    lo = std::min(lo, ms);
    hi = std::max(hi, ms);
  }
  EXPECT_GT(distinct.size(), 80u);
  EXPECT_LT(lo, 100);
  EXPECT_GT(hi, 900);
}

TEST(BackoffTest, SeedsDifferBetweenObjects) {
  int a = 0;
  int b = 0;
  EXPECT_NE(BackoffSeed(&a), BackoffSeed(&b));
}

}  // namespace
}  // namespace llmload
