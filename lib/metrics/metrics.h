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
#include <vector>

#include "absl/status/status.h"
#include "lib/histogram/histogram.h"
#include "llmload/v1/stats.pb.h"

namespace llmload::metrics {

inline constexpr int kNumMetrics = 14;   // index = v1::Metric value; 0 unused
// index = v1::Counter value; 0 and any unassigned numbers between the enum's
// values are unused (they have no name and are never listed).
inline constexpr int kNumCounters = 34;

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

// Multi-turn runs (Target.turns): what the completed requests of one turn
// number measured. Shipped as a HistogramDelta of TTFT tagged with a
// v1::TurnTag (the untagged TTFT histogram holds the same requests too).
struct TurnMetrics {
  histogram::Histogram ttft;
  uint64_t requests = 0;
  uint64_t input_tokens = 0;
  uint64_t tokens = 0;

  void Merge(const TurnMetrics& other);
  bool Empty() const { return requests == 0 && ttft.Empty(); }
};

// The highest turn number a spec may ask for (Target.turns) and a batch
// may carry.
inline constexpr int32_t kMaxTurns = 1000;

// Per-turn metrics by turn number, kept apart from any MetricSet so the
// collector can hold them beside its own sets.
class TurnTable {
 public:
  // The metrics of `turn` (1..kMaxTurns), created on first use.
  TurnMetrics& At(int32_t turn);
  // Records one completed request of `turn`.
  void Complete(int32_t turn, uint64_t ttft_us, bool has_ttft, uint64_t input_tokens,
                uint64_t tokens);
  void Merge(const TurnTable& other);
  void Reset() { turns_.clear(); }
  bool Empty() const;
  // Appends one tagged TTFT delta per turn with data.
  void AppendTo(v1::SampleBatch& batch) const;
  // Adds the tagged deltas of a batch (untagged ones are ignored).
  // Validates all first: on error nothing changes.
  absl::Status MergeBatch(const v1::SampleBatch& batch);
  // One entry per turn number with data, in order.
  void Fill(google::protobuf::RepeatedPtrField<v1::TurnStats>& out) const;
  size_t size() const { return turns_.size(); }

 private:
  std::vector<TurnMetrics> turns_;  // index = turn - 1
};

class MetricSet {
 public:
  histogram::Histogram& Hist(v1::Metric m) { return hists_[m]; }
  const histogram::Histogram& Hist(v1::Metric m) const { return hists_[m]; }
  void Add(v1::Counter c, uint64_t n = 1) { counters_[c] += n; }
  uint64_t Get(v1::Counter c) const { return counters_[c]; }
  void RecordUs(v1::Metric m, uint64_t micros) { hists_[m].Record(micros); }

  // Multi-turn runs: per-turn metrics (shipped and merged with the set).
  TurnTable& Turns() { return turns_; }
  const TurnTable& Turns() const { return turns_; }

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
  TurnTable turns_;
};

// Percentile summary of one histogram (values in microseconds -> ms).
v1::MetricStats Summarize(v1::Metric metric, const histogram::Histogram& h);

// Number of requests that ended in failure (sum of failure counters).
uint64_t FailedRequests(const MetricSet& set);

}  // namespace llmload::metrics
