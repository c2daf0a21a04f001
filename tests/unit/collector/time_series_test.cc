#include "services/collector/time_series.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/collector/batch_util.h"

namespace llmload::collector {
namespace {

using batch_util::SampleGenerator;

constexpr int64_t kS = 1'000'000;
constexpr int64_t kEpochUs = 1'700'000'000'000'000;  // a multiple of 10 s, not of 60 s

// Per-metric sample counts of a MetricSet, as RunRegistry passes them.
std::array<uint64_t, metrics::kNumMetrics> Counts(const metrics::MetricSet& set) {
  std::array<uint64_t, metrics::kNumMetrics> counts{};
  for (v1::Metric m : metrics::AllMetrics()) {
    counts[m] = set.Hist(m).Count();
  }
  return counts;
}

v1::SampleBatch BatchAt(int64_t start_us, int64_t end_us, const metrics::MetricSet& set) {
  v1::SampleBatch b;
  b.set_run_id("r");
  b.set_worker_id("w");
  b.set_sequence(1);
  b.set_interval_start_us(start_us);
  b.set_interval_end_us(end_us);
  set.AppendTo(b);
  return b;
}

TEST(SparseHistogramTest, MergesPartsIntoTheDenseHistogramExactly) {
  SampleGenerator gen(3);
  histogram::Histogram reference;
  SparseHistogram sparse;
  for (int part = 0; part < 40; ++part) {  // crosses kMaxParts twice
    histogram::Histogram h;
    for (int i = 0; i < 50; ++i) {
      h.Record(gen.Next());
    }
    reference.Merge(h);
    sparse.AddEncoded(h.Encode(), h.Count());
  }
  EXPECT_EQ(sparse.Count(), reference.Count());
  EXPECT_TRUE(sparse.ToDense() == reference);
  sparse.Compact();
  EXPECT_TRUE(sparse.ToDense() == reference);
  // Far smaller than the dense array (8 bytes per bucket).
  EXPECT_LT(sparse.Bytes(), histogram::Histogram::NumBuckets() * 8 / 10);
}

TEST(TimeSeriesTest, OneSecondWindowsCarryTheirOwnPercentiles) {
  TimeSeries ts;
  std::map<int64_t, metrics::MetricSet> reference;
  SampleGenerator gen(5);
  for (int sec = 0; sec < 5; ++sec) {
    // Two half-second batches per second: both land in the same window.
    for (int half = 0; half < 2; ++half) {
      metrics::MetricSet set;
      for (int i = 0; i < 100; ++i) {
        const uint64_t v = gen.Next() * static_cast<uint64_t>(sec + 1);
        set.RecordUs(v1::TTFT, v);
        reference[sec].RecordUs(v1::TTFT, v);
      }
      set.Add(v1::REQUESTS_OK, 7);
      const int64_t start = kEpochUs + sec * kS + half * kS / 2;
      ts.Add(BatchAt(start, start + kS / 2, set), Counts(set));
    }
  }
  const std::vector<v1::WindowStats> windows = ts.Build();
  ASSERT_EQ(windows.size(), 5u);
  for (int sec = 0; sec < 5; ++sec) {
    const v1::WindowStats& w = windows[static_cast<size_t>(sec)];
    EXPECT_EQ(w.start_us(), kEpochUs + sec * kS);
    EXPECT_EQ(w.width_seconds(), 1.0);
    EXPECT_EQ(w.batches(), 2u);
    ASSERT_EQ(w.metrics_size(), 1);
    const histogram::Histogram& h = reference[sec].Hist(v1::TTFT);
    EXPECT_EQ(w.metrics(0).count(), h.Count());
    EXPECT_DOUBLE_EQ(w.metrics(0).p50_ms(), static_cast<double>(h.Percentile(50)) / 1000);
    EXPECT_DOUBLE_EQ(w.metrics(0).p99_ms(), static_cast<double>(h.Percentile(99)) / 1000);
    EXPECT_EQ(w.counters().at("requests_ok"), 14u);
  }
}

TEST(TimeSeriesTest, OldWindowsMergeIntoCoarserOnesWithoutOverlapOrLoss) {
  // 1 s windows for 20 s, 10 s windows for 60 s, then 60 s windows.
  TimeSeries ts({{kS, 20 * kS}, {10 * kS, 60 * kS}, {60 * kS, 0}});
  metrics::MetricSet all;
  SampleGenerator gen(9);
  const int kSeconds = 600;  // ten minutes of one-second batches
  for (int sec = 0; sec < kSeconds; ++sec) {
    metrics::MetricSet set;
    for (int i = 0; i < 10; ++i) {
      const uint64_t v = gen.Next();
      set.RecordUs(v1::ITL, v);
      all.RecordUs(v1::ITL, v);
    }
    set.Add(v1::TOKENS, 10);
    ts.Add(BatchAt(kEpochUs + sec * kS, kEpochUs + (sec + 1) * kS, set), Counts(set));
  }
  const std::vector<v1::WindowStats> windows = ts.Build();
  // Bounded: far fewer windows than seconds.
  EXPECT_LT(windows.size(), 60u);
  EXPECT_EQ(windows.size(), ts.NumWindows());
  uint64_t count = 0;
  uint64_t tokens = 0;
  uint64_t batches = 0;
  int64_t next_start = windows.front().start_us();
  std::map<double, int> widths;
  for (const v1::WindowStats& w : windows) {
    // Contiguous, non-overlapping, aligned to their width.
    EXPECT_EQ(w.start_us(), next_start);
    const int64_t width = static_cast<int64_t>(w.width_seconds() * kS);
    EXPECT_EQ(w.start_us() % width, 0);  // aligned to unix time
    next_start = w.start_us() + width;
    ++widths[w.width_seconds()];
    count += w.metrics(0).count();
    tokens += w.counters().at("tokens");
    batches += w.batches();
  }
  EXPECT_EQ(count, all.Hist(v1::ITL).Count());
  EXPECT_EQ(tokens, 10u * kSeconds);
  EXPECT_EQ(batches, static_cast<uint64_t>(kSeconds));
  EXPECT_EQ(widths.size(), 3u);
  // The newest windows are one second wide.
  EXPECT_EQ(windows.back().width_seconds(), 1.0);
  EXPECT_EQ(windows.front().width_seconds(), 60.0);
}

TEST(TimeSeriesTest, ALateBatchJoinsTheCoarseWindowThatCoversIt) {
  TimeSeries ts({{kS, 5 * kS}, {10 * kS, 0}});
  metrics::MetricSet set;
  set.RecordUs(v1::E2E, 1000);
  for (int sec = 0; sec < 60; ++sec) {
    ts.Add(BatchAt(kEpochUs + sec * kS, kEpochUs + (sec + 1) * kS, set), Counts(set));
  }
  const size_t before = ts.NumWindows();
  // A resent batch of second 3 (long aged into the 10 s window [0, 10)).
  ts.Add(BatchAt(kEpochUs + 3 * kS, kEpochUs + 4 * kS, set), Counts(set));
  EXPECT_EQ(ts.NumWindows(), before);
  const std::vector<v1::WindowStats> windows = ts.Build();
  EXPECT_EQ(windows.front().start_us(), kEpochUs);
  EXPECT_EQ(windows.front().width_seconds(), 10.0);
  EXPECT_EQ(windows.front().batches(), 11u);
}

TEST(TimeSeriesTest, BatchesWithoutAnIntervalAreNotPlaced) {
  TimeSeries ts;
  metrics::MetricSet set;
  set.RecordUs(v1::E2E, 1000);
  ts.Add(BatchAt(0, 0, set), Counts(set));
  EXPECT_EQ(ts.NumWindows(), 0u);
}

}  // namespace
}  // namespace llmload::collector
