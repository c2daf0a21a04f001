#include "services/collector/run_registry.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace llmload::collector {
namespace {

absl::Status CheckId(const std::string& id, const char* field) {
  if (id.empty()) {
    return absl::InvalidArgumentError(std::string(field) + " is empty");
  }
  if (id.size() > RunRegistry::kMaxIdBytes) {
    return absl::InvalidArgumentError(std::string(field) + " is longer than " +
                                      std::to_string(RunRegistry::kMaxIdBytes) + " bytes");
  }
  return absl::OkStatus();
}

// Checks everything but the histogram encodings.
absl::Status CheckFields(const v1::SampleBatch& batch) {
  if (absl::Status s = CheckId(batch.run_id(), "run_id"); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckId(batch.worker_id(), "worker_id"); !s.ok()) {
    return s;
  }
  if (batch.sequence() < 1) {
    return absl::InvalidArgumentError("sequence must be >= 1");
  }
  const int64_t start = batch.interval_start_us();
  const int64_t end = batch.interval_end_us();
  if (start != 0 || end != 0) {
    if (start <= 0 || end <= 0) {
      return absl::InvalidArgumentError(
          "interval_start_us and interval_end_us must both be positive or both unset");
    }
    if (end < start) {
      return absl::InvalidArgumentError("interval_end_us is before interval_start_us");
    }
  }
  if (batch.active_sessions() < 0) {
    return absl::InvalidArgumentError("active_sessions is negative");
  }
  if (batch.active_us() < 0) {
    return absl::InvalidArgumentError("active_us is negative");
  }
  return absl::OkStatus();
}

// Merges a checked batch's deltas into `set`: sparse, bucket by bucket, so
// no dense scratch histogram is needed.
absl::Status MergeValidated(const v1::SampleBatch& batch, metrics::MetricSet& set) {
  for (const v1::HistogramDelta& d : batch.histograms()) {
    if (absl::Status s = set.Hist(d.metric()).MergeEncoded(d.encoded()); !s.ok()) {
      return s;
    }
  }
  for (const v1::CounterDelta& d : batch.counters()) {
    set.Add(d.counter(), d.value());
  }
  return absl::OkStatus();
}

double PerSecond(uint64_t n, double seconds) {
  return seconds > 0 ? static_cast<double>(n) / seconds : 0.0;
}

void FillCounters(const metrics::MetricSet& set,
                  google::protobuf::Map<std::string, uint64_t>& out) {
  for (v1::Counter c : metrics::AllCounters()) {
    out[std::string(metrics::CounterName(c))] = set.Get(c);
  }
}

void FillMetrics(const metrics::MetricSet& set,
                 google::protobuf::RepeatedPtrField<v1::MetricStats>& out) {
  for (v1::Metric m : metrics::AllMetrics()) {
    if (!set.Hist(m).Empty()) {
      *out.Add() = metrics::Summarize(m, set.Hist(m));
    }
  }
}

}  // namespace

bool SequenceSet::Insert(uint64_t sequence) {
  if (Contains(sequence)) {
    return false;
  }
  if (sequence == watermark_ + 1) {
    ++watermark_;
    while (!above_.empty() && above_.erase(watermark_ + 1) == 1) {
      ++watermark_;
    }
  } else {
    above_.insert(sequence);
  }
  return true;
}

int64_t RunState::ActiveSessions() const {
  int64_t sum = 0;
  for (const auto& [id, w] : workers) {
    sum += w.active_sessions;
  }
  return sum;
}

bool RunState::Complete() const {
  if (workers.empty()) {
    return false;
  }
  return std::all_of(workers.begin(), workers.end(),
                     [](const auto& entry) { return entry.second.final; });
}

double RunState::DurationSeconds() const {
  if (first_interval_start_us <= 0 || last_interval_end_us <= first_interval_start_us) {
    return 0.0;
  }
  return static_cast<double>(last_interval_end_us - first_interval_start_us) / 1e6;
}

absl::Status RunRegistry::Decode(const v1::SampleBatch& batch, Totals* totals) {
  if (absl::Status s = CheckFields(batch); !s.ok()) {
    return s;
  }
  // MergeBatch decodes everything before it changes anything; a scratch set
  // per thread avoids allocating a dense MetricSet per batch.
  thread_local metrics::MetricSet scratch;
  absl::Status s = scratch.MergeBatch(batch);
  if (s.ok() && totals != nullptr) {
    for (int m = 1; m < metrics::kNumMetrics; ++m) {
      const histogram::Histogram& h = scratch.Hist(static_cast<v1::Metric>(m));
      totals->count[m] = h.Count();
      totals->sum[m] = h.Sum();
      totals->saturated[m] = h.Saturated();
    }
    for (int c = 1; c < metrics::kNumCounters; ++c) {
      totals->counters[c] = scratch.Get(static_cast<v1::Counter>(c));
    }
  }
  scratch.Reset();
  return s;
}

absl::Status RunRegistry::Validate(const v1::SampleBatch& batch) { return Decode(batch, nullptr); }

