// Bucket geometry, recording and percentile basics of lib/histogram.

#include "lib/histogram/histogram.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/histogram/same_histogram.h"

namespace llmload::histogram {
namespace {

using testing::SameHistogram;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kExactLimit = 2 * Histogram::kSubBuckets;  // 2048

// --- Geometry -------------------------------------------------------------

TEST(HistogramGeometryTest, ValuesBelow2048HaveABucketEach) {
  for (uint64_t v = 0; v < kExactLimit; ++v) {
    ASSERT_EQ(Histogram::BucketIndex(v), v);
    ASSERT_EQ(Histogram::BucketLow(v), v);
    ASSERT_EQ(Histogram::BucketWidth(v), 1u);
    ASSERT_EQ(Histogram::BucketValue(v), v);
  }
}

TEST(HistogramGeometryTest, EveryBucketIsConsistent) {
  const size_t n = Histogram::NumBuckets();
  for (size_t i = 0; i < n; ++i) {
    const uint64_t low = Histogram::BucketLow(i);
    const uint64_t width = Histogram::BucketWidth(i);
    const uint64_t high = low + width - 1;
    SCOPED_TRACE(::testing::Message() << "bucket " << i << " [" << low << ", " << high << "]");
    ASSERT_GE(width, 1u);
    ASSERT_TRUE(std::has_single_bit(width));
    ASSERT_EQ(Histogram::BucketIndex(low), i);
    ASSERT_EQ(Histogram::BucketIndex(high), i);
    if (i + 1 < n) {
      ASSERT_EQ(low + width, Histogram::BucketLow(i + 1)) << "buckets must tile the range";
      ASSERT_EQ(Histogram::BucketIndex(low + width), i + 1);
    }
    if (low >= kExactLimit) {
      ASSERT_LE(width * Histogram::kSubBuckets, low) << "width must be <= low/1024";
    }
    const uint64_t value = Histogram::BucketValue(i);
    ASSERT_GE(value, low);
    ASSERT_LE(value, high);
    // The reported value is within the stated error of every value in the
    // bucket; the extremes are the worst case.
    for (uint64_t v : {low, high}) {
      const double err =
          std::abs(static_cast<double>(value) - static_cast<double>(v)) / static_cast<double>(v);
      if (v != 0) {
        ASSERT_LE(err, Histogram::kRelativeError) << "v=" << v;
      }
    }
  }
}

TEST(HistogramGeometryTest, BucketsCoverExactlyZeroToMaxValue) {
  const size_t last = Histogram::NumBuckets() - 1;
  EXPECT_EQ(Histogram::BucketLow(0), 0u);
  EXPECT_EQ(Histogram::BucketIndex(Histogram::kMaxValue), last)
      << "buckets past the one holding kMaxValue can never be filled";
  EXPECT_EQ(Histogram::BucketLow(last) + Histogram::BucketWidth(last) - 1, Histogram::kMaxValue);
}

TEST(HistogramGeometryTest, IndexIsMonotoneInValue) {
  std::vector<uint64_t> values;
  for (int e = 0; e <= Histogram::kMaxExponent; ++e) {
    const uint64_t p = uint64_t{1} << e;
    values.insert(values.end(), {p - 1, p, p + 1});
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100'000; ++i) {
    values.push_back(rng() >> (64 - Histogram::kMaxExponent));  // [0, 2^33)
  }
  std::sort(values.begin(), values.end());
  size_t prev = 0;
  for (uint64_t v : values) {
    if (v > Histogram::kMaxValue) {
      continue;
    }
    const size_t index = Histogram::BucketIndex(v);
    ASSERT_GE(index, prev) << "v=" << v;
    ASSERT_LT(index, Histogram::NumBuckets()) << "v=" << v;
    ASSERT_GE(v, Histogram::BucketLow(index));
    ASSERT_LT(v - Histogram::BucketLow(index), Histogram::BucketWidth(index));
    prev = index;
  }
}

TEST(HistogramGeometryTest, StatedErrorMeetsTheDesignTarget) {
  EXPECT_DOUBLE_EQ(Histogram::kRelativeError, 1.0 / 2048);
  EXPECT_LE(Histogram::kRelativeError, 0.001);  // DESIGN.md: "at most 0.1 %"
}

// --- Recording ------------------------------------------------------------

TEST(HistogramTest, EmptyHistogramReportsZeros) {
  const Histogram h;
  EXPECT_TRUE(h.Empty());
  EXPECT_EQ(h.Count(), 0u);
  EXPECT_EQ(h.Min(), 0u);
  EXPECT_EQ(h.Max(), 0u);
  EXPECT_EQ(h.Sum(), 0u);
  EXPECT_EQ(h.Saturated(), 0u);
  EXPECT_EQ(h.Mean(), 0.0);
  EXPECT_EQ(h.Percentile(0), 0u);
  EXPECT_EQ(h.Percentile(50), 0u);
  EXPECT_EQ(h.Percentile(100), 0u);
}

TEST(HistogramTest, RecordsZeroInFirstBucket) {
  Histogram h;
  h.Record(0);
  EXPECT_EQ(h.Count(), 1u);
  EXPECT_EQ(h.CountAt(0), 1u);
  EXPECT_EQ(h.Min(), 0u);
  EXPECT_EQ(h.Max(), 0u);
  EXPECT_EQ(h.Percentile(50), 0u);
}

TEST(HistogramTest, RecordWithZeroCountChangesNothing) {
  Histogram h;
  h.Record(42, 0);
  EXPECT_TRUE(SameHistogram(h, Histogram()));
  h.Record(7);
  const Histogram before = h;
  h.Record(3, 0);
  EXPECT_TRUE(SameHistogram(h, before));
}

TEST(HistogramTest, RecordWithCountEqualsRepeatedRecord) {
  Histogram a;
  Histogram b;
  for (uint64_t v : {uint64_t{5}, uint64_t{123456}, Histogram::kMaxValue + 3}) {
    a.Record(v, 3);
    for (int i = 0; i < 3; ++i) {
      b.Record(v);
    }
  }
  EXPECT_TRUE(SameHistogram(a, b));
}

TEST(HistogramTest, SaturatesAboveMaxValue) {
  Histogram h;
  h.Record(Histogram::kMaxValue);
  h.Record(Histogram::kMaxValue + 1);
  h.Record(kU64Max);
  EXPECT_EQ(h.Count(), 3u);
  EXPECT_EQ(h.Saturated(), 2u);
  EXPECT_EQ(h.Max(), Histogram::kMaxValue);
  EXPECT_EQ(h.Min(), Histogram::kMaxValue);
  EXPECT_EQ(h.Sum(), 3 * Histogram::kMaxValue);
  EXPECT_EQ(h.CountAt(Histogram::BucketIndex(Histogram::kMaxValue)), 3u);
  EXPECT_EQ(h.Percentile(100), Histogram::kMaxValue);
}

TEST(HistogramTest, ResetEmptiesEverything) {
  Histogram h;
  h.Record(17);
  h.Record(kU64Max);
  h.Reset();
  EXPECT_TRUE(SameHistogram(h, Histogram()));
  h.Record(9);
  EXPECT_EQ(h.Min(), 9u);
  EXPECT_EQ(h.Max(), 9u);
}

TEST(HistogramTest, CopiesAreIndependent) {
  Histogram a;
  a.Record(100);
  Histogram b = a;
  b.Record(200);
  EXPECT_EQ(a.Count(), 1u);
  EXPECT_EQ(b.Count(), 2u);
  Histogram c;
  c = b;
  c.Record(300);
  EXPECT_EQ(b.Count(), 2u);
  EXPECT_EQ(c.Count(), 3u);
  EXPECT_FALSE(a == b);
}

TEST(HistogramTest, MergeWithItselfDoublesEveryCount) {
  Histogram h;
  Histogram twice;
  for (uint64_t v : {uint64_t{1}, uint64_t{5000}, uint64_t{999'999}, kU64Max}) {
    h.Record(v);
    twice.Record(v, 2);
  }
  h.Merge(h);
  EXPECT_TRUE(SameHistogram(h, twice));
}

TEST(HistogramTest, MergeOfEmptyIsIdentity) {
  Histogram h;
  h.Record(3000);
  const Histogram before = h;
  h.Merge(Histogram());
  EXPECT_TRUE(SameHistogram(h, before));
  Histogram e;
  e.Merge(before);
  EXPECT_TRUE(SameHistogram(e, before));
}

// --- Percentiles ----------------------------------------------------------

TEST(HistogramPercentileTest, NearestRankOnExactValues) {
  Histogram h;
  for (uint64_t v = 1; v <= 1000; ++v) {
    h.Record(v);
  }
  EXPECT_EQ(h.Percentile(0), 1u);
  EXPECT_EQ(h.Percentile(0.1), 1u);
  EXPECT_EQ(h.Percentile(0.15), 2u);
  EXPECT_EQ(h.Percentile(50), 500u);
  EXPECT_EQ(h.Percentile(50.01), 501u);
  EXPECT_EQ(h.Percentile(90), 900u);
  EXPECT_EQ(h.Percentile(99), 990u);
  EXPECT_EQ(h.Percentile(100), 1000u);
}

// 99.9 is not a double: 99.9 / 100 * 1000 evaluates to 999.0000000000001, and
// a plain ceil() ranks the 1000th sample (the max) instead of the 999th.
TEST(HistogramPercentileTest, DecimalPercentilesAreNotOneRankTooHigh) {
  Histogram h;
  for (uint64_t v = 1; v <= 1000; ++v) {
    h.Record(v);
  }
  EXPECT_EQ(h.Percentile(99.9), 999u);
  EXPECT_EQ(h.Percentile(9.9), 99u);
  Histogram big;
  for (uint64_t v = 0; v < 100'000; ++v) {
    big.Record(v % 2000, 1);
  }
  // Sorted, the sample of rank r is (r - 1) / 50. Rank 99900 -> 1997.
  EXPECT_EQ(big.Percentile(99.9), 1997u);
  EXPECT_EQ(big.Percentile(99.99), 1999u);  // rank 99990
  EXPECT_EQ(big.Percentile(0.01), 0u);      // rank 10
}

TEST(HistogramPercentileTest, ClampsOutOfRangeP) {
  Histogram h;
  h.Record(10);
  h.Record(20);
  EXPECT_EQ(h.Percentile(-5), 10u);
  EXPECT_EQ(h.Percentile(250), 20u);
}

TEST(HistogramPercentileTest, ReportsMidpointClampedToMinAndMax) {
  Histogram h;
  h.Record(1'000'001);  // 2^19 <= v < 2^20: buckets 512 wide
  const size_t index = Histogram::BucketIndex(1'000'001);
  ASSERT_GT(Histogram::BucketWidth(index), 1u);
  EXPECT_EQ(h.Percentile(50), 1'000'001u);  // clamped to the exact min == max
  h.Record(Histogram::BucketLow(index));
  h.Record(Histogram::BucketLow(index) + Histogram::BucketWidth(index) - 1);
  EXPECT_EQ(h.Percentile(50), Histogram::BucketValue(index));
  EXPECT_EQ(h.Percentile(0), Histogram::BucketValue(index));
}

}  // namespace
}  // namespace llmload::histogram
