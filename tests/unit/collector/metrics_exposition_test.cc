#include "services/collector/metrics_exposition.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "tests/unit/collector/batch_util.h"

namespace llmload::collector {
namespace {

using ::testing::HasSubstr;
using batch_util::MakeSampleBatch;
using batch_util::SampleGenerator;

const prometheus::MetricFamily* Find(const std::vector<prometheus::MetricFamily>& families,
                                     const std::string& name) {
  for (const auto& f : families) {
    if (f.name == name) {
      return &f;
    }
  }
  return nullptr;
}

std::string Label(const prometheus::ClientMetric& m, const std::string& name) {
  for (const auto& l : m.label) {
    if (l.name == name) {
      return l.value;
    }
  }
  return "";
}

class MetricsExpositionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SampleGenerator gen(21);
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      ASSERT_TRUE(registry_.Apply(MakeSampleBatch(gen, 200, "run-a", "w1", seq, reference_,
                                                  false, 3))
                      .ok());
      ASSERT_TRUE(registry_.Apply(MakeSampleBatch(gen, 100, "run-a", "w2", seq, reference_,
                                                  false, 4))
                      .ok());
    }
    counters_.applied = 6;
    counters_.duplicate = 2;
    counters_.rejected = 1;
  }

  RunRegistry registry_;
  IngestCounters counters_;
  metrics::MetricSet reference_;
};

TEST_F(MetricsExpositionTest, SummariesCarryTheHistogramsExactQuantiles) {
  MetricsExposition exposition(&registry_, &counters_);
  const auto families = exposition.Collect();
  for (v1::Metric m : metrics::AllMetrics()) {
    const std::string name = "llmload_" + std::string(metrics::MetricName(m)) + "_seconds";
    SCOPED_TRACE(name);
    const prometheus::MetricFamily* f = Find(families, name);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->type, prometheus::MetricType::Summary);
    ASSERT_EQ(f->metric.size(), 1u);
    const auto& cm = f->metric[0];
    EXPECT_EQ(Label(cm, "run_id"), "run-a");
    const histogram::Histogram& h = reference_.Hist(m);
    EXPECT_EQ(cm.summary.sample_count, h.Count());
    EXPECT_DOUBLE_EQ(cm.summary.sample_sum, static_cast<double>(h.Sum()) / 1e6);
    const std::map<double, double> want = {
        {0.5, static_cast<double>(h.Percentile(50)) / 1e6},
        {0.9, static_cast<double>(h.Percentile(90)) / 1e6},
        {0.95, static_cast<double>(h.Percentile(95)) / 1e6},
        {0.99, static_cast<double>(h.Percentile(99)) / 1e6},
        {0.999, static_cast<double>(h.Percentile(99.9)) / 1e6}};
    ASSERT_EQ(cm.summary.quantile.size(), want.size());
    for (const auto& q : cm.summary.quantile) {
      ASSERT_TRUE(want.count(q.quantile)) << q.quantile;
      EXPECT_EQ(q.value, want.at(q.quantile)) << q.quantile;
    }
    // The same numbers GetRunStats reports, in milliseconds there.
    auto stats = registry_.GetRunStats("run-a", false);
    ASSERT_TRUE(stats.ok());
    for (const auto& ms : stats->metrics()) {
      if (ms.metric() == metrics::MetricName(m)) {
        EXPECT_DOUBLE_EQ(ms.p99_ms() / 1e3, want.at(0.99));
        EXPECT_DOUBLE_EQ(ms.p999_ms() / 1e3, want.at(0.999));
      }
    }
  }
}

