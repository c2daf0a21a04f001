// File: run_registry.h
//
// The collector's in-memory state: for every run, the merge of every batch
// its workers shipped (a dense MetricSet per run for scrape-time quantiles,
// a sparse one per worker, a time series of sparse windows, batch counts,
// interval bounds, the workers' final flags and gauges), and the set of
// (worker, epoch, sequence) keys already applied, so each batch counts once.
//
// Shard streams: a worker's batches for one shard assignment (epoch) form a
// stream with its own sequences, counters and (closed model) per-client
// cycle sums. Seal() closes a stream for good when the orchestrator declares
// its worker lost or drained: its batches not applied yet are refused from
// then on (kFenced), the requests it offered without an outcome are added to
// the LOST counter once, and the answer says exactly what was applied.
//
// Retention: ArchiveFinished() archives runs that finished more than a
// retention period ago. An archived run drops its dense histograms (and
// disappears from /metrics) but keeps its sparse per-worker sets and time
// series, so GetRunStats still answers with its exact final statistics; a
// late batch for it restores it first, so archiving never changes a result.
//
//   RunRegistry registry;
//   if (absl::Status s = RunRegistry::Validate(batch); !s.ok()) { reject }
//   absl::StatusOr<ApplyResult> r = registry.Apply(batch);  // kApplied / kDuplicate
//   absl::StatusOr<v1::RunStats> stats = registry.GetRunStats("run-1", true);
//
// Merging adds histogram counts, so the statistics of a run equal those of
// one MetricSet fed every sample of every batch, whatever the order the
// batches arrive in.
//
// No I/O: storage and the gRPC edge live elsewhere. Thread-safe: Apply
// validates before it takes the writer lock and then merges the sparse
// encodings bucket by bucket; readers (GetRunStats, ForEachRun) share a
// reader lock.

#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/metrics/metrics.h"
#include "llmload/v1/collector.pb.h"
#include "llmload/v1/stats.pb.h"
#include "services/collector/time_series.h"

namespace llmload::collector {

// The sequences applied for one worker and run: every sequence up to the
// watermark, plus the ones above it that arrived out of order.
class SequenceSet {
 public:
  bool Contains(uint64_t sequence) const {
    return sequence <= watermark_ || above_.contains(sequence);
  }
  // Returns false when `sequence` was already present.
  bool Insert(uint64_t sequence);
  uint64_t watermark() const { return watermark_; }
  size_t size() const { return static_cast<size_t>(watermark_) + above_.size(); }

 private:
  uint64_t watermark_ = 0;
  absl::flat_hash_set<uint64_t> above_;
};

// Per-metric and per-counter totals of one batch.
struct BatchTotals {
  std::array<uint64_t, metrics::kNumMetrics> count{};
  std::array<uint64_t, metrics::kNumMetrics> sum{};
  std::array<uint64_t, metrics::kNumMetrics> saturated{};
  std::array<uint64_t, metrics::kNumCounters> counters{};
};

// A batch validated and decoded once (RunRegistry::Decode): its histogram
// deltas as sparse bucket lists and its totals, so checking it, merging it
// into the run's dense histograms and checking again inside Apply never
// decode its encodings again. Refers to the batch, which must outlive it and
// keep its histograms and counters unchanged (dropping records is fine).
class DecodedBatch {
 public:
  const v1::SampleBatch& batch() const { return *batch_; }
  const BatchTotals& totals() const { return totals_; }

 private:
  friend class RunRegistry;
  explicit DecodedBatch(const v1::SampleBatch& batch) : batch_(&batch) {}

