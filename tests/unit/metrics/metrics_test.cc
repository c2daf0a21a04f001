// Metric and counter vocabulary, MetricSet <-> SampleBatch, and summaries.

#include "lib/metrics/metrics.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <random>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "lib/histogram/histogram.h"

namespace llmload::metrics {
namespace {

using histogram::Histogram;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// --- Names ----------------------------------------------------------------

TEST(MetricNamesTest, AreTheLowerCaseProtoNames) {
  const auto* desc = v1::Metric_descriptor();
  ASSERT_EQ(desc->value_count(), kNumMetrics) << "kNumMetrics out of date with stats.proto";
  for (int i = 1; i < desc->value_count(); ++i) {
    const auto m = static_cast<v1::Metric>(desc->value(i)->number());
    EXPECT_EQ(MetricName(m), Lower(desc->value(i)->name()));
  }
}

TEST(MetricNamesTest, RoundTrip) {
  std::set<int> seen;
  for (v1::Metric m : AllMetrics()) {
    const std::string_view name = MetricName(m);
    EXPECT_NE(name, "unknown");
    const std::optional<v1::Metric> back = MetricFromName(name);
    ASSERT_TRUE(back.has_value()) << name;
    EXPECT_EQ(*back, m) << name;
    EXPECT_TRUE(seen.insert(m).second) << "listed twice: " << name;
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kNumMetrics - 1));
  EXPECT_EQ(seen.count(v1::METRIC_UNSPECIFIED), 0u);
}

TEST(MetricNamesTest, UnknownValuesAndNames) {
  EXPECT_EQ(MetricName(v1::METRIC_UNSPECIFIED), "unknown");
  EXPECT_EQ(MetricName(static_cast<v1::Metric>(kNumMetrics)), "unknown");
  EXPECT_EQ(MetricName(static_cast<v1::Metric>(-1)), "unknown");
  for (const char* name : {"", "unknown", "TTFT", "ttft ", "metric_unspecified", "p99"}) {
    EXPECT_FALSE(MetricFromName(name).has_value()) << '"' << name << '"';
  }
}

TEST(CounterNamesTest, AreTheLowerCaseProtoNames) {
  const auto* desc = v1::Counter_descriptor();
  // Counter numbers are reserved in ranges (not every number is assigned):
  // kNumCounters is one past the largest.
  ASSERT_EQ(desc->value(desc->value_count() - 1)->number() + 1, kNumCounters)
      << "kNumCounters out of date with stats.proto";
  for (int n = 1; n < kNumCounters; ++n) {
    if (desc->FindValueByNumber(n) == nullptr) {
      EXPECT_EQ(CounterName(static_cast<v1::Counter>(n)), "unknown") << n;  // unassigned
    }
  }
  for (int i = 1; i < desc->value_count(); ++i) {
    const auto c = static_cast<v1::Counter>(desc->value(i)->number());
    EXPECT_EQ(CounterName(c), Lower(desc->value(i)->name()));
  }
}

TEST(CounterNamesTest, RoundTrip) {
  std::set<int> seen;
  for (v1::Counter c : AllCounters()) {
    const std::string_view name = CounterName(c);
    EXPECT_NE(name, "unknown");
    const std::optional<v1::Counter> back = CounterFromName(name);
    ASSERT_TRUE(back.has_value()) << name;
    EXPECT_EQ(*back, c) << name;
    EXPECT_TRUE(seen.insert(c).second) << "listed twice: " << name;
  }
  // Every assigned counter but COUNTER_UNSPECIFIED.
  EXPECT_EQ(seen.size(), static_cast<size_t>(v1::Counter_descriptor()->value_count() - 1));
  EXPECT_EQ(seen.count(v1::COUNTER_UNSPECIFIED), 0u);
}

TEST(CounterNamesTest, UnknownValuesAndNames) {
  EXPECT_EQ(CounterName(v1::COUNTER_UNSPECIFIED), "unknown");
  EXPECT_EQ(CounterName(static_cast<v1::Counter>(kNumCounters)), "unknown");
  EXPECT_EQ(CounterName(static_cast<v1::Counter>(-1)), "unknown");
  for (const char* name : {"", "unknown", "TOKENS", "token", "ttft"}) {
    EXPECT_FALSE(CounterFromName(name).has_value()) << '"' << name << '"';
  }
}

TEST(CounterNamesTest, FailureCountersAreTheRequestErrors) {
  const std::set<v1::Counter> expected = {v1::CONNECT_FAILED, v1::HTTP_4XX,       v1::HTTP_5XX,
                                          v1::RATE_LIMITED,   v1::PROTOCOL_ERROR, v1::TIMEOUT,
                                          v1::DISCONNECTED};
  MetricSet set;
  uint64_t failed = 0;
  uint64_t n = 1;
  for (v1::Counter c : AllCounters()) {
    EXPECT_EQ(IsRequestFailureCounter(c), expected.count(c) == 1) << CounterName(c);
    set.Add(c, n);
    if (expected.count(c) == 1) {
      failed += n;
    }
    n *= 2;  // distinct bits: the sum names exactly the counters included
  }
  EXPECT_EQ(FailedRequests(set), failed);
}

// --- MetricSet <-> SampleBatch --------------------------------------------

// lib/histogram's wire format by hand: version 1, then varints.
std::string Encoding(std::initializer_list<uint64_t> varints) {
  std::string out(1, '\x01');
  for (uint64_t v : varints) {
    for (; v >= 0x80; v >>= 7) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    }
    out.push_back(static_cast<char>(v));
  }
  return out;
}

