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
  if (batch.protocol().size() > 64) {
    return absl::InvalidArgumentError("protocol is longer than 64 bytes");
  }
  for (const char ch : batch.protocol()) {
    // A label value: an enum name, never free text.
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
          ch == '_')) {
      return absl::InvalidArgumentError("protocol must be an enum name ([A-Za-z0-9_])");
    }
  }
  if (!(batch.worker_cpu_percent() >= 0) || !(batch.worker_cpu_percent() < 1e6)) {
    return absl::InvalidArgumentError("worker_cpu_percent must be in [0, 1e6)");
  }
  if (!(batch.worker_loop_lag_ms() >= 0) || !(batch.worker_loop_lag_ms() < 1e9)) {
    return absl::InvalidArgumentError("worker_loop_lag_ms must be in [0, 1e9)");
  }
  if (batch.records_size() > RunRegistry::kMaxRecordsPerBatch) {
    return absl::InvalidArgumentError("a batch carries at most " +
                                      std::to_string(RunRegistry::kMaxRecordsPerBatch) +
                                      " records");
  }
  if (batch.records_dropped() > (uint64_t{1} << 40)) {
    return absl::InvalidArgumentError("records_dropped is implausibly large");
  }
  for (const v1::RequestRecord& r : batch.records()) {
    if (r.start_us() < 0 || r.intended_start_us() < 0 || r.ttft_us() < 0 || r.e2e_us() < 0 ||
        r.client_id() < 0 || r.request_index() < 0) {
      return absl::InvalidArgumentError("records: times, client_id and request_index must be >= 0");
    }
    if (!v1::Counter_IsValid(r.outcome()) ||
        (r.outcome() != v1::REQUESTS_OK && !metrics::IsRequestFailureCounter(r.outcome()))) {
      return absl::InvalidArgumentError("records: outcome must be requests_ok or a failure class");
    }
    if (!r.worker_id().empty()) {
      return absl::InvalidArgumentError("records: worker_id is the batch's; leave it empty");
    }
  }
  for (const v1::ClientCycles& c : batch.clients()) {
    if (c.client() < 0) {
      return absl::InvalidArgumentError("clients: a client id is negative");
    }
  }
  return absl::OkStatus();
}

// The outcome counters a request can end in (LOST aside).
uint64_t Accounted(const std::array<uint64_t, metrics::kNumCounters>& c) {
  uint64_t n = c[v1::REQUESTS_OK] + c[v1::REQUESTS_CANCELLED] + c[v1::DROPPED] + c[v1::UNFINISHED];
  for (v1::Counter k : metrics::AllCounters()) {
    if (metrics::IsRequestFailureCounter(k)) {
      n += c[k];
    }
  }
  return n;
}