  const v1::SampleBatch* batch_;
  std::vector<std::pair<v1::Metric, histogram::SparseDecoded>> deltas_;
  BatchTotals totals_;
};

// kFenced: the batch's shard stream was sealed; it is not applied.
enum class ApplyResult { kApplied, kDuplicate, kFenced };

// One shard's batches from one worker (see the file comment).
struct StreamState {
  SequenceSet sequences;
  uint64_t batches = 0;
  uint64_t last_sequence = 0;
  int64_t first_interval_start_us = 0;
  int64_t last_interval_end_us = 0;
  bool final = false;
  bool sealed = false;
  uint64_t lost = 0;
  std::array<uint64_t, metrics::kNumCounters> counters{};
  struct Client {
    uint64_t started = 0;
    uint64_t ended = 0;
    bool closed = false;
  };
  std::map<int32_t, Client> clients;
  // Done: final batch applied, or sealed.
  bool Done() const { return final || sealed; }
};

// What one worker contributed to a run.
struct WorkerState {
  SparseMetricSet metrics;
  std::map<uint64_t, StreamState> streams;  // by epoch
  uint64_t batches = 0;
  // Every stream of the worker is done (see StreamState::Done).
  bool final = false;
  // The gauge of the batch with the highest sequence, so the value does not
  // depend on the order batches arrive (or are replayed) in.
  uint64_t gauge_sequence = 0;
  int64_t active_sessions = 0;
  double cpu_percent = 0;
  double loop_lag_ms = 0;
};

// Everything merged for one run.
struct RunState {
  // Dense merge of every batch; null once the run is archived.
  std::unique_ptr<metrics::MetricSet> merged = std::make_unique<metrics::MetricSet>();
  uint64_t batches = 0;
  // Bounds over batches that carry an interval (unix microseconds); 0 when
  // none has one yet.
  int64_t first_interval_start_us = 0;
  int64_t last_interval_end_us = 0;
  // Sorted by worker id, so reports are stable.
  std::map<std::string, WorkerState, std::less<>> workers;
  TimeSeries windows;
  // Target protocol name the latest batch that named one carried.
  std::string protocol;
  // Per-request records stored with the run's batches, and those the
  // workers (or the collector's cap) dropped.
  uint64_t records = 0;
  uint64_t records_dropped = 0;
  // When an ArchiveFinished pass first saw the run complete (runs without
  // intervals age from then).
  absl::Time complete_seen = absl::InfinitePast();
  // Multi-turn runs: per-turn metrics (kept when the run is archived).
  metrics::TurnTable turns;

  bool archived() const { return merged == nullptr; }
  // The dense merge rebuilt from the workers' sparse sets (equal to *merged).
  std::unique_ptr<metrics::MetricSet> RebuildMerged() const;
  int64_t ActiveSessions() const;
  // Workers that sent data and not yet their final batch.
  int ActiveWorkers() const;
  // Every worker that sent data has sent its final batch.
  bool Complete() const;
  double DurationSeconds() const;
};

class RunRegistry {
 public:
  // Longest run or worker id accepted, in bytes (ids become label values).
  static constexpr size_t kMaxIdBytes = 256;
  // Most per-request records one batch may carry, and one run may keep (the
  // largest RunSpec.records.maxRecords); records past the run's cap are
  // dropped before the batch is stored (see RecordRoom).
  static constexpr int kMaxRecordsPerBatch = 100000;
  static constexpr uint64_t kMaxRecordsPerRun = 1000000;

  RunRegistry() = default;
  RunRegistry(const RunRegistry&) = delete;
  RunRegistry& operator=(const RunRegistry&) = delete;

  // Checks a batch without applying it: non-empty, bounded ids, sequence >=
  // 1, a sane interval and gauge, and histogram deltas that decode (each
  // fully validated by Histogram::DecodeSparse). INVALID_ARGUMENT or
  // DATA_LOSS naming the problem.
  static absl::Status Validate(const v1::SampleBatch& batch);
  // Validate, keeping what was decoded for Check and Apply: the only place a
  // batch's histogram encodings are decoded on the way in.
  static absl::StatusOr<DecodedBatch> Decode(const v1::SampleBatch& batch);

  // True once the batch with this key was applied.
  bool Contains(std::string_view run_id, std::string_view worker_id, uint64_t sequence,
                uint64_t epoch = 0) const ABSL_LOCKS_EXCLUDED(mu_);

