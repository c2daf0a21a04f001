// Accuracy of lib/histogram against exact statistics of the samples: min,
// max, sum and mean exact, every percentile within Histogram::kRelativeError
// of the exact nearest-rank percentile.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/histogram/histogram.h"
#include "tests/unit/histogram/sample_sets.h"

namespace llmload::histogram {
namespace {

using testing::SampleSet;
using testing::StandardSampleSets;

__extension__ using Uint128 = unsigned __int128;

// Percentiles in millionths of a percent, so the exact rank is integer
// arithmetic: ceil(p / 100 * n) = ceil(micro_p * n / 10^8).
constexpr uint64_t kMicroPercent = 1'000'000;

uint64_t ExactNearestRank(const std::vector<uint64_t>& sorted, uint64_t micro_p) {
  const Uint128 scaled = static_cast<Uint128>(micro_p) * sorted.size();
  const Uint128 denom = 100 * kMicroPercent;
  auto rank = static_cast<uint64_t>((scaled + denom - 1) / denom);
  rank = std::clamp<uint64_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::vector<uint64_t> Clamped(const std::vector<uint64_t>& values) {
  std::vector<uint64_t> out;
  out.reserve(values.size());
  for (uint64_t v : values) {
    out.push_back(std::min(v, Histogram::kMaxValue));
  }
  return out;
}

class HistogramAccuracyTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    set_ = &StandardSampleSets()[GetParam()];
    for (uint64_t v : set_->values) {
      hist_.Record(v);
    }
    // Values above kMaxValue are recorded as kMaxValue (documented clamp);
    // the exact statistics are those of the clamped samples.
    sorted_ = Clamped(set_->values);
    std::sort(sorted_.begin(), sorted_.end());
  }

  const SampleSet* set_ = nullptr;
  Histogram hist_;
  std::vector<uint64_t> sorted_;
};

// Guards the generators: together the sets must exercise exact small values,
// latencies beyond an hour and saturation.
TEST(HistogramSampleSetsTest, SpanOneMicrosecondToBeyondMaxValue) {
  constexpr uint64_t kHourUs = 3'600'000'000;
  uint64_t below_2048 = 0;
  uint64_t above_hour = 0;
  uint64_t saturated = 0;
  for (const SampleSet& set : StandardSampleSets()) {
    EXPECT_EQ(set.values.size(), testing::kSamplesPerSet) << set.name;
    for (uint64_t v : set.values) {
      below_2048 += v < 2048;
      above_hour += v > kHourUs;
      saturated += v > Histogram::kMaxValue;
    }
  }
  EXPECT_GT(below_2048, 10'000u);
  EXPECT_GT(above_hour, 5'000u);
  EXPECT_GT(saturated, 1'000u);
}

TEST_P(HistogramAccuracyTest, MinMaxSumMeanAndSaturationAreExact) {
  uint64_t sum = 0;
  uint64_t saturated = 0;
  for (uint64_t v : set_->values) {
    sum += std::min(v, Histogram::kMaxValue);
    saturated += v > Histogram::kMaxValue;
  }
  EXPECT_EQ(hist_.Count(), sorted_.size());
  EXPECT_EQ(hist_.Min(), sorted_.front());
  EXPECT_EQ(hist_.Max(), sorted_.back());
  EXPECT_EQ(hist_.Sum(), sum);
  EXPECT_EQ(hist_.Saturated(), saturated);
  EXPECT_EQ(hist_.Mean(), static_cast<double>(sum) / static_cast<double>(sorted_.size()));
}

// Checks Percentile(p) against the exact nearest-rank value; p is passed as
// the double the caller would write (99.9), micro_p is its exact value.
::testing::AssertionResult WithinError(const Histogram& h, const std::vector<uint64_t>& sorted,
                                       double p, uint64_t micro_p) {
  const uint64_t exact = ExactNearestRank(sorted, micro_p);
  const uint64_t got = h.Percentile(p);
  const double diff = std::abs(static_cast<double>(got) - static_cast<double>(exact));
  const double rel = exact == 0 ? diff : diff / static_cast<double>(exact);
  const bool exact_region = exact < 2 * Histogram::kSubBuckets;
  if ((exact_region && got != exact) || rel > Histogram::kRelativeError || rel > 0.001) {
    return ::testing::AssertionFailure()
           << "p" << p << ": got " << got << ", exact nearest-rank " << exact
           << ", relative error " << rel << " > " << Histogram::kRelativeError;
  }
  return ::testing::AssertionSuccess();
}

TEST_P(HistogramAccuracyTest, ReportedPercentilesAreWithinStatedError) {
  const struct {
    double p;
    uint64_t micro_p;
  } kPercentiles[] = {{0, 0},
                      {1, 1'000'000},
                      {10, 10'000'000},
                      {25, 25'000'000},
                      {50, 50'000'000},
                      {75, 75'000'000},
                      {90, 90'000'000},
                      {95, 95'000'000},
                      {99, 99'000'000},
                      {99.9, 99'900'000},
                      {99.99, 99'990'000},
                      {100, 100'000'000}};
  for (const auto& [p, micro_p] : kPercentiles) {
    EXPECT_TRUE(WithinError(hist_, sorted_, p, micro_p));
  }
}

TEST_P(HistogramAccuracyTest, EveryTenthOfAPercentileIsWithinStatedError) {
  int failures = 0;
  for (uint64_t k = 0; k <= 1000 && failures < 5; ++k) {
    const ::testing::AssertionResult r =
        WithinError(hist_, sorted_, static_cast<double>(k) / 10, k * kMicroPercent / 10);
    if (!r) {
      ADD_FAILURE() << r.message();
      ++failures;
    }
  }
}

TEST_P(HistogramAccuracyTest, PercentilesAreMonotoneAndWithinMinMax) {
  uint64_t prev = 0;
  for (int k = 0; k <= 10'000; ++k) {
    const uint64_t v = hist_.Percentile(k / 100.0);
    ASSERT_GE(v, prev) << "p" << k / 100.0;
    ASSERT_GE(v, hist_.Min());
    ASSERT_LE(v, hist_.Max());
    prev = v;
  }
}

INSTANTIATE_TEST_SUITE_P(SampleSets, HistogramAccuracyTest,
                         ::testing::Range<size_t>(0, StandardSampleSets().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return StandardSampleSets()[info.param].name;
                         });

}  // namespace
}  // namespace llmload::histogram