::testing::AssertionResult SameSet(const MetricSet& a, const MetricSet& b) {
  for (v1::Metric m : AllMetrics()) {
    if (!(a.Hist(m) == b.Hist(m))) {
      return ::testing::AssertionFailure()
             << MetricName(m) << " histograms differ: count " << a.Hist(m).Count() << " vs "
             << b.Hist(m).Count() << ", sum " << a.Hist(m).Sum() << " vs " << b.Hist(m).Sum();
    }
  }
  for (v1::Counter c : AllCounters()) {
    if (a.Get(c) != b.Get(c)) {
      return ::testing::AssertionFailure()
             << CounterName(c) << " differs: " << a.Get(c) << " vs " << b.Get(c);
    }
  }
  return ::testing::AssertionSuccess();
}

// A set with some metrics and counters filled (wide latency ranges,
// saturation included) and others left empty or zero.
MetricSet RandomSet(uint64_t seed) {
  std::mt19937_64 rng(seed);
  MetricSet set;
  for (v1::Metric m : AllMetrics()) {
    if (rng() % 4 == 0) {
      continue;
    }
    const int n = static_cast<int>(rng() % 2000);
    for (int i = 0; i < n; ++i) {
      set.RecordUs(m, rng() >> (rng() % 64));  // every magnitude up to 2^64
    }
  }
  for (v1::Counter c : AllCounters()) {
    if (rng() % 3 != 0) {
      // Below 2^63, so a set added to itself (MergeBatchAddsLikeMerge) fits.
      set.Add(c, rng() >> (1 + rng() % 63));
    }
  }
  return set;
}

v1::SampleBatch BatchOf(const MetricSet& set) {
  v1::SampleBatch batch;
  set.AppendTo(batch);
  return batch;
}

TEST(MetricSetTest, AppendToThenMergeBatchReproducesTheSet) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    const MetricSet original = RandomSet(seed);
    // Through the wire format, as a worker's batch reaches the collector.
    v1::SampleBatch received;
    ASSERT_TRUE(received.ParseFromString(BatchOf(original).SerializeAsString()));
    MetricSet copy;
    const absl::Status s = copy.MergeBatch(received);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_TRUE(SameSet(copy, original));
    EXPECT_EQ(copy.Empty(), original.Empty());
  }
}

TEST(MetricSetTest, AppendToSkipsEmptyHistogramsAndZeroCounters) {
  MetricSet set;
  EXPECT_TRUE(set.Empty());
  EXPECT_EQ(BatchOf(set).histograms_size(), 0);
  EXPECT_EQ(BatchOf(set).counters_size(), 0);
  set.RecordUs(v1::TTFT, 1500);
  set.Add(v1::TOKENS, 7);
  set.Add(v1::TIMEOUT, 0);
  EXPECT_FALSE(set.Empty());
  const v1::SampleBatch batch = BatchOf(set);
  ASSERT_EQ(batch.histograms_size(), 1);
  EXPECT_EQ(batch.histograms(0).metric(), v1::TTFT);
  EXPECT_EQ(batch.histograms(0).encoded(), set.Hist(v1::TTFT).Encode());
  ASSERT_EQ(batch.counters_size(), 1);
  EXPECT_EQ(batch.counters(0).counter(), v1::TOKENS);
  EXPECT_EQ(batch.counters(0).value(), 7u);
}