  // What Apply would do now, changing nothing: kApplied when the batch would
  // be merged, kDuplicate when it was applied already, else the error of
  // Validate or DATA_LOSS when merging would overflow one of the run's 64-bit
  // totals. With a single thread applying, a batch Check accepts is one
  // Apply accepts, so the ingest pipeline checks before it stores.
  absl::StatusOr<ApplyResult> Check(const v1::SampleBatch& batch) const ABSL_LOCKS_EXCLUDED(mu_);
  // The same for a decoded batch (no decoding: totals against the run's).
  absl::StatusOr<ApplyResult> Check(const DecodedBatch& decoded) const ABSL_LOCKS_EXCLUDED(mu_);

  // Applies a batch, once, all or nothing, with the outcome Check reports.
  absl::StatusOr<ApplyResult> Apply(const v1::SampleBatch& batch) ABSL_LOCKS_EXCLUDED(mu_);
  // The same for a decoded batch: merges the decoded buckets, decodes nothing.
  absl::StatusOr<ApplyResult> Apply(const DecodedBatch& decoded) ABSL_LOCKS_EXCLUDED(mu_);

  // Checks a seal request: ids as for batches. INVALID_ARGUMENT.
  static absl::Status ValidateSeal(const v1::SealShardRequest& request);
  // Seals the stream (run, worker, epoch), once; sealing again changes
  // nothing and answers the same. A stream with no batch yet is sealed
  // empty (everything it would have sent is refused).
  v1::SealedShard Seal(const v1::SealShardRequest& request) ABSL_LOCKS_EXCLUDED(mu_);

  // Statistics of a run (INVALID_ARGUMENT for an empty id, NOT_FOUND when no
  // batch of the run was applied). Metrics with samples only, in
  // metrics::AllMetrics() order; every counter by name; workers when
  // `per_worker`.
  // `windows` adds the time series; `histograms` the merged encodings (of
  // the run, and of each window when `windows`).
  absl::StatusOr<v1::RunStats> GetRunStats(std::string_view run_id, bool per_worker,
                                           bool windows = false, bool histograms = false) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // How many more per-request records the run may keep (kMaxRecordsPerRun
  // less those it holds).
  uint64_t RecordRoom(std::string_view run_id) const ABSL_LOCKS_EXCLUDED(mu_);
  // True when a batch of the run was applied.
  bool HasRun(std::string_view run_id) const ABSL_LOCKS_EXCLUDED(mu_);

  // Archives every complete run whose data ended (newest interval end, or
  // when first seen complete if it has none) at least `retention` before
  // `now`. Returns how many were archived.
  size_t ArchiveFinished(absl::Time now, absl::Duration retention) ABSL_LOCKS_EXCLUDED(mu_);

  // Calls `fn` for every run (archived ones included: check run.archived()),
  // in run-id order, under the reader lock: `fn` must be quick and must not
  // call back into the registry.
  void ForEachRun(absl::FunctionRef<void(const std::string& run_id, const RunState& run)> fn) const
      ABSL_LOCKS_EXCLUDED(mu_);

  size_t NumRuns() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t NumArchivedRuns() const ABSL_LOCKS_EXCLUDED(mu_);
  // Approximate heap bytes of the sparse state (workers and windows).
  size_t SparseBytes() const ABSL_LOCKS_EXCLUDED(mu_);
  // Batches applied over all runs.
  uint64_t NumBatches() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::StatusOr<ApplyResult> CheckLocked(const v1::SampleBatch& batch,
                                          const BatchTotals& totals) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, RunState, std::less<>> runs_ ABSL_GUARDED_BY(mu_);
  uint64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
};

// Statistics of one merged state, shared by GetRunStats and tests.
v1::RunStats BuildRunStats(std::string_view run_id, const RunState& run, bool per_worker,
                           bool windows = false, bool histograms = false);

}  // namespace llmload::collector
