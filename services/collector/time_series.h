// File: time_series.h
//
// Sparse histogram storage for the collector: what it keeps per worker and
// per time window without a dense ~200 KB array per histogram.
//
//  - SparseHistogram holds a histogram as encoded parts (lib/histogram's
//    sparse encoding, a few bytes per non-empty bucket). Adding appends a
//    part; every kMaxParts parts they are merged into one. ToDense() merges
//    into a dense Histogram only when someone asks (GetRunStats).
//  - SparseMetricSet: one SparseHistogram per metric plus counters.
//  - TimeSeries: a run's SparseMetricSet per time window. A batch goes to the
//    window holding the midpoint of its interval. Recent data keeps 1 s
//    windows; as the run's newest data moves on, old windows merge into 10 s,
//    then 60 s, then 600 s windows, so memory grows with the log of the run's
//    length rather than with it. A coarse window is formed only once every
//    finer window it covers has aged, so windows never overlap.
//
//   TimeSeries ts;
//   ts.Add(batch);               // batch already validated
//   std::vector<v1::WindowStats> w = ts.Build();
//
// Each window also keeps the generator's health per worker (the sessions
// gauge of its latest batch there, its largest CPU use and loop lag), so a
// report can set the generator's state beside the latencies it measured.
//
// Ageing is driven by the data's own clock (the newest interval end seen),
// so it is deterministic and replays identically. No I/O.
// Thread-compatible.

#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "lib/histogram/histogram.h"
#include "lib/metrics/metrics.h"
#include "llmload/v1/stats.pb.h"

namespace llmload::collector {

class SparseHistogram {
 public:
  static constexpr size_t kMaxParts = 16;

  // Adds a validated encoding (one MergeEncoded accepted).
  void AddEncoded(std::string_view encoded, uint64_t count);
  void Merge(const SparseHistogram& other);
  uint64_t Count() const { return count_; }
  bool Empty() const { return count_ == 0; }
  // The dense histogram of everything added.
  histogram::Histogram ToDense() const;
  // Merges everything added into `out`.
  void MergeInto(histogram::Histogram& out) const;
  // The sparse encoding of everything added (one part).
  std::string EncodeMerged() const;
  // Replaces the parts by one.
  void Compact();
  size_t Bytes() const;
  // The encoded parts (each a validated encoding), for readers that need no
  // dense histogram.
  const std::vector<std::string>& parts() const { return parts_; }

 private:
  std::vector<std::string> parts_;
  uint64_t count_ = 0;
};

class SparseMetricSet {
 public:
  // Adds a validated batch's deltas; `counts` holds each metric's sample
  // count in the batch (parts of metrics with none are skipped).
  void AddBatch(const v1::SampleBatch& batch,
                const std::array<uint64_t, metrics::kNumMetrics>& counts);
  void Merge(const SparseMetricSet& other);
  void AddCounter(v1::Counter c, uint64_t value) { counters_[c] += value; }
  const SparseHistogram& Hist(v1::Metric m) const { return hists_[m]; }
  uint64_t Get(v1::Counter c) const { return counters_[c]; }
  void Compact();
  size_t Bytes() const;

  // MetricStats of every metric with samples, in report order.
  void FillMetrics(google::protobuf::RepeatedPtrField<v1::MetricStats>& out) const;
  // The merged encoding of every metric with samples, in report order.
  void FillHistograms(google::protobuf::RepeatedPtrField<v1::HistogramDelta>& out) const;

 private:
  std::array<SparseHistogram, metrics::kNumMetrics> hists_;
  std::array<uint64_t, metrics::kNumCounters> counters_{};
};

class TimeSeries {
 public:
  struct Tier {
    int64_t width_us;
    // Windows of this tier are kept while their coarser window's end is
    // within `keep_us` of the newest data; then they merge into the next
    // tier (the last tier keeps everything).
    int64_t keep_us;
  };
  // 1 s for 10 min, 10 s for 1 h, 60 s for 24 h, then 600 s.
  static std::vector<Tier> DefaultTiers();

  TimeSeries() : TimeSeries(DefaultTiers()) {}
  // Widths must increase, each a multiple of the previous.
  explicit TimeSeries(std::vector<Tier> tiers);

  // Adds a validated batch (see SparseMetricSet::AddBatch). Batches without
  // an interval are not placed.
  void Add(const v1::SampleBatch& batch,
           const std::array<uint64_t, metrics::kNumMetrics>& counts);
  // Windows oldest first; `histograms` adds each window's merged encodings.
  std::vector<v1::WindowStats> Build(bool histograms = false) const;
  size_t NumWindows() const;
  size_t Bytes() const;
  int64_t newest_us() const { return newest_us_; }

 private:
  // One worker's health in one window.
  struct WorkerGauge {
    uint64_t sequence = 0;  // of the batch the sessions gauge came from
    int64_t active_sessions = 0;
    double max_cpu_percent = 0;
    double max_loop_lag_ms = 0;
    void Merge(const WorkerGauge& other);
  };
  struct Window {
    SparseMetricSet set;
    uint64_t batches = 0;
    std::map<std::string, WorkerGauge, std::less<>> workers;
  };
  static int64_t AlignDown(int64_t t, int64_t width);
  // The tier a window holding time `t` belongs to now.
  size_t TierFor(int64_t t) const;
  void Age();

  std::vector<Tier> tiers_;
  // Per tier: window start -> window.
  std::vector<std::map<int64_t, Window>> windows_;
  int64_t newest_us_ = 0;
};

}  // namespace llmload::collector
