#include "lib/load/prompts.h"

#include <cmath>
#include <set>
#include <string>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace llmload::load {
namespace {

v1::LengthDistribution Dist(v1::LengthKind kind, int32_t value, int32_t min, int32_t max,
                            double mean, double stddev) {
  v1::LengthDistribution d;
  d.set_kind(kind);
  d.set_value(value);
  d.set_min(min);
  d.set_max(max);
  d.set_mean(mean);
  d.set_stddev(stddev);
  return d;
}

struct Moments {
  double mean = 0;
  double stddev = 0;
  int32_t lo = INT32_MAX;
  int32_t hi = INT32_MIN;
};

// Moments of 100 clients x 500 requests drawn with seed 42.
Moments Draw(const LengthSampler& s) {
  double sum = 0;
  double sum2 = 0;
  int64_t n = 0;
  Moments m;
  for (int32_t client = 0; client < 100; ++client) {
    for (int64_t r = 1; r <= 500; ++r) {
      const int32_t v = s.Sample(42, client, r);
      sum += v;
      sum2 += static_cast<double>(v) * v;
      m.lo = std::min(m.lo, v);
      m.hi = std::max(m.hi, v);
      ++n;
    }
  }
  m.mean = sum / static_cast<double>(n);
  m.stddev = std::sqrt(sum2 / static_cast<double>(n) - m.mean * m.mean);
  return m;
}

TEST(LengthSamplerTest, FixedIsAlwaysTheValue) {
  const LengthSampler s(Dist(v1::LENGTH_FIXED, 128, 0, 0, 0, 0), 2);
  const Moments m = Draw(s);
  EXPECT_EQ(m.lo, 128);
  EXPECT_EQ(m.hi, 128);
}

TEST(LengthSamplerTest, UniformCoversItsRangeWithItsMoments) {
  const LengthSampler s(Dist(v1::LENGTH_UNIFORM, 0, 50, 150, 0, 0), 2);
  const Moments m = Draw(s);
  EXPECT_EQ(m.lo, 50);
  EXPECT_EQ(m.hi, 150);
  // Discrete uniform on [50, 150]: mean 100, stddev sqrt((101^2 - 1) / 12).
  EXPECT_NEAR(m.mean, 100, 0.5);
  EXPECT_NEAR(m.stddev, std::sqrt((101.0 * 101.0 - 1) / 12), 0.3);
}

TEST(LengthSamplerTest, NormalHasItsMeanAndStddev) {
  const LengthSampler s(Dist(v1::LENGTH_NORMAL, 0, 0, 0, 500, 100), 2);
  const Moments m = Draw(s);
  EXPECT_NEAR(m.mean, 500, 1.5);
  EXPECT_NEAR(m.stddev, 100, 1.5);
  EXPECT_GE(m.lo, 1);
}

TEST(LengthSamplerTest, LognormalHasTheLengthsMeanAndStddev) {
  const LengthSampler s(Dist(v1::LENGTH_LOGNORMAL, 0, 0, 0, 200, 80), 2);
  const Moments m = Draw(s);
  EXPECT_NEAR(m.mean, 200, 1.5);
  EXPECT_NEAR(m.stddev, 80, 2.5);
  EXPECT_GE(m.lo, 1);
}

TEST(LengthSamplerTest, NormalIsClippedToMinAndMax) {
  const LengthSampler s(Dist(v1::LENGTH_NORMAL, 0, 90, 110, 100, 50), 2);
  const Moments m = Draw(s);
  EXPECT_EQ(m.lo, 90);
  EXPECT_EQ(m.hi, 110);
}

TEST(LengthSamplerTest, DrawsDependOnlyOnSeedClientAndRequest) {
  const LengthSampler a(Dist(v1::LENGTH_NORMAL, 0, 0, 0, 500, 100), 2);
  const LengthSampler b(Dist(v1::LENGTH_NORMAL, 0, 0, 0, 500, 100), 2);
  int differ = 0;
  for (int64_t r = 1; r <= 50; ++r) {
    EXPECT_EQ(a.Sample(7, 3, r), b.Sample(7, 3, r));
    differ += a.Sample(7, 3, r) != a.Sample(8, 3, r) ? 1 : 0;
  }
  EXPECT_GT(differ, 40);  // another seed gives other draws
}

TEST(LengthSamplerTest, UnsetKindIsDisabled) {
  const LengthSampler s(v1::LengthDistribution(), 2);
  EXPECT_FALSE(s.enabled());
  EXPECT_EQ(s.Sample(1, 1, 1), 0);
}

TEST(PromptPlanTest, CycleKeepsTheOldOrder) {
  v1::Target t;
  for (const char* p : {"a", "b", "c"}) {
    t.add_prompts(p);
  }
  const PromptPlan plan(t);
  EXPECT_EQ(plan.Pick(0, 1).entry, 0);
  EXPECT_EQ(plan.Pick(0, 2).entry, 1);
  EXPECT_EQ(plan.Pick(2, 2).entry, 0);
  EXPECT_EQ(plan.Pick(5, 1).entry, 2);
}

TEST(PromptPlanTest, RandomIsSeededAndCoversTheDataset) {
  v1::Target t;
  for (int i = 0; i < 10; ++i) {
    t.add_prompts(std::to_string(i));
  }
  t.set_prompt_order(v1::PROMPT_ORDER_RANDOM);
  t.set_prompt_seed(11);
  const PromptPlan plan(t);
  const PromptPlan again(t);
  std::set<int32_t> seen;
  for (int64_t r = 1; r <= 200; ++r) {
    const int32_t e = plan.Pick(4, r).entry;
    ASSERT_GE(e, 0);
    ASSERT_LT(e, 10);
    EXPECT_EQ(e, again.Pick(4, r).entry);
    seen.insert(e);
  }
  EXPECT_EQ(seen.size(), 10u);
}

TEST(PromptPlanTest, SyntheticTextHasTheDrawnWordCount) {
  v1::Target t;
  *t.mutable_input_length() = Dist(v1::LENGTH_UNIFORM, 0, 1, 300, 0, 0);
  *t.mutable_output_length() = Dist(v1::LENGTH_FIXED, 64, 0, 0, 0, 0);
  t.set_prompt_seed(3);
  const PromptPlan plan(t);
  std::set<std::string> texts;
  for (int64_t r = 1; r <= 100; ++r) {
    const PromptPick p = plan.Pick(1, r);
    const std::string_view text = plan.SyntheticText(p);
    ASSERT_GE(p.words, 1);
    ASSERT_LE(p.words, 300);
    const std::vector<absl::string_view> words =
        absl::StrSplit(absl::string_view(text.data(), text.size()), ' ');
    EXPECT_EQ(static_cast<int32_t>(words.size()), p.words) << text;
    EXPECT_EQ(p.max_tokens, 64);
    texts.emplace(text);
  }
  EXPECT_GT(texts.size(), 90u);
}

TEST(PromptPlanTest, MaxTokensFallsBackToTheTargets) {
  v1::Target t;
  t.set_max_tokens(33);
  const PromptPlan plan(t);
  const PromptPick p = plan.Pick(0, 1);
  EXPECT_EQ(p.max_tokens, 33);
  EXPECT_EQ(p.entry, -1);
  EXPECT_EQ(p.words, 0);
  EXPECT_TRUE(plan.SyntheticText(p).empty());
}

TEST(EstimateInputTokensTest, RoundsBytesOverFourUp) {
  EXPECT_EQ(EstimateInputTokens(0), 0);
  EXPECT_EQ(EstimateInputTokens(1), 1);
  EXPECT_EQ(EstimateInputTokens(8), 2);
  EXPECT_EQ(EstimateInputTokens(9), 3);
}

}  // namespace
}  // namespace llmload::load