TEST_F(MetricsExpositionTest, CountersGaugeAndOwnCounters) {
  MetricsExposition exposition(&registry_, &counters_);
  const auto families = exposition.Collect();
  const prometheus::MetricFamily* requests = Find(families, "llmload_requests_total");
  ASSERT_NE(requests, nullptr);
  EXPECT_EQ(requests->type, prometheus::MetricType::Counter);
  std::map<std::string, double> by_outcome;
  for (const auto& cm : requests->metric) {
    EXPECT_EQ(Label(cm, "run_id"), "run-a");
    by_outcome[Label(cm, "outcome")] = cm.counter.value;
  }
  EXPECT_EQ(by_outcome.size(), 8u);  // ok + 7 failure classes
  EXPECT_EQ(by_outcome["ok"], static_cast<double>(reference_.Get(v1::REQUESTS_OK)));
  EXPECT_EQ(by_outcome["timeout"], 6.0);
  EXPECT_EQ(by_outcome["http_5xx"], 0.0);
  EXPECT_TRUE(by_outcome.count("connect_failed"));
  EXPECT_TRUE(by_outcome.count("disconnected"));

  const std::map<std::string, uint64_t> counters = {
      {"llmload_tokens_total", reference_.Get(v1::TOKENS)},
      {"llmload_bytes_received_total", reference_.Get(v1::BYTES_IN)},
      {"llmload_bytes_sent_total", 0},
      {"llmload_sessions_opened_total", 0},
      {"llmload_sessions_failed_total", 0},
      {"llmload_reconnects_total", 0},
      {"llmload_cycles_total", reference_.Get(v1::CYCLES)}};
  for (const auto& [name, value] : counters) {
    SCOPED_TRACE(name);
    const prometheus::MetricFamily* f = Find(families, name);
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(f->metric.size(), 1u);
    EXPECT_EQ(f->metric[0].counter.value, static_cast<double>(value));
    EXPECT_EQ(Label(f->metric[0], "run_id"), "run-a");
  }
  const prometheus::MetricFamily* active = Find(families, "llmload_active_sessions");
  ASSERT_NE(active, nullptr);
  EXPECT_EQ(active->type, prometheus::MetricType::Gauge);
  EXPECT_EQ(active->metric[0].gauge.value, 7.0);

  const prometheus::MetricFamily* own = Find(families, "llmload_collector_batches_total");
  ASSERT_NE(own, nullptr);
  std::map<std::string, double> by_result;
  for (const auto& cm : own->metric) {
    by_result[Label(cm, "result")] = cm.counter.value;
  }
  EXPECT_EQ(by_result, (std::map<std::string, double>{
                           {"applied", 6}, {"duplicate", 2}, {"fenced", 0}, {"rejected", 1}}));
}

TEST_F(MetricsExpositionTest, TextFormatEscapesRunIdLabels) {
  SampleGenerator gen(8);
  metrics::MetricSet ref;
  const std::string weird = "we\"ird\\run\nid";
  ASSERT_TRUE(registry_.Apply(MakeSampleBatch(gen, 5, weird, "w", 1, ref)).ok());
  MetricsExposition exposition(&registry_, &counters_);
  const std::string text = prometheus::TextSerializer().Serialize(exposition.Collect());
  EXPECT_THAT(text, HasSubstr("llmload_ttft_seconds{run_id=\"we\\\"ird\\\\run\\nid\",quantile=\"0.99\"}"));
  EXPECT_THAT(text, HasSubstr("llmload_ttft_seconds{run_id=\"run-a\",quantile=\"0.999\"}"));
  EXPECT_THAT(text, HasSubstr("llmload_ttft_seconds_count{run_id=\"run-a\"}"));
  EXPECT_THAT(text, HasSubstr("llmload_ttft_seconds_sum{run_id=\"run-a\"}"));
  EXPECT_THAT(text, HasSubstr("llmload_requests_total{run_id=\"run-a\",outcome=\"ok\"}"));
  EXPECT_THAT(text, HasSubstr("# TYPE llmload_itl_seconds summary"));
  EXPECT_THAT(text, HasSubstr("# TYPE llmload_collector_batches_total counter"));
}

TEST(MetricsExpositionEmptyTest, OnlyOwnCountersWithoutRuns) {
  RunRegistry registry;
  IngestCounters counters;
  MetricsExposition exposition(&registry, &counters);
  const auto families = exposition.Collect();
  ASSERT_EQ(families.size(), 3u);
  EXPECT_EQ(families[0].name, "llmload_collector_runs");
  EXPECT_EQ(families[1].name, "llmload_collector_batches_total");
  EXPECT_EQ(families[2].name, "llmload_collector_commits_total");
}

