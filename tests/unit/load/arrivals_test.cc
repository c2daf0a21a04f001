#include "lib/load/arrivals.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace llmload::load {
namespace {

std::vector<double> Draw(const RateProfile& profile, Distribution d, uint64_t seed) {
  ArrivalSchedule schedule(profile, d, seed);
  std::vector<double> out;
  while (std::optional<double> t = schedule.Next()) {
    out.push_back(*t);
    if (out.size() > 10000000) {
      break;
    }
  }
  return out;
}

TEST(RateProfileTest, ConstantRateLastsTheDuration) {
  RateProfile p(20, 60, {});
  EXPECT_DOUBLE_EQ(p.Length(), 60);
  EXPECT_DOUBLE_EQ(p.RateAt(30), 20);
  EXPECT_DOUBLE_EQ(p.Cumulative(60), 1200);
  EXPECT_DOUBLE_EQ(*p.Inverse(600), 30);
  EXPECT_FALSE(p.Inverse(1200.5).has_value());
}

TEST(RateProfileTest, RampsHitTheirTargetsAndTheLastRateHolds) {
  // 0 -> 100/s over 10 s, 100 -> 20/s over 10 s, then 20/s until 30 s.
  RateProfile p(0, 30, {{100, 10}, {20, 10}});
  EXPECT_DOUBLE_EQ(p.Length(), 30);
  EXPECT_DOUBLE_EQ(p.RateAt(0), 0);
  EXPECT_DOUBLE_EQ(p.RateAt(5), 50);
  EXPECT_DOUBLE_EQ(p.RateAt(10), 100);
  EXPECT_DOUBLE_EQ(p.RateAt(15), 60);
  EXPECT_DOUBLE_EQ(p.RateAt(25), 20);
  EXPECT_DOUBLE_EQ(p.Cumulative(10), 500);
  EXPECT_DOUBLE_EQ(p.Cumulative(20), 500 + 600);
  EXPECT_DOUBLE_EQ(p.Cumulative(30), 1100 + 200);
  // Inverse undoes Cumulative everywhere, including the quadratic parts.
  for (double t = 0.25; t < 30; t += 0.5) {
    EXPECT_NEAR(*p.Inverse(p.Cumulative(t)), t, 1e-9) << t;
  }
}

TEST(RateProfileTest, StagesLongerThanDurationSetTheLength) {
  RateProfile p(10, 5, {{10, 20}});
  EXPECT_DOUBLE_EQ(p.Length(), 20);
  RateProfile scaled(10, 5, {{10, 20}}, 0.25);
  EXPECT_DOUBLE_EQ(scaled.Cumulative(20), 50);
}

TEST(ArrivalScheduleTest, PoissonCountIsWithinStatisticalBounds) {
  // 50/s for 100 s: Poisson(5000), sd ~71; 5 sd bounds for every seed.
  const RateProfile p(50, 100, {});
  for (uint64_t seed : {1u, 2u, 3u, 42u}) {
    const std::vector<double> t = Draw(p, Distribution::kPoisson, seed);
    EXPECT_NEAR(static_cast<double>(t.size()), 5000.0, 5 * std::sqrt(5000.0)) << seed;
    EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
    EXPECT_GE(t.front(), 0);
    EXPECT_LE(t.back(), 100);
    // Exponential gaps: mean 1/50 s, and the coefficient of variation ~1.
    double sum = 0;
    double sum2 = 0;
    for (size_t i = 1; i < t.size(); ++i) {
      const double g = t[i] - t[i - 1];
      sum += g;
      sum2 += g * g;
    }
    const double n = static_cast<double>(t.size() - 1);
    const double mean = sum / n;
    const double cv = std::sqrt(sum2 / n - mean * mean) / mean;
    EXPECT_NEAR(mean, 0.02, 0.002) << seed;
    EXPECT_NEAR(cv, 1.0, 0.1) << seed;
  }
}

TEST(ArrivalScheduleTest, SameSeedSameScheduleOtherSeedOtherSchedule) {
  const RateProfile p(10, 10, {});
  EXPECT_EQ(Draw(p, Distribution::kPoisson, 9), Draw(p, Distribution::kPoisson, 9));
  EXPECT_NE(Draw(p, Distribution::kPoisson, 9), Draw(p, Distribution::kPoisson, 10));
}

TEST(ArrivalScheduleTest, UniformIsEvenlySpacedAndExact) {
  const std::vector<double> t = Draw(RateProfile(20, 10, {}), Distribution::kUniform, 5);
  EXPECT_NEAR(static_cast<double>(t.size()), 200.0, 1.0);
  for (size_t i = 1; i < t.size(); ++i) {
    EXPECT_NEAR(t[i] - t[i - 1], 0.05, 1e-9);
  }
}

TEST(ArrivalScheduleTest, RampsHitTheirTargets) {
  // 0 -> 200/s over 20 s, then 200/s for 10 s. Arrivals per 2-second
  // window follow the rate at the window's middle.
  const RateProfile p(0, 30, {{200, 20}});
  const std::vector<double> t = Draw(p, Distribution::kPoisson, 11);
  EXPECT_NEAR(static_cast<double>(t.size()), p.Cumulative(30), 5 * std::sqrt(p.Cumulative(30)));
  for (double w = 0; w < 30; w += 2) {
    const auto n = std::count_if(t.begin(), t.end(), [&](double x) { return x >= w && x < w + 2; });
    const double expected = p.Cumulative(w + 2) - p.Cumulative(w);
    EXPECT_NEAR(static_cast<double>(n), expected, 5 * std::sqrt(expected) + 2) << "window " << w;
  }
  // The uniform process matches the cumulative rate to within one arrival.
  const std::vector<double> u = Draw(p, Distribution::kUniform, 11);
  for (double w : {5.0, 10.0, 20.0, 25.0}) {
    const auto n = std::count_if(u.begin(), u.end(), [&](double x) { return x < w; });
    EXPECT_NEAR(static_cast<double>(n), p.Cumulative(w), 1.0) << w;
  }
}

TEST(ArrivalScheduleTest, ZeroRateStretchesHaveNoArrivals) {
  // 50/s down to 0 over 2 s, then nothing for 8 s.
  const std::vector<double> t =
      Draw(RateProfile(50, 10, {{0, 2}}), Distribution::kPoisson, 3);
  ASSERT_FALSE(t.empty());
  EXPECT_LE(t.back(), 2.0);
}

TEST(ThinkTimeTest, FixedAndUniform) {
  std::mt19937_64 rng(1);
  EXPECT_FALSE(ThinkTime{}.enabled());
  EXPECT_DOUBLE_EQ((ThinkTime{0.2, 0.2}).Sample(rng), 0.2);
  EXPECT_DOUBLE_EQ((ThinkTime{0.2, 0}).Sample(rng), 0.2);
  const ThinkTime t{0.1, 0.5};
  double lo = 1;
  double hi = 0;
  for (int i = 0; i < 10000; ++i) {
    const double v = t.Sample(rng);
    ASSERT_GE(v, 0.1);
    ASSERT_LT(v, 0.5);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_LT(lo, 0.11);
  EXPECT_GT(hi, 0.49);
}

}  // namespace
}  // namespace llmload::load
