// File: consistency.h
//
// A test oracle for "this histogram could have been recorded": it rebuilds
// the histogram from scratch with Record() alone, from a sample multiset that
// matches every bucket count, min, max, sum and saturated count. A decoded
// histogram is self-consistent exactly when such a witness exists and equals
// it. The construction is independent of the decoder's own checks, so it
// catches encodings the decoder accepts but no recording could produce
// (e.g. a mean above the max).
//
// Header-only and free of gtest: the histogram fuzz target uses it too.

#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "lib/histogram/histogram.h"

namespace llmload::histogram::testing {

__extension__ using Uint128 = unsigned __int128;

// A histogram recorded from samples consistent with `h`, or nullopt when no
// sample multiset can produce `h`'s counts, min, max, sum and saturation.
// The caller still compares the witness with `h`: a witness that differs
// means `h` is inconsistent in a way the construction does not model.
inline std::optional<Histogram> RecordedWitness(const Histogram& h) {
  Histogram w;
  if (h.Empty()) {
    return w;
  }
  constexpr uint64_t kMax = Histogram::kMaxValue;
  const uint64_t m = h.Min();
  const uint64_t big_m = h.Max();
  const uint64_t s = h.Saturated();
  size_t first = Histogram::NumBuckets();
  size_t last = 0;
  Uint128 n = 0;
  for (size_t i = 0; i < Histogram::NumBuckets(); ++i) {
    if (h.CountAt(i) != 0) {
      first = std::min(first, i);
      last = i;
      n += h.CountAt(i);
    }
  }
  if (n != h.Count() || m > big_m || big_m > kMax || Histogram::BucketIndex(m) != first ||
      Histogram::BucketIndex(big_m) != last || s > h.Count() || (s > 0 && big_m != kMax)) {
    return std::nullopt;
  }
  // A saturated sample is a value above kMax, recorded as kMax.
  auto record = [&w](uint64_t value, uint64_t count, uint64_t saturated) {
    w.Record(value, count - saturated);
    w.Record(kMax + 1, saturated);
  };
  if (m == big_m) {  // every sample equals m
    if (static_cast<Uint128>(m) * h.Count() != h.Sum()) {
      return std::nullopt;
    }
    record(m, h.Count(), s);
    return w;
  }
  // One sample is m, max(s, 1) samples are big_m (s of them saturated), the
  // rest lie in their bucket and in [m, big_m]. Start every free sample at
  // its lowest value and raise them until the sum matches.
  const uint64_t pinned_max = std::max<uint64_t>(s, 1);
  auto free_count = [&](size_t i, uint64_t& out) {
    Uint128 c = h.CountAt(i);
    const Uint128 pinned = (i == first ? 1 : 0) + (i == last ? pinned_max : 0);
    if (c < pinned) {
      return false;
    }
    out = static_cast<uint64_t>(c - pinned);
    return true;
  };
  auto low = [&](size_t i) { return std::max(Histogram::BucketLow(i), m); };
  auto high = [&](size_t i) {
    return std::min(Histogram::BucketLow(i) + Histogram::BucketWidth(i) - 1, big_m);
  };
  Uint128 base = m + static_cast<Uint128>(big_m) * pinned_max;
  Uint128 span = 0;
  for (size_t i = first; i <= last; ++i) {
    uint64_t f = 0;
    if (!free_count(i, f)) {
      return std::nullopt;
    }
    base += static_cast<Uint128>(low(i)) * f;
    span += static_cast<Uint128>(high(i) - low(i)) * f;
  }
  if (h.Sum() < base || h.Sum() > base + span) {
    return std::nullopt;
  }
  Uint128 excess = h.Sum() - base;
  record(m, 1, 0);
  record(big_m, pinned_max, s);
  for (size_t i = first; i <= last; ++i) {
    uint64_t f = 0;
    free_count(i, f);
    const uint64_t a = low(i);
    const uint64_t d = high(i) - a;
    if (f == 0) {
      continue;
    }
    if (d == 0) {
      w.Record(a, f);
      continue;
    }
    const Uint128 raise = std::min<Uint128>(excess, static_cast<Uint128>(f) * d);
    excess -= raise;
    const auto at_high = static_cast<uint64_t>(raise / d);
    const auto rest = static_cast<uint64_t>(raise % d);
    w.Record(a + d, at_high);
    if (rest != 0) {
      w.Record(a + rest, 1);
    }
    w.Record(a, f - at_high - (rest != 0 ? 1 : 0));
  }
  return w;
}

inline bool IsSelfConsistent(const Histogram& h) {
  const std::optional<Histogram> w = RecordedWitness(h);
  return w.has_value() && *w == h;
}

}  // namespace llmload::histogram::testing