v1::SealedShard Describe(const v1::SealShardRequest& request, const StreamState& s) {
  v1::SealedShard out;
  out.set_run_id(request.run_id());
  out.set_worker_id(request.worker_id());
  out.set_epoch(request.epoch());
  out.set_batches(s.batches);
  out.set_last_sequence(s.last_sequence);
  out.set_first_interval_start_us(s.first_interval_start_us);
  out.set_last_interval_end_us(s.last_interval_end_us);
  out.set_final(s.final);
  out.set_lost(s.lost);
  for (v1::Counter c : metrics::AllCounters()) {
    if (s.counters[c] != 0) {
      (*out.mutable_counters())[std::string(metrics::CounterName(c))] = s.counters[c];
    }
  }
  for (const auto& [id, c] : s.clients) {
    v1::ClientCycles* cc = out.add_clients();
    cc->set_client(id);
    cc->set_started(static_cast<uint32_t>(std::min<uint64_t>(c.started, UINT32_MAX)));
    cc->set_ended(static_cast<uint32_t>(std::min<uint64_t>(c.ended, UINT32_MAX)));
    cc->set_closed(c.closed);
  }
  return out;
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

std::unique_ptr<metrics::MetricSet> RunState::RebuildMerged() const {
  auto set = std::make_unique<metrics::MetricSet>();
  for (const auto& [id, w] : workers) {
    for (v1::Metric m : metrics::AllMetrics()) {
      w.metrics.Hist(m).MergeInto(set->Hist(m));
    }
    for (v1::Counter c : metrics::AllCounters()) {
      set->Add(c, w.metrics.Get(c));
    }
  }
  return set;
}

int RunState::ActiveWorkers() const {
  int n = 0;
  for (const auto& [id, w] : workers) {
    n += w.final ? 0 : 1;
  }
  return n;
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

absl::StatusOr<DecodedBatch> RunRegistry::Decode(const v1::SampleBatch& batch) {
  if (absl::Status s = CheckFields(batch); !s.ok()) {
    return s;
  }
  // The per-turn deltas of a multi-turn run are checked apart (their own
  // table, RunState::turns).
  if (batch.histograms_size() > 0) {
    metrics::TurnTable turns;
    if (absl::Status s = turns.MergeBatch(batch); !s.ok()) {
      return s;
    }
  }
  // Each delta is decoded once into a sparse bucket list, fully validated;
  // the totals of a metric sent in several deltas must not overflow either.
  DecodedBatch out(batch);
  BatchTotals& totals = out.totals_;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  out.deltas_.reserve(static_cast<size_t>(batch.histograms_size()));
  for (const v1::HistogramDelta& d : batch.histograms()) {
    if (d.has_turn()) {
      continue;
    }
    const int m = d.metric();
    if (m <= 0 || m >= metrics::kNumMetrics) {
      return absl::InvalidArgumentError("batch names an unknown metric");
    }
    const std::string name(metrics::MetricName(static_cast<v1::Metric>(m)));
    histogram::SparseDecoded decoded;
    if (absl::Status e = histogram::Histogram::DecodeSparse(d.encoded(), &decoded); !e.ok()) {
      return absl::Status(e.code(), name + ": " + std::string(e.message()));
    }
    if (totals.count[m] > kMax - decoded.count || totals.sum[m] > kMax - decoded.sum ||
        totals.saturated[m] > kMax - decoded.saturated) {
      return absl::DataLossError(name + ": merging the histogram would overflow");
    }
    totals.count[m] += decoded.count;
    totals.sum[m] += decoded.sum;
    totals.saturated[m] += decoded.saturated;
    out.deltas_.emplace_back(static_cast<v1::Metric>(m), std::move(decoded));
  }
  for (const v1::CounterDelta& d : batch.counters()) {
    const int c = d.counter();
    if (c <= 0 || c >= metrics::kNumCounters) {
      return absl::InvalidArgumentError("batch names an unknown counter");
    }
    if (totals.counters[c] > kMax - d.value()) {
      return absl::DataLossError("batch counter overflows");
    }
    totals.counters[c] += d.value();
  }
  return out;
}

absl::Status RunRegistry::Validate(const v1::SampleBatch& batch) {
  return Decode(batch).status();
}

absl::StatusOr<ApplyResult> RunRegistry::CheckLocked(const v1::SampleBatch& batch,
                                                     const BatchTotals& totals) const {
  auto run = runs_.find(batch.run_id());
  if (run == runs_.end()) {
    return ApplyResult::kApplied;
  }
  if (auto w = run->second.workers.find(batch.worker_id()); w != run->second.workers.end()) {
    if (auto st = w->second.streams.find(batch.epoch()); st != w->second.streams.end()) {
      if (st->second.sequences.Contains(batch.sequence())) {
        return ApplyResult::kDuplicate;
      }
      if (st->second.sealed) {
        return ApplyResult::kFenced;
      }
    }
  }
  // A worker's totals never exceed its run's, so checking the run suffices.
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  std::unique_ptr<metrics::MetricSet> rebuilt;
  if (run->second.archived()) {
    rebuilt = run->second.RebuildMerged();  // rare: a late batch of an archived run
  }
  const metrics::MetricSet& merged = rebuilt ? *rebuilt : *run->second.merged;
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
  absl::StatusOr<DecodedBatch> decoded = Decode(batch);
  if (!decoded.ok()) {
    return decoded.status();
  }
  return Check(*decoded);
}

absl::StatusOr<ApplyResult> RunRegistry::Check(const DecodedBatch& decoded) const {
  absl::ReaderMutexLock lock(&mu_);
  return CheckLocked(decoded.batch(), decoded.totals());
}

bool RunRegistry::Contains(std::string_view run_id, std::string_view worker_id,
                           uint64_t sequence, uint64_t epoch) const {
  absl::ReaderMutexLock lock(&mu_);
  auto run = runs_.find(run_id);
  if (run == runs_.end()) {
    return false;
  }
  auto worker = run->second.workers.find(worker_id);
  if (worker == run->second.workers.end()) {
    return false;
  }
  auto stream = worker->second.streams.find(epoch);
  return stream != worker->second.streams.end() && stream->second.sequences.Contains(sequence);
}

absl::StatusOr<ApplyResult> RunRegistry::Apply(const v1::SampleBatch& batch) {
  // Decode before taking the lock: readers wait only for the merge.
  absl::StatusOr<DecodedBatch> decoded = Decode(batch);
  if (!decoded.ok()) {
    return decoded.status();
  }
  return Apply(*decoded);
}

absl::StatusOr<ApplyResult> RunRegistry::Apply(const DecodedBatch& decoded) {
  const v1::SampleBatch& batch = decoded.batch();
  const BatchTotals& totals = decoded.totals();
  absl::MutexLock lock(&mu_);
  if (absl::StatusOr<ApplyResult> check = CheckLocked(batch, totals);
      !check.ok() || *check != ApplyResult::kApplied) {
    return check;
  }
  RunState& run = runs_.try_emplace(batch.run_id()).first->second;
  if (run.archived()) {
    run.merged = run.RebuildMerged();
    run.complete_seen = absl::InfinitePast();
  }
  WorkerState& worker = run.workers.try_emplace(batch.worker_id()).first->second;
  // Checked: decodable, and no total can overflow (bucket counts are bounded
  // by the count; a worker's totals by its run's), so these cannot fail and
  // the batch is applied whole.
  for (const auto& [metric, delta] : decoded.deltas_) {
    (void)run.merged->Hist(metric).MergeDecoded(delta);
  }
  for (const v1::CounterDelta& d : batch.counters()) {
    run.merged->Add(d.counter(), d.value());
  }
  (void)run.turns.MergeBatch(batch);
  worker.metrics.AddBatch(batch, totals.count);
  run.windows.Add(batch, totals.count);
  if (!batch.protocol().empty()) {
    run.protocol = batch.protocol();
  }
  run.records += static_cast<uint64_t>(batch.records_size());
  run.records_dropped += batch.records_dropped();
  StreamState& stream = worker.streams[batch.epoch()];
  stream.sequences.Insert(batch.sequence());
  ++stream.batches;
  stream.last_sequence = std::max(stream.last_sequence, batch.sequence());
  for (int c = 1; c < metrics::kNumCounters; ++c) {
    stream.counters[c] += totals.counters[c];
  }
  for (const v1::ClientCycles& c : batch.clients()) {
    StreamState::Client& client = stream.clients[c.client()];
    client.started += c.started();
    client.ended += c.ended();
    client.closed = client.closed || c.closed();
  }
  if (batch.interval_start_us() > 0) {
    stream.first_interval_start_us = stream.first_interval_start_us == 0
                                         ? batch.interval_start_us()
                                         : std::min(stream.first_interval_start_us,
                                                    batch.interval_start_us());
    stream.last_interval_end_us = std::max(stream.last_interval_end_us, batch.interval_end_us());
  }
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
    stream.final = true;
  }
  worker.final = std::all_of(worker.streams.begin(), worker.streams.end(),
                             [](const auto& e) { return e.second.Done(); });
  if (batch.sequence() > worker.gauge_sequence) {
    worker.gauge_sequence = batch.sequence();
    worker.active_sessions = batch.active_sessions();
    worker.cpu_percent = batch.worker_cpu_percent();
    worker.loop_lag_ms = batch.worker_loop_lag_ms();
  }
  return ApplyResult::kApplied;
}

absl::Status RunRegistry::ValidateSeal(const v1::SealShardRequest& request) {
  if (absl::Status s = CheckId(request.run_id(), "run_id"); !s.ok()) {
    return s;
  }
  return CheckId(request.worker_id(), "worker_id");
}

v1::SealedShard RunRegistry::Seal(const v1::SealShardRequest& request) {
  absl::MutexLock lock(&mu_);
  RunState& run = runs_.try_emplace(request.run_id()).first->second;
  WorkerState& worker = run.workers.try_emplace(request.worker_id()).first->second;
  StreamState& stream = worker.streams[request.epoch()];
  if (!stream.sealed) {
    stream.sealed = true;
    // Requests offered with no outcome among the applied batches: in flight
    // at the loss, or answered in batches that never arrived.
    const uint64_t offered = stream.counters[v1::OFFERED];
    const uint64_t accounted = Accounted(stream.counters);
    stream.lost = offered > accounted ? offered - accounted : 0;
    if (stream.lost > 0) {
      if (run.archived()) {
        run.merged = run.RebuildMerged();
        run.complete_seen = absl::InfinitePast();
      }
      stream.counters[v1::LOST] += stream.lost;
      worker.metrics.AddCounter(v1::LOST, stream.lost);
      run.merged->Add(v1::LOST, stream.lost);
    }
    worker.final = std::all_of(worker.streams.begin(), worker.streams.end(),
                               [](const auto& e) { return e.second.Done(); });
  }
  return Describe(request, stream);
}

v1::RunStats BuildRunStats(std::string_view run_id, const RunState& run, bool per_worker,
                           bool windows, bool histograms) {
  v1::RunStats stats;
  stats.set_run_id(std::string(run_id));
  std::unique_ptr<metrics::MetricSet> rebuilt;
  if (run.archived()) {
    rebuilt = run.RebuildMerged();
  }
  const metrics::MetricSet& merged = rebuilt ? *rebuilt : *run.merged;
  FillMetrics(merged, *stats.mutable_metrics());
  FillCounters(merged, *stats.mutable_counters());
  stats.set_protocol(run.protocol);
  stats.set_archived(run.archived());
  const double seconds = run.DurationSeconds();
  stats.set_duration_seconds(seconds);
  v1::Throughput* t = stats.mutable_throughput();
  t->set_requests_per_sec(PerSecond(merged.Get(v1::REQUESTS_OK), seconds));
  t->set_tokens_per_sec(PerSecond(merged.Get(v1::TOKENS), seconds));
  t->set_cycles_per_sec(PerSecond(merged.Get(v1::CYCLES), seconds));
  t->set_bytes_in_per_sec(PerSecond(merged.Get(v1::BYTES_IN), seconds));
  stats.set_batches(run.batches);
  stats.set_active_sessions(run.ActiveSessions());
  stats.set_complete(run.Complete());
  stats.set_records(run.records);
  stats.set_records_dropped(run.records_dropped);
  run.turns.Fill(*stats.mutable_turns());
  if (histograms) {
    for (v1::Metric m : metrics::AllMetrics()) {
      if (const histogram::Histogram& h = merged.Hist(m); !h.Empty()) {
        v1::HistogramDelta* d = stats.add_histograms();
        d->set_metric(m);
        d->set_encoded(h.Encode());
      }
    }
  }
  if (per_worker) {
    for (const auto& [id, w] : run.workers) {
      v1::WorkerStats* ws = stats.add_workers();
      ws->set_worker_id(id);
      w.metrics.FillMetrics(*ws->mutable_metrics());
      for (v1::Counter c : metrics::AllCounters()) {
        (*ws->mutable_counters())[std::string(metrics::CounterName(c))] = w.metrics.Get(c);
      }
      ws->set_batches(w.batches);
      ws->set_final(w.final);
      ws->set_cpu_percent(w.cpu_percent);
      ws->set_loop_lag_ms(w.loop_lag_ms);
      ws->set_active_sessions(w.active_sessions);
      for (const auto& [epoch, stream] : w.streams) {
        if (stream.sealed) {
          ws->add_sealed_epochs(epoch);
        }
      }
    }
  }
  if (windows) {
    for (v1::WindowStats& w : run.windows.Build(histograms)) {
      *stats.add_windows() = std::move(w);
    }
  }
  return stats;
}

uint64_t RunRegistry::RecordRoom(std::string_view run_id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  const uint64_t held = it == runs_.end() ? 0 : it->second.records;
  return held >= kMaxRecordsPerRun ? 0 : kMaxRecordsPerRun - held;
}

bool RunRegistry::HasRun(std::string_view run_id) const {
  absl::ReaderMutexLock lock(&mu_);
  return runs_.find(run_id) != runs_.end();
}

absl::StatusOr<v1::RunStats> RunRegistry::GetRunStats(std::string_view run_id,
                                                      bool per_worker, bool windows,
                                                      bool histograms) const {
  if (run_id.empty()) {
    return absl::InvalidArgumentError("run_id is empty");
  }
  absl::ReaderMutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    return absl::NotFoundError("run \"" + std::string(run_id) +
                               "\" has no statistics: no batch of it was ingested");
  }
  return BuildRunStats(run_id, it->second, per_worker, windows, histograms);
}

size_t RunRegistry::ArchiveFinished(absl::Time now, absl::Duration retention) {
  absl::MutexLock lock(&mu_);
  size_t archived = 0;
  for (auto& [id, run] : runs_) {
    if (run.archived() || !run.Complete()) {
      continue;
    }
    if (run.complete_seen == absl::InfinitePast()) {
      run.complete_seen = now;
    }
    const absl::Time ended = run.last_interval_end_us > 0
                                 ? absl::FromUnixMicros(run.last_interval_end_us)
                                 : run.complete_seen;
    if (now - ended < retention) {
      continue;
    }
    run.merged.reset();
    for (auto& [wid, w] : run.workers) {
      w.metrics.Compact();
    }
    ++archived;
  }
  return archived;
}

size_t RunRegistry::NumArchivedRuns() const {
  absl::ReaderMutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, run] : runs_) {
    n += run.archived() ? 1 : 0;
  }
  return n;
}

size_t RunRegistry::SparseBytes() const {
  absl::ReaderMutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, run] : runs_) {
    n += run.windows.Bytes();
    for (const auto& [wid, w] : run.workers) {
      n += w.metrics.Bytes();
    }
  }
  return n;
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
