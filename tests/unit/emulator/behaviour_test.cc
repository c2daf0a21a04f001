#include "services/emulator/behaviour.h"

#include <cmath>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/emulator/lorem.h"
#include "services/emulator/token_gaps.h"

namespace llmload::emulator {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

TEST(BehaviourTest, DefaultsAreCleanAndDeterministic) {
  BehaviourConfig c;
  c.length_words = 5;
  c.token_delay_seconds = 0.01;
  ResponsePlan p = MakePlan(c, Protocol::kOpenAiChat, 0, "q", {});
  EXPECT_EQ(p.fault, Fault::kNone);
  ASSERT_EQ(p.tokens.size(), 5u);
  EXPECT_EQ(p.text, GenerateLorem(c.seed, "q", 5).text);
  ASSERT_EQ(p.offsets.size(), 6u);
  for (size_t i = 0; i < p.offsets.size(); ++i) {
    EXPECT_EQ(p.OffsetOf(i), milliseconds(10) * static_cast<int64_t>(i));
  }
  EXPECT_EQ(p.GenerationTime(), milliseconds(40));
  EXPECT_EQ(p.fault_at, 3u);
}

TEST(BehaviourTest, OverridesWin) {
  BehaviourConfig c;
  RequestOverrides o;
  o.length_words = 3;
  o.token_delay_seconds = 0.002;
  o.ttft_seconds = 0.5;
  o.fault = Fault::kMalformed;
  ResponsePlan p = MakePlan(c, Protocol::kGemini, 9, "q", o);
  EXPECT_EQ(p.tokens.size(), 3u);
  EXPECT_EQ(p.fault, Fault::kMalformed);
  EXPECT_EQ(p.OffsetOf(0), milliseconds(500));
  EXPECT_EQ(p.OffsetOf(2), milliseconds(504));
}

TEST(BehaviourTest, FaultDrawsAreReproducibleAndMatchTheRates) {
  BehaviourConfig c;
  c.length_words = 1;
  c.seed = 7;
  c.faults.http_500 = 0.1;
  c.faults.http_429 = 0.05;
  c.faults.disconnect = 0.02;
  c.faults.malformed = 0.01;
  std::map<Fault, int> counts;
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) {
    const Fault f = MakePlan(c, Protocol::kOpenAiChat, static_cast<uint64_t>(i), "q", {}).fault;
    EXPECT_EQ(f, MakePlan(c, Protocol::kOpenAiChat, static_cast<uint64_t>(i), "other", {}).fault);
    ++counts[f];
  }
  // Binomial standard deviations are below 45 for these rates.
  EXPECT_NEAR(counts[Fault::kHttp500], 0.10 * kN, 200);
  EXPECT_NEAR(counts[Fault::kHttp429], 0.05 * kN, 150);
  EXPECT_NEAR(counts[Fault::kDisconnect], 0.02 * kN, 100);
  EXPECT_NEAR(counts[Fault::kMalformed], 0.01 * kN, 70);
  EXPECT_EQ(counts[Fault::kErrorEvent], 0);

  // The same seed numbers the same requests the same way; another seed does not.
  int same = 0;
  int differs = 0;
  for (int i = 0; i < 500; ++i) {
    const auto idx = static_cast<uint64_t>(i);
    same += MakePlan(c, Protocol::kRealm, idx, "q", {}).fault ==
            MakePlan(c, Protocol::kRealm, idx, "q", {}).fault;
    BehaviourConfig other = c;
    other.seed = 8;
    differs += MakePlan(c, Protocol::kRealm, idx, "q", {}).fault !=
               MakePlan(other, Protocol::kRealm, idx, "q", {}).fault;
  }
  EXPECT_EQ(same, 500);
  EXPECT_GT(differs, 0);
}

TEST(BehaviourTest, BehaviourNumbersRequestsPerProtocol) {
  BehaviourConfig c;
  c.faults.http_429 = 0.5;
  Behaviour a(c);
  Behaviour b(c);
  for (int i = 0; i < 50; ++i) {
    b.Plan(Protocol::kGemini, "q", {});  // another protocol's requests do not shift OpenAI's
  }
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(a.Plan(Protocol::kOpenAiChat, "q", {}).fault,
              b.Plan(Protocol::kOpenAiChat, "q", {}).fault);
  }
  EXPECT_EQ(a.RequestCount(Protocol::kOpenAiChat), 50u);
  EXPECT_EQ(b.RequestCount(Protocol::kGemini), 50u);
}

// A group of N processes numbers requests apart: process i draws i, i+N, …,
// so together they draw each index once, the same plans a single process
// would have drawn.
TEST(BehaviourTest, GroupProcessesNumberRequestsApart) {
  BehaviourConfig c;
  c.faults.http_429 = 0.3;
  c.distribution = DelayDistribution::kUniform;
  c.token_delay_spread_seconds = 0.002;
  Behaviour single(c);
  Behaviour p0(c, 0, 3);
  Behaviour p1(c, 1, 3);
  Behaviour p2(c, 2, 3);
  Behaviour* group[] = {&p0, &p1, &p2};
  for (uint64_t i = 0; i < 30; ++i) {
    const ResponsePlan want = single.Plan(Protocol::kWsChat, "q", {});
    const ResponsePlan got = group[i % 3]->Plan(Protocol::kWsChat, "q", {});
    EXPECT_EQ(got.request_index, i);
    EXPECT_EQ(got.fault, want.fault) << i;
    EXPECT_EQ(got.offsets, want.offsets) << i;
  }
  EXPECT_EQ(p1.RequestCount(Protocol::kWsChat), 10u);
}