TEST_F(MetricsExpositionTest, ClassicHistogramsAreCumulativeAndMatchTheCount) {
  MetricsExposition::Options options;
  options.worker_label = false;  // one series per run, compared with the run's samples
  MetricsExposition exposition(&registry_, &counters_, options);
  const auto families = exposition.Collect();
  for (v1::Metric m : metrics::AllMetrics()) {
    const std::string name =
        "llmload_" + std::string(metrics::MetricName(m)) + "_histogram_seconds";
    SCOPED_TRACE(name);
    const prometheus::MetricFamily* f = Find(families, name);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->type, prometheus::MetricType::Histogram);
    ASSERT_EQ(f->metric.size(), 1u);
    const auto& hist = f->metric[0].histogram;
    const histogram::Histogram& h = reference_.Hist(m);
    EXPECT_EQ(hist.sample_count, h.Count());
    EXPECT_DOUBLE_EQ(hist.sample_sum, static_cast<double>(h.Sum()) / 1e6);
    ASSERT_GE(hist.bucket.size(), 2u);
    EXPECT_TRUE(std::isinf(hist.bucket.back().upper_bound));
    EXPECT_EQ(hist.bucket.back().cumulative_count, h.Count());
    for (size_t i = 1; i < hist.bucket.size(); ++i) {
      EXPECT_LT(hist.bucket[i - 1].upper_bound, hist.bucket[i].upper_bound);
      EXPECT_LE(hist.bucket[i - 1].cumulative_count, hist.bucket[i].cumulative_count);
    }
    // Each bucket counts exactly the samples whose reported value is <= le:
    // brute force over every bucket of the reference.
    for (const auto& b : hist.bucket) {
      if (std::isinf(b.upper_bound)) {
        continue;
      }
      uint64_t want = 0;
      for (size_t i = 0; i < histogram::Histogram::NumBuckets(); ++i) {
        if (h.CountAt(i) == 0) {
          continue;
        }
        const uint64_t v = std::clamp(histogram::Histogram::BucketValue(i), h.Min(), h.Max());
        if (static_cast<double>(v) <= b.upper_bound * 1e6) {
          want += h.CountAt(i);
        }
      }
      EXPECT_EQ(b.cumulative_count, want) << "le=" << b.upper_bound;
    }
    // Consistent with the exact quantiles: p50's value lies in the first
    // bucket whose cumulative count reaches half the samples.
    const double p50 = static_cast<double>(h.Percentile(50)) / 1e6;
    for (const auto& b : hist.bucket) {
      if (2 * b.cumulative_count >= h.Count()) {
        EXPECT_LE(p50, b.upper_bound);
        break;
      }
    }
  }
}

TEST(MetricsExpositionWorkerLabelTest, ClassicHistogramsPerWorkerOrPerRun) {
  RunRegistry registry;
  IngestCounters counters;
  SampleGenerator gen(31);
  std::map<std::string, metrics::MetricSet> per_worker;
  metrics::MetricSet run;
  for (uint64_t seq = 1; seq <= 20; ++seq) {  // > SparseHistogram::kMaxParts: compacted parts too
    for (const std::string& worker : std::vector<std::string>{"w1", "w2", "w3"}) {
      v1::SampleBatch b = MakeSampleBatch(gen, 50, "run-w", worker, seq, per_worker[worker]);
      ASSERT_TRUE(registry.Apply(b).ok());
      ASSERT_TRUE(run.MergeBatch(b).ok());
    }
  }
  const std::string family = "llmload_ttft_histogram_seconds";

  // Default: one classic histogram per worker, each exactly that worker's.
  const auto labelled = MetricsExposition(&registry, &counters).Collect();
  const prometheus::MetricFamily* f = Find(labelled, family);
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->metric.size(), 3u);
  uint64_t total = 0;
  for (const auto& m : f->metric) {
    const std::string worker = Label(m, "worker_id");
    SCOPED_TRACE(worker);
    ASSERT_EQ(per_worker.count(worker), 1u);
    const auto want = ClassicHistogram(per_worker[worker].Hist(v1::TTFT));
    ASSERT_EQ(m.histogram.bucket.size(), want.bucket.size());
    for (size_t i = 0; i < want.bucket.size(); ++i) {
      EXPECT_EQ(m.histogram.bucket[i].cumulative_count, want.bucket[i].cumulative_count);
    }
    EXPECT_EQ(m.histogram.sample_count, want.sample_count);
    EXPECT_DOUBLE_EQ(m.histogram.sample_sum, want.sample_sum);
    total += m.histogram.sample_count;
  }
  EXPECT_EQ(total, run.Hist(v1::TTFT).Count());
  // The summaries stay per run (exact quantiles of the merge).
  const prometheus::MetricFamily* summary = Find(labelled, "llmload_ttft_seconds");
  ASSERT_NE(summary, nullptr);
  ASSERT_EQ(summary->metric.size(), 1u);
  EXPECT_EQ(Label(summary->metric[0], "worker_id"), "");

  // worker_label off: one series per run, without worker_id.
  MetricsExposition::Options options;
  options.worker_label = false;
  const auto unlabelled = MetricsExposition(&registry, &counters, options).Collect();
  f = Find(unlabelled, family);
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->metric.size(), 1u);
  EXPECT_EQ(Label(f->metric[0], "worker_id"), "");
  EXPECT_EQ(Label(f->metric[0], "run_id"), "run-w");
  EXPECT_EQ(f->metric[0].histogram.sample_count, run.Hist(v1::TTFT).Count());
}