absl::StatusOr<ApplyResult> RunRegistry::CheckLocked(const v1::SampleBatch& batch,
                                                     const Totals& totals) const {
  auto run = runs_.find(batch.run_id());
  if (run == runs_.end()) {
    return ApplyResult::kApplied;
  }
  if (auto w = run->second.workers.find(batch.worker_id());
      w != run->second.workers.end() && w->second.sequences.Contains(batch.sequence())) {
    return ApplyResult::kDuplicate;
  }
  // A worker's totals never exceed its run's, so checking the run suffices.
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  const metrics::MetricSet& merged = run->second.merged;
  for (int m = 1; m < metrics::kNumMetrics; ++m) {
    const histogram::Histogram& h = merged.Hist(static_cast<v1::Metric>(m));
    if (h.Count() > kMax - totals.count[m] || h.Sum() > kMax - totals.sum[m] ||
        h.Saturated() > kMax - totals.saturated[m]) {
      return absl::DataLossError(std::string(metrics::MetricName(static_cast<v1::Metric>(m))) +
                                 ": merging would overflow the run's total");
    }
  }
  for (int c = 1; c < metrics::kNumCounters; ++c) {
    if (merged.Get(static_cast<v1::Counter>(c)) > kMax - totals.counters[c]) {
      return absl::DataLossError(std::string(metrics::CounterName(static_cast<v1::Counter>(c))) +
                                 ": merging would overflow the run's total");
    }
  }
  return ApplyResult::kApplied;
}

absl::StatusOr<ApplyResult> RunRegistry::Check(const v1::SampleBatch& batch) const {
  Totals totals;
  if (absl::Status s = Decode(batch, &totals); !s.ok()) {
    return s;
  }
  absl::ReaderMutexLock lock(&mu_);
  return CheckLocked(batch, totals);
}

bool RunRegistry::Contains(std::string_view run_id, std::string_view worker_id,
                           uint64_t sequence) const {
  absl::ReaderMutexLock lock(&mu_);
  auto run = runs_.find(run_id);
  if (run == runs_.end()) {
    return false;
  }
  auto worker = run->second.workers.find(worker_id);
  return worker != run->second.workers.end() && worker->second.sequences.Contains(sequence);
}

absl::StatusOr<ApplyResult> RunRegistry::Apply(const v1::SampleBatch& batch) {
  // Decode before taking the lock: readers wait only for the merge.
  Totals totals;
  if (absl::Status s = Decode(batch, &totals); !s.ok()) {
    return s;
  }
  absl::MutexLock lock(&mu_);
  if (absl::StatusOr<ApplyResult> check = CheckLocked(batch, totals);
      !check.ok() || *check == ApplyResult::kDuplicate) {
    return check;
  }
  RunState& run = runs_.try_emplace(batch.run_id()).first->second;
  WorkerState& worker = run.workers.try_emplace(batch.worker_id()).first->second;
  // Checked: decodable, and no total can overflow (bucket counts are bounded
  // by the count; a worker's totals by its run's), so these cannot fail and
  // the batch is applied whole.
  (void)MergeValidated(batch, run.merged);
  (void)MergeValidated(batch, worker.metrics);
  worker.sequences.Insert(batch.sequence());
  ++run.batches;
  ++worker.batches;
  ++batches_;
  if (batch.interval_start_us() > 0) {
    run.first_interval_start_us = run.first_interval_start_us == 0
                                      ? batch.interval_start_us()
                                      : std::min(run.first_interval_start_us,
                                                 batch.interval_start_us());
    run.last_interval_end_us = std::max(run.last_interval_end_us, batch.interval_end_us());
  }
  if (batch.final()) {
    worker.final = true;
  }
  if (batch.sequence() > worker.gauge_sequence) {
    worker.gauge_sequence = batch.sequence();
    worker.active_sessions = batch.active_sessions();
  }
  return ApplyResult::kApplied;
}

v1::RunStats BuildRunStats(std::string_view run_id, const RunState& run, bool per_worker) {
  v1::RunStats stats;
  stats.set_run_id(std::string(run_id));
  FillMetrics(run.merged, *stats.mutable_metrics());
  FillCounters(run.merged, *stats.mutable_counters());
  const double seconds = run.DurationSeconds();
  stats.set_duration_seconds(seconds);
  v1::Throughput* t = stats.mutable_throughput();
  t->set_requests_per_sec(PerSecond(run.merged.Get(v1::REQUESTS_OK), seconds));
  t->set_tokens_per_sec(PerSecond(run.merged.Get(v1::TOKENS), seconds));
  t->set_cycles_per_sec(PerSecond(run.merged.Get(v1::CYCLES), seconds));
  t->set_bytes_in_per_sec(PerSecond(run.merged.Get(v1::BYTES_IN), seconds));
  stats.set_batches(run.batches);
  stats.set_active_sessions(run.ActiveSessions());
  stats.set_complete(run.Complete());
  if (per_worker) {
    for (const auto& [id, w] : run.workers) {
      v1::WorkerStats* ws = stats.add_workers();
      ws->set_worker_id(id);
      FillMetrics(w.metrics, *ws->mutable_metrics());
      FillCounters(w.metrics, *ws->mutable_counters());
      ws->set_batches(w.batches);
      ws->set_final(w.final);
    }
  }
  return stats;
}

absl::StatusOr<v1::RunStats> RunRegistry::GetRunStats(std::string_view run_id,
                                                      bool per_worker) const {
  if (run_id.empty()) {
    return absl::InvalidArgumentError("run_id is empty");
  }
  absl::ReaderMutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    return absl::NotFoundError("run \"" + std::string(run_id) +
                               "\" has no statistics: no batch of it was ingested");
  }
  return BuildRunStats(run_id, it->second, per_worker);
}

void RunRegistry::ForEachRun(
    absl::FunctionRef<void(const std::string& run_id, const RunState& run)> fn) const {
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [id, run] : runs_) {
    fn(id, run);
  }
}

size_t RunRegistry::NumRuns() const {
  absl::ReaderMutexLock lock(&mu_);
  return runs_.size();
}

uint64_t RunRegistry::NumBatches() const {
  absl::ReaderMutexLock lock(&mu_);
  return batches_;
}

}  // namespace llmload::collector