TEST(BehaviourTest, DelayDistributionsHaveTheConfiguredMeanAndSpread) {
  for (DelayDistribution d : {DelayDistribution::kUniform, DelayDistribution::kLogNormal}) {
    BehaviourConfig c;
    c.length_words = 20000;
    c.token_delay_seconds = 0.01;
    c.token_delay_spread_seconds = 0.004;
    c.distribution = d;
    ResponsePlan p = MakePlan(c, Protocol::kWsChat, 3, "q", {});
    double sum = 0;
    double sum2 = 0;
    const size_t n = p.tokens.size();
    for (size_t i = 1; i < n; ++i) {
      const double gap = std::chrono::duration<double>(p.OffsetOf(i) - p.OffsetOf(i - 1)).count();
      ASSERT_GE(gap, 0);
      sum += gap;
      sum2 += gap * gap;
    }
    const double mean = sum / static_cast<double>(n - 1);
    const double sd = std::sqrt(sum2 / static_cast<double>(n - 1) - mean * mean);
    EXPECT_NEAR(mean, 0.01, 0.0002) << DelayDistributionName(d);
    EXPECT_NEAR(sd, 0.004, 0.0003) << DelayDistributionName(d);
    // Reproducible.
    EXPECT_EQ(p.offsets, MakePlan(c, Protocol::kWsChat, 3, "q", {}).offsets);
  }
}

TEST(BehaviourTest, NamesRoundTrip) {
  for (Fault f : {Fault::kNone, Fault::kHttp500, Fault::kHttp429, Fault::kErrorEvent,
                  Fault::kDisconnect, Fault::kMalformed}) {
    EXPECT_EQ(ParseFault(FaultName(f)), f);
  }
  EXPECT_FALSE(ParseFault("503").has_value());
  EXPECT_EQ(ParseDelayDistribution("lognormal"), DelayDistribution::kLogNormal);
  EXPECT_FALSE(ParseDelayDistribution("normal").has_value());
}

TEST(BehaviourTest, ValidateRejectsBadKnobs) {
  BehaviourConfig c;
  EXPECT_TRUE(ValidateBehaviour(c).ok());
  c.faults.http_500 = 0.7;
  c.faults.http_429 = 0.4;
  EXPECT_FALSE(ValidateBehaviour(c).ok());
  c = BehaviourConfig();
  c.faults.malformed = -0.1;
  EXPECT_FALSE(ValidateBehaviour(c).ok());
  c = BehaviourConfig();
  c.ttft_seconds = 61;
  EXPECT_FALSE(ValidateBehaviour(c).ok());
}

// The emulator's record of the gaps it left between tokens: one gap per two
// consecutive tokens of one response, nothing across responses or across a
// token that was never sent.
TEST(BehaviourTest, TokenGapsAreRecordedBetweenConsecutiveTokensOnly) {
  BehaviourConfig c;
  c.length_words = 6;
  Behaviour b(c);
  const auto t0 = std::chrono::steady_clock::time_point() + std::chrono::hours(1);
  ResponsePlan first = b.Plan(Protocol::kWsChat, "q", {});
  first.TokenSent(0, t0);
  first.TokenSent(1, t0 + milliseconds(10));
  first.TokenSent(2, t0 + milliseconds(30));
  first.TokenSent(4, t0 + milliseconds(50));  // token 3 never sent: no gap
  first.TokenSent(5, t0 + milliseconds(55));
  ResponsePlan second = b.Plan(Protocol::kWsChat, "q", {});
  second.TokenSent(0, t0 + milliseconds(500));  // a new response: no gap
  second.TokenSent(1, t0 + milliseconds(501));
  const histogram::Histogram gaps = b.token_gaps().Snapshot(static_cast<size_t>(Protocol::kWsChat));
  EXPECT_EQ(gaps.Count(), 4u);
  EXPECT_EQ(gaps.Min(), 1000u);
  EXPECT_EQ(gaps.Max(), 20000u);
  EXPECT_EQ(gaps.Sum(), 10000u + 20000u + 5000u + 1000u);
  EXPECT_EQ(b.token_gaps().Snapshot(static_cast<size_t>(Protocol::kRealm)).Count(), 0u);

  // A plan made outside a Behaviour records nowhere (and does not crash).
  ResponsePlan orphan = MakePlan(c, Protocol::kWsChat, 0, "q", {});
  orphan.TokenSent(0, t0);
  orphan.TokenSent(1, t0 + milliseconds(1));
  EXPECT_EQ(b.token_gaps().Snapshot(static_cast<size_t>(Protocol::kWsChat)).Count(), 4u);
}

TEST(BehaviourTest, TokenGapsJsonListsEveryBucketSoProcessesMerge) {
  histogram::Histogram h;
  h.Record(1000, 3);
  h.Record(250000, 2);
  const std::string json = TokenGapsJson(h);
  EXPECT_NE(json.find("\"count\":5"), std::string::npos) << json;
  EXPECT_NE(json.find("[1000,3]"), std::string::npos) << json;
  EXPECT_NE(json.find(absl::StrCat("[", histogram::Histogram::BucketValue(
                                             histogram::Histogram::BucketIndex(250000)),
                                   ",2]")),
            std::string::npos)
      << json;
  EXPECT_EQ(TokenGapsJson(histogram::Histogram()),
            "{\"count\":0,\"min_us\":0,\"max_us\":0,\"sum_us\":0,\"p50_us\":0,"
            "\"p99_us\":0,\"buckets\":[]}");
}

}  // namespace
}  // namespace llmload::emulator