TEST(ClassicHistogramTest, SparseEqualsDense) {
  SparseHistogram sparse;
  histogram::Histogram dense;
  SampleGenerator gen(8);
  for (int part = 0; part < 40; ++part) {
    histogram::Histogram h;
    for (int i = 0; i < 30; ++i) {
      h.Record(gen.Next());
    }
    dense.Merge(h);
    sparse.AddEncoded(h.Encode(), h.Count());
  }
  const auto a = ClassicHistogram(sparse);
  const auto b = ClassicHistogram(dense);
  ASSERT_EQ(a.bucket.size(), b.bucket.size());
  for (size_t i = 0; i < a.bucket.size(); ++i) {
    EXPECT_EQ(a.bucket[i].cumulative_count, b.bucket[i].cumulative_count) << i;
  }
  EXPECT_EQ(a.sample_count, dense.Count());
  EXPECT_DOUBLE_EQ(a.sample_sum, b.sample_sum);
}

TEST(ClassicHistogramTest, BucketBoundsAreInclusive) {
  histogram::Histogram h;
  h.Record(500);      // 0.5 ms: exactly on the first bound
  h.Record(501);      // just above it
  h.Record(1000000);  // 1 s: exactly on a bound (a bucket of width > 1)
  h.Record(200000000);  // 200 s: above every finite bound
  const auto hist = ClassicHistogram(h);
  EXPECT_EQ(hist.bucket[0].upper_bound, 0.0005);
  EXPECT_EQ(hist.bucket[0].cumulative_count, 1u);
  EXPECT_EQ(hist.bucket[1].cumulative_count, 2u);
  EXPECT_EQ(hist.bucket[hist.bucket.size() - 2].cumulative_count, 3u);
  EXPECT_EQ(hist.bucket.back().cumulative_count, 4u);
}

TEST_F(MetricsExpositionTest, ProtocolAndWorkerHealthLabels) {
  SampleGenerator gen(4);
  metrics::MetricSet ref;
  v1::SampleBatch b = MakeSampleBatch(gen, 5, "run-p", "w9", 1, ref, false, 2);
  b.set_protocol("OPENAI_CHAT");
  b.set_worker_cpu_percent(150);
  b.set_worker_loop_lag_ms(12);
  ASSERT_TRUE(registry_.Apply(b).ok());
  MetricsExposition exposition(&registry_, &counters_);
  const std::string text = prometheus::TextSerializer().Serialize(exposition.Collect());
  EXPECT_THAT(text, HasSubstr("llmload_ttft_seconds{run_id=\"run-p\",protocol=\"OPENAI_CHAT\","
                              "quantile=\"0.5\"}"));
  EXPECT_THAT(text, HasSubstr("llmload_ttft_histogram_seconds_bucket{run_id=\"run-p\","
                              "protocol=\"OPENAI_CHAT\",worker_id=\"w9\",le=\"+Inf\"} 5"));
  EXPECT_THAT(text, HasSubstr("llmload_run_worker_cpu_ratio{run_id=\"run-p\",protocol=\"OPENAI_CHAT\","
                              "worker_id=\"w9\"} 1.5"));
  EXPECT_THAT(text, HasSubstr("llmload_run_worker_loop_lag_seconds{run_id=\"run-p\","
                              "protocol=\"OPENAI_CHAT\",worker_id=\"w9\"} 0.012"));
  EXPECT_THAT(text, HasSubstr("llmload_run_workers{run_id=\"run-p\",protocol=\"OPENAI_CHAT\"} 1"));
  EXPECT_THAT(text, HasSubstr("llmload_collector_runs{state=\"live\"} 2"));
}

TEST_F(MetricsExpositionTest, ArchivedRunsLeaveTheScrape) {
  SampleGenerator gen(6);
  metrics::MetricSet ref;
  ASSERT_TRUE(registry_.Apply(MakeSampleBatch(gen, 5, "run-old", "w", 1, ref, true)).ok());
  // wall clock: runs finish at Unix times, as the registry records them.
  ASSERT_EQ(registry_.ArchiveFinished(absl::Now(), absl::Hours(1)), 1u);  // wall clock
  MetricsExposition exposition(&registry_, &counters_);
  const std::string text = prometheus::TextSerializer().Serialize(exposition.Collect());
  EXPECT_THAT(text, ::testing::Not(HasSubstr("run-old")));
  EXPECT_THAT(text, HasSubstr("llmload_collector_runs{state=\"archived\"} 1"));
  EXPECT_TRUE(registry_.GetRunStats("run-old", true).ok());
}

}  // namespace
}  // namespace llmload::collector