TEST(MetricSetTest, MergeBatchAddsLikeMerge) {
  MetricSet a = RandomSet(31);
  const MetricSet b = RandomSet(32);
  MetricSet expected = a;
  expected.Merge(b);
  ASSERT_TRUE(a.MergeBatch(BatchOf(b)).ok());
  EXPECT_TRUE(SameSet(a, expected));
  // Entries repeated within one batch add up too.
  v1::SampleBatch twice = BatchOf(b);
  b.AppendTo(twice);
  MetricSet c;
  ASSERT_TRUE(c.MergeBatch(twice).ok());
  MetricSet b2 = b;
  b2.Merge(b);
  EXPECT_TRUE(SameSet(c, b2));
}

TEST(MetricSetTest, ResetEmptiesTheSet) {
  MetricSet set = RandomSet(41);
  ASSERT_FALSE(set.Empty());
  set.Reset();
  EXPECT_TRUE(set.Empty());
  EXPECT_TRUE(SameSet(set, MetricSet()));
}

// Builds on a valid batch, then appends `bad`: everything before it must be
// discarded too.
void ExpectRejectedAndUnchanged(const v1::SampleBatch& bad, absl::StatusCode code,
                                const std::string& message_part) {
  MetricSet target = RandomSet(51);
  const MetricSet before = target;
  const absl::Status s = target.MergeBatch(bad);
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_NE(s.message().find(message_part), std::string_view::npos) << s;
  EXPECT_TRUE(SameSet(target, before)) << "a rejected batch changed the set";
}

v1::SampleBatch ValidPrefix() { return BatchOf(RandomSet(52)); }

TEST(MetricSetTest, CorruptedHistogramIsRejectedAndChangesNothing) {
  const std::string good = RandomSet(53).Hist(v1::E2E).Encode();
  ASSERT_GT(good.size(), 4u);
  // One sample with min = max = 5000 and sum 5001: within its bucket's
  // bounds, but no recording produces it.
  const std::string inconsistent =
      Encoding({1, Histogram::BucketIndex(5000), 1, 5000, 5000, 5001, 0});
  struct Case {
    const char* what;
    std::string encoded;
    absl::StatusCode code;
  } cases[] = {
      {"truncated", good.substr(0, good.size() - 1), absl::StatusCode::kDataLoss},
      {"empty bytes", "", absl::StatusCode::kInvalidArgument},
      {"wrong version", "\x02" + good.substr(1), absl::StatusCode::kInvalidArgument},
      {"trailing byte", good + '\0', absl::StatusCode::kDataLoss},
      {"sum disagrees with min/max", inconsistent, absl::StatusCode::kDataLoss},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    v1::SampleBatch batch = ValidPrefix();
    auto* d = batch.add_histograms();
    d->set_metric(v1::E2E);
    d->set_encoded(c.encoded);
    auto* counter = batch.add_counters();
    counter->set_counter(v1::TOKENS);
    counter->set_value(5);
    ExpectRejectedAndUnchanged(batch, c.code, "e2e: ");
  }
}

TEST(MetricSetTest, UnknownMetricIsRejectedAndChangesNothing) {
  for (int metric : {0, kNumMetrics, 1000, -1}) {
    SCOPED_TRACE(::testing::Message() << "metric " << metric);
    v1::SampleBatch batch = ValidPrefix();
    auto* d = batch.add_histograms();
    d->set_metric(static_cast<v1::Metric>(metric));
    d->set_encoded(Histogram().Encode());
    ExpectRejectedAndUnchanged(batch, absl::StatusCode::kInvalidArgument, "unknown metric");
  }
}

TEST(MetricSetTest, UnknownCounterIsRejectedAndChangesNothing) {
  for (int counter : {0, kNumCounters, 1000, -3}) {
    SCOPED_TRACE(::testing::Message() << "counter " << counter);
    v1::SampleBatch batch = ValidPrefix();
    auto* d = batch.add_counters();
    d->set_counter(static_cast<v1::Counter>(counter));
    d->set_value(1);
    ExpectRejectedAndUnchanged(batch, absl::StatusCode::kInvalidArgument, "unknown counter");
  }
}

