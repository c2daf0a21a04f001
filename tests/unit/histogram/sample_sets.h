// File: sample_sets.h
//
// Deterministic latency sample sets (microseconds) for the histogram tests:
// fixed seeds, std::mt19937_64 (whose output the standard specifies) and our
// own inverse-CDF transforms, so every platform draws the same values.

#pragma once

#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "lib/histogram/histogram.h"

namespace llmload::histogram::testing {

inline constexpr size_t kSamplesPerSet = 100'000;

struct SampleSet {
  std::string name;
  std::vector<uint64_t> values;
};

// Uniform in [0, 1).
inline double Unit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// Rounds a non-negative double to a sample, saturating at UINT64_MAX.
inline uint64_t ToMicros(double v) {
  if (!(v < 0x1.0p64)) {
    return std::numeric_limits<uint64_t>::max();
  }
  return v > 0 ? static_cast<uint64_t>(v + 0.5) : 0;
}

inline SampleSet Draw(std::string name, uint64_t seed, double (*draw)(std::mt19937_64&)) {
  std::mt19937_64 rng(seed);
  SampleSet set{std::move(name), {}};
  set.values.reserve(kSamplesPerSet);
  for (size_t i = 0; i < kSamplesPerSet; ++i) {
    set.values.push_back(ToMicros(draw(rng)));
  }
  return set;
}

// The sets every distribution test runs over. Together they span 0 µs to
// more than a day, with values above Histogram::kMaxValue (saturated).
inline const std::vector<SampleSet>& StandardSampleSets() {
  static const std::vector<SampleSet> sets = [] {
    std::vector<SampleSet> s;
    // 1 µs .. 10 s.
    s.push_back(Draw("Uniform", 1, [](std::mt19937_64& r) { return 1 + Unit(r) * 1e7; }));
    // Mean 250 ms.
    s.push_back(
        Draw("Exponential", 2, [](std::mt19937_64& r) { return -2.5e5 * std::log1p(-Unit(r)); }));
    // x_m = 50 µs, alpha = 0.5: about 1 in 10^4 above an hour, some saturated,
    // a few near UINT64_MAX.
    s.push_back(
        Draw("Pareto", 3, [](std::mt19937_64& r) { return 50.0 * std::pow(1 - Unit(r), -2.0); }));
    // Median 20 ms, sigma 2.5 (Box-Muller).
    s.push_back(Draw("LogNormal", 4, [](std::mt19937_64& r) {
      const double u1 = 1 - Unit(r);
      const double u2 = Unit(r);
      const double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
      return std::exp(std::log(2e4) + 2.5 * z);
    }));
    // 1 µs .. 2^36 µs (19 h): every octave, about 8 % saturated, plus the edges.
    SampleSet wide =
        Draw("LogUniform", 5, [](std::mt19937_64& r) { return std::exp2(36 * Unit(r)); });
    const uint64_t edges[] = {0,
                              1,
                              2047,
                              2048,
                              Histogram::kMaxValue - 1,
                              Histogram::kMaxValue,
                              Histogram::kMaxValue + 1,
                              std::numeric_limits<uint64_t>::max()};
    for (size_t i = 0; i < std::size(edges); ++i) {
      wide.values[i * 997] = edges[i];
    }
    s.push_back(std::move(wide));
    return s;
  }();
  return sets;
}

}  // namespace llmload::histogram::testing
