// File: same_histogram.h
//
// EXPECT_TRUE(SameHistogram(a, b)): equality field by field and bucket by
// bucket, reporting the first difference, and checking that operator== agrees.

#pragma once

#include <cstddef>

#include "gtest/gtest.h"
#include "lib/histogram/histogram.h"

namespace llmload::histogram::testing {

inline ::testing::AssertionResult SameHistogram(const Histogram& a, const Histogram& b) {
  auto differ = [&](const char* field, uint64_t x, uint64_t y) {
    return ::testing::AssertionFailure() << field << " differs: " << x << " vs " << y
                                         << (a == b ? " (yet operator== says equal)" : "");
  };
  if (a.Count() != b.Count()) {
    return differ("Count()", a.Count(), b.Count());
  }
  if (a.Min() != b.Min()) {
    return differ("Min()", a.Min(), b.Min());
  }
  if (a.Max() != b.Max()) {
    return differ("Max()", a.Max(), b.Max());
  }
  if (a.Sum() != b.Sum()) {
    return differ("Sum()", a.Sum(), b.Sum());
  }
  if (a.Saturated() != b.Saturated()) {
    return differ("Saturated()", a.Saturated(), b.Saturated());
  }
  for (size_t i = 0; i < Histogram::NumBuckets(); ++i) {
    if (a.CountAt(i) != b.CountAt(i)) {
      return ::testing::AssertionFailure()
             << "bucket " << i << " [" << Histogram::BucketLow(i) << ", +"
             << Histogram::BucketWidth(i) << ") differs: " << a.CountAt(i) << " vs "
             << b.CountAt(i);
    }
  }
  if (!(a == b)) {
    return ::testing::AssertionFailure() << "every field is equal but operator== says not";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace llmload::histogram::testing