// A batch whose counts would overflow the set's is corrupt (or hostile):
// applying it wraps totals around - a histogram's Count() wraps to 0 while its
// buckets keep their counts, so it reads as empty and encodes as empty.
// MergeBatch refuses such a batch whole.
TEST(MetricSetTest, HistogramCountOverflowIsRejectedAndChangesNothing) {
  MetricSet target;
  target.Hist(v1::TTFT).Record(0, kU64Max - 1);
  const MetricSet before = target;
  MetricSet delta;
  delta.RecordUs(v1::TTFT, 1);
  delta.RecordUs(v1::TTFT, 2);
  const absl::Status s = target.MergeBatch(BatchOf(delta));
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(SameSet(target, before));
}

TEST(MetricSetTest, CounterOverflowIsRejectedAndChangesNothing) {
  MetricSet target;
  target.Add(v1::TOKENS, kU64Max - 1);
  const MetricSet before = target;
  MetricSet delta;
  delta.Add(v1::TOKENS, 2);
  const absl::Status s = target.MergeBatch(BatchOf(delta));
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(SameSet(target, before));
}

// --- Summaries ------------------------------------------------------------

TEST(SummarizeTest, EmptyHistogramHasOnlyNameAndCount) {
  const v1::MetricStats s = Summarize(v1::ITL, Histogram());
  EXPECT_EQ(s.metric(), "itl");
  EXPECT_EQ(s.count(), 0u);
  EXPECT_EQ(s.min_ms(), 0);
  EXPECT_EQ(s.mean_ms(), 0);
  EXPECT_EQ(s.p50_ms(), 0);
  EXPECT_EQ(s.p999_ms(), 0);
  EXPECT_EQ(s.max_ms(), 0);
}

TEST(SummarizeTest, ConvertsExactMicrosecondsToMilliseconds) {
  Histogram h;
  for (uint64_t us = 1; us <= 1000; ++us) {
    h.Record(us);  // below 2048: every value exact
  }
  const v1::MetricStats s = Summarize(v1::TTFT, h);
  EXPECT_EQ(s.metric(), "ttft");
  EXPECT_EQ(s.count(), 1000u);
  EXPECT_DOUBLE_EQ(s.min_ms(), 0.001);
  EXPECT_DOUBLE_EQ(s.mean_ms(), 0.5005);
  EXPECT_DOUBLE_EQ(s.p50_ms(), 0.5);
  EXPECT_DOUBLE_EQ(s.p90_ms(), 0.9);
  EXPECT_DOUBLE_EQ(s.p95_ms(), 0.95);
  EXPECT_DOUBLE_EQ(s.p99_ms(), 0.99);
  EXPECT_DOUBLE_EQ(s.p999_ms(), 0.999);  // the 999th sample, not the max
  EXPECT_DOUBLE_EQ(s.max_ms(), 1.0);
}

TEST(SummarizeTest, ReportsTheHistogramsPercentiles) {
  std::mt19937_64 rng(61);
  for (v1::Metric m : AllMetrics()) {
    Histogram h;
    for (int i = 0; i < 5000; ++i) {
      h.Record(rng() >> (24 + rng() % 40));  // 1 us .. beyond kMaxValue
    }
    const v1::MetricStats s = Summarize(m, h);
    SCOPED_TRACE(MetricName(m));
    EXPECT_EQ(s.metric(), MetricName(m));
    EXPECT_EQ(s.count(), h.Count());
    EXPECT_EQ(s.min_ms(), static_cast<double>(h.Min()) / 1000);
    EXPECT_EQ(s.mean_ms(), h.Mean() / 1000);
    EXPECT_EQ(s.p50_ms(), static_cast<double>(h.Percentile(50)) / 1000);
    EXPECT_EQ(s.p90_ms(), static_cast<double>(h.Percentile(90)) / 1000);
    EXPECT_EQ(s.p95_ms(), static_cast<double>(h.Percentile(95)) / 1000);
    EXPECT_EQ(s.p99_ms(), static_cast<double>(h.Percentile(99)) / 1000);
    EXPECT_EQ(s.p999_ms(), static_cast<double>(h.Percentile(99.9)) / 1000);
    EXPECT_EQ(s.max_ms(), static_cast<double>(h.Max()) / 1000);
    EXPECT_LE(s.min_ms(), s.p50_ms());
    EXPECT_LE(s.p50_ms(), s.p90_ms());
    EXPECT_LE(s.p99_ms(), s.p999_ms());
    EXPECT_LE(s.p999_ms(), s.max_ms());
  }
}

}  // namespace
}  // namespace llmload::metrics
