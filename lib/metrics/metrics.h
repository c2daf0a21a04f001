// File: metrics.h
//
// The measurement vocabulary shared by workers and the collector: metric and
// counter names, a MetricSet (one histogram per metric plus counters), its
// conversion to and from the wire SampleBatch, and summaries for reports.
//
// Thread-compatible.

#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "lib/histogram/histogram.h"
#include "llmload/v1/stats.pb.h"

namespace llmload::metrics {

inline constexpr int kNumMetrics = 13;   // index = v1::Metric value; 0 unused
// index = v1::Counter value; 0 and the unassigned numbers between the enum's
// values are unused (they have no name and are never listed).
inline constexpr int kNumCounters = 32;

// Lower-case report names ("ttft", "requests_ok", ...).
std::string_view MetricName(v1::Metric metric);
std::string_view CounterName(v1::Counter counter);
std::optional<v1::Metric> MetricFromName(std::string_view name);
std::optional<v1::Counter> CounterFromName(std::string_view name);
// The metrics a report lists, in order.
const std::array<v1::Metric, kNumMetrics - 1>& AllMetrics();
// The named counters, in enum order.
std::span<const v1::Counter> AllCounters();
// Counters that classify a failed request.
bool IsRequestFailureCounter(v1::Counter counter);

class MetricSet {
 public:
  histogram::Histogram& Hist(v1::Metric m) { return hists_[m]; }
  const histogram::Histogram& Hist(v1::Metric m) const { return hists_[m]; }
  void Add(v1::Counter c, uint64_t n = 1) { counters_[c] += n; }
  uint64_t Get(v1::Counter c) const { return counters_[c]; }
  void RecordUs(v1::Metric m, uint64_t micros) { hists_[m].Record(micros); }

  void Merge(const MetricSet& other);
  void Reset();
  bool Empty() const;

  // Appends non-empty histograms and non-zero counters to the batch.
  void AppendTo(v1::SampleBatch& batch) const;
  // Adds a batch's deltas. Validates everything first: on error nothing
  // changes.
  absl::Status MergeBatch(const v1::SampleBatch& batch);

 private:
  std::array<histogram::Histogram, kNumMetrics> hists_;
  std::array<uint64_t, kNumCounters> counters_{};
};

// Percentile summary of one histogram (values in microseconds -> ms).
v1::MetricStats Summarize(v1::Metric metric, const histogram::Histogram& h);

// Number of requests that ended in failure (sum of failure counters).
uint64_t FailedRequests(const MetricSet& set);

}  // namespace llmload::metrics
