// File: run_tracker.h
//
// Every decision the orchestrator takes, without I/O and without reading a
// clock: which workers are attached and alive, every run and its shards,
// progress, verdicts, and what happens when a worker is lost. Time and
// events come in (a worker attached, a heartbeat, a shard update, a stream
// closed, a seal answered, statistics fetched, a tick); effects come out, in
// order (messages to send, streams to close, runs to write, statistics to
// fetch, shards to seal, updates for watchers, log lines). The gRPC edge
// (OrchestratorServiceImpl) feeds it under one mutex and carries the effects
// out after releasing it, so no lock is held while logging or writing to a
// stream. Unit tests drive it directly with a fake clock.
//
//   RunTracker tracker(config, &probe);
//   Effects fx;
//   tracker.OnMessage(stream, hello, now, fx);     // a worker attached
//   absl::StatusOr<v1::Run> run = tracker.PlanRun(spec, now, fx);
//   ...                                              // write it, then:
//   tracker.OnStartStored(run->id(), absl::OkStatus(), now, fx);  // dispatched
//   tracker.Tick(now + absl::Seconds(4), fx);       // a silent worker is lost
//
// Lost work. A worker is lost when nothing was heard from it for the
// heartbeat timeout (hung, host gone, network cut), when its stream ended
// and it did not re-attach in that time, at once when its stream ended and
// its process (on this host) has exited, or when it re-attaches as a new
// process. Each of its unfinished shards becomes SHARD_LOST and is sealed at
// the collector (SealShard): from then on the collector refuses the shard's
// batches, and it answers with exactly what it applied. From that answer the
// tracker knows the requests that were in flight (counted LOST by the
// collector), the window of samples that never arrived, and the work left:
//
//   closed:   each client that has not finished, with the cycles it has not
//             started (a cycle in flight at the loss is lost, not retried);
//   duration: its connections, for the rest of the load;
//   open:     its share of the arrival rate and in-flight cap, from now on.
//
// That work moves to the run's other workers (or idle ones) with spare
// capacity, as new shards with new assignment epochs, written before they
// are dispatched; with no capacity it waits up to reassign_wait for one (a
// worker that attaches later), then the run fails saying so. Work whose
// shards have been lost with two workers is not handed to a third: the run
// fails naming the crash loop. A worker that drains (SIGTERM) reports its
// shards SHARD_DRAINED; they are sealed and moved at once, with nothing lost.
// A worker that comes back under an id whose work moved on is told to stop
// that shard (its epoch is fenced; the collector refuses its batches).
//
// Restart: Recover() takes the stored runs; runs in progress continue. Their
// workers get recovery_grace to re-attach and report their shards (matched
// by epoch); the others are lost as above.
//
// Implemented in run_tracker.cc (runs, workers, verdicts, time) and
// run_tracker_moves.cc (lost work: seals and moves).
//
// Thread-compatible: the edge serialises every call.

#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/common/log.h"
#include "lib/load/verdict.h"
#include "llmload/v1/collector.pb.h"
#include "llmload/v1/orchestrator.pb.h"
#include "services/orchestrator/orchestrator_config.h"

namespace llmload::orchestrator {

// ---- Effects ----

// A message for the worker on Attach stream `stream`.
struct SendEffect {
  uint64_t stream = 0;
  v1::OrchestratorMessage message;
};
// Ends Attach stream `stream` with `status`.
struct CloseEffect {
  uint64_t stream = 0;
  absl::Status status;
};
// Writes the run (serialised snapshot). With `report_back`, the edge calls
// OnRunWritten once the write is durable (or failed).
struct WriteEffect {
  v1::Run run;
  bool report_back = false;
};
// Fetches the run's merged statistics from the collector; the answer goes
// to OnStats.
struct FetchStatsEffect {
  std::string run_id;
  bool final = false;
  // The run scrapes its target's metrics (spec.targetMetrics): stop the
  // collector's scrape loop first, so the final statistics hold the
  // target's values after the run's last request.
  bool stop_scrape = false;
};
// Starts the collector's scrape of the run's target metrics
// (spec.targetMetrics). Fire and forget: a failure is logged, the run goes on.
struct ScrapeTargetEffect {
  std::string run_id;
  v1::TargetMetrics target_metrics;
  std::string allow_targets;  // the policy its resolved addresses must pass
};
// Seals a shard at the collector; the answer goes to OnSealed.
struct SealEffect {
  std::string run_id;
  std::string worker_id;
  uint64_t epoch = 0;
};
// The run changed: push this update to its WatchRun streams (a terminal
// run ends them).
struct PushEffect {
  v1::RunUpdate update;
};
struct LogEffect {
  LogLevel level = LogLevel::kInfo;
  std::string message;
  std::vector<std::pair<std::string, std::string>> fields;
};

using Effect = std::variant<SendEffect, CloseEffect, WriteEffect, FetchStatsEffect, SealEffect,
                            PushEffect, LogEffect, ScrapeTargetEffect>;
using Effects = std::vector<Effect>;

// What can be said about a worker's process once it went quiet: "; process
// 12 has exited" (and whether it did), or nothing. The edge probes /proc;
// tests script it.
struct ProcessReport {
  std::string clause;  // appended to loss reasons; empty: nothing known
  bool exited = false;
};
using ProcessProbe = std::function<ProcessReport(const v1::WorkerHello&)>;

class RunTracker {
 public:
  // `probe` may be empty (nothing is ever known about processes).
  // `collector`: whether a collector is configured (statistics, seals).
  RunTracker(OrchestratorConfig config, ProcessProbe probe, bool collector);

  // Start-up: the stored runs. Runs that were in progress go on (see the
  // file comment); their workers' grace starts at `now`.
  void Recover(std::vector<v1::Run> runs, absl::Time now, Effects& fx);

  // ---- Runs ----

  // Plans a run over the idle workers and reserves them. The PENDING run is
  // to be written; OnStartStored then dispatches it (or forgets it).
  absl::StatusOr<v1::Run> PlanRun(const v1::RunSpec& spec, absl::Time now, Effects& fx);
  // The write of a planned run finished: on success the run starts and is
  // returned (StartRun's answer); on failure it leaves no trace.
  absl::StatusOr<v1::Run> OnStartStored(const std::string& run_id, const absl::Status& stored,
                                        absl::Time now, Effects& fx);
  // A WriteEffect with report_back finished: shards it made durable are
  // dispatched.
  void OnRunWritten(const std::string& run_id, const absl::Status& stored, absl::Time now,
                    Effects& fx);
  // A write of the run failed (said once on the run).
  void OnStoreFailed(const std::string& run_id, const std::string& error, absl::Time now,
                     Effects& fx);
  absl::StatusOr<v1::Run> StopRun(const std::string& run_id, absl::Time now, Effects& fx);
  absl::StatusOr<v1::Run> GetRun(const std::string& run_id) const;
  // Newest first; `limit` 0: all. Without statistics.
  std::vector<v1::Run> ListRuns(int32_t limit) const;
  // The run as WatchRun streams it; NOT_FOUND for an unknown run.
  absl::StatusOr<v1::RunUpdate> MakeUpdate(const std::string& run_id, absl::Time now) const;
  std::vector<v1::Worker> ListWorkers() const;

  // ---- Workers ----

  // A message on Attach stream `stream` (any unique id the edge chose; the
  // first message must be the hello). A non-OK status ends the stream.
  absl::Status OnMessage(uint64_t stream, const v1::WorkerMessage& message, absl::Time now,
                         Effects& fx);
  // Attach stream `stream` ended (either side). A worker whose process
  // (on this host) has exited is lost at once; others get the heartbeat
  // timeout to re-attach.
  void OnStreamClosed(uint64_t stream, absl::Time now, Effects& fx);

  // ---- Collector answers ----

  // Statistics for the run (null: unavailable).
  void OnStats(const std::string& run_id, const v1::RunStats* stats, bool final, absl::Time now,
               Effects& fx);
  void OnSealed(const std::string& run_id, const std::string& worker_id, uint64_t epoch,
                const absl::StatusOr<v1::SealedShard>& sealed, absl::Time now, Effects& fx);

  // Liveness, grace periods, waiting work, seal retries, statistics polls.
  void Tick(absl::Time now, Effects& fx);

  // Shutting down: every Attach stream is closed; nothing starts any more.
  void Shutdown(Effects& fx);

  // For tests.
  size_t NumWorkersForTest() const { return workers_.size(); }

 private:
  struct WorkerRec {
    v1::WorkerHello hello;
    google::protobuf::Timestamp attached_at;
    google::protobuf::Timestamp last_heartbeat;
    v1::WorkerHeartbeat heartbeat;
    absl::Time last_seen;              // any message, or the attach/recovery
    uint64_t stream = 0;               // 0: detached (or not back yet after a restart)
    bool leaving = false;              // said WorkerLeaving: takes no new work
    // After a restart: the worker is not lost before this (not re-attached
    // yet; its hello is empty until it does).
    absl::Time grace_until = absl::InfinitePast();
    std::set<std::pair<std::string, uint64_t>> stops_sent;  // per stream
  };
  // Tracker-only state of a shard (by epoch) beside its v1::Shard.
  struct ShardRec {
    bool dispatched = false;
    absl::Time dispatched_at = absl::InfinitePast();
    // Lost, drained or cancelled without a stop, not settled yet.
    bool sealing = false;
    bool seal_in_flight = false;
    absl::Time seal_retry_at = absl::InfinitePast();
    absl::Time ended_at;           // when it became LOST / DRAINED
    int loss_index = -1;           // its entry in run.losses, if any
    uint64_t last_sequence = 0;    // from the worker's updates
    int64_t last_batch_end_us = 0;
  };
  // Work of a settled shard that waits for a worker.
  struct Pending {
    uint64_t from_epoch = 0;
    std::vector<v1::ClientSpan> clients;
    int32_t max_concurrent = 0;
    double rate_share = 0;
    int32_t losses = 0;
    absl::Time since;
    int loss_index = -1;
  };
  struct RunRec {
    v1::Run run;
    std::map<uint64_t, ShardRec> shards;  // by epoch
    std::vector<Pending> pending;
    bool starting = false;  // planned, not yet stored
    bool stop_requested = false;
    absl::Time stop_deadline;
    std::string abort_reason;
    // The run cannot succeed any more (a crash loop, lost work that found no
    // worker, failOnWorkerLoss): it ends FAILED with this reason.
    std::string fail_reason;
    bool finalizing = false;
    v1::RunState final_state = v1::RUN_STATE_UNSPECIFIED;
    std::string final_error;
    bool poll_in_flight = false;
    absl::Time next_poll;
    v1::RunStats last_stats;
    load::CumulativeMeans e2e_series;
    double max_loop_lag_ms = 0;
    double max_cpu_percent_per_loop = 0;
    absl::Time rate_at;
    int64_t rate_requests = 0;
    int64_t rate_tokens = 0;
    double requests_per_sec = 0;
    double tokens_per_sec = 0;
    bool store_failure_recorded = false;
    std::map<std::string, int64_t> rejections_said;
    // The run started at (this process's view; recovered runs: the stored
    // start).
    absl::Time started;
  };

  bool WorkerBusy(const std::string& worker_id, const std::string& except_run) const;
  std::vector<std::string> ActiveRunsOf(const std::string& worker_id) const;
  std::string NewRunId();
  v1::Shard* FindShard(RunRec& rec, uint64_t epoch);
  v1::ShardAssignment AssignmentFor(const v1::Run& run, const v1::Shard& shard) const;
  void Send(const std::string& worker_id, v1::OrchestratorMessage message, Effects& fx);
  void SendStop(const std::string& worker_id, const std::string& run_id, uint64_t epoch,
                const std::string& reason, Effects& fx);
  void Dispatch(RunRec& rec, absl::Time now, Effects& fx);

  void HandleHello(uint64_t stream, const v1::WorkerHello& hello, absl::Time now, Effects& fx,
                   absl::Status* status);
  void HandleShardUpdate(WorkerRec& worker, const v1::ShardUpdate& update, absl::Time now,
                         Effects& fx);
  void HandleLeaving(WorkerRec& worker, const v1::WorkerLeaving& leaving, absl::Time now,
                     Effects& fx);

  // Declares the worker lost: its unfinished shards are sealed and moved
  // (or fail their runs, when so asked).
  void MarkLost(const std::string& worker_id, const std::string& reason, absl::Time now,
                Effects& fx);
  // A shard ended early (lost, drained, cancelled without a stop): record
  // it and start sealing.
  void ShardEndedEarly(RunRec& rec, v1::Shard& shard, v1::ShardState state,
                       const std::string& reason, absl::Time last_heard, absl::Time now,
                       Effects& fx);
  void StartSeal(RunRec& rec, v1::Shard& shard, Effects& fx);
  // The work the sealed shard left, or nullopt when none.
  std::optional<Pending> WorkLeft(const RunRec& rec, const v1::Shard& shard,
                                  const v1::SealedShard& sealed, absl::Time now,
                                  std::string* nothing_left) const;
  // Places waiting work on workers with spare capacity.
  void PlacePending(RunRec& rec, absl::Time now, Effects& fx);
  // Every active run with waiting work tries again (a worker attached or
  // capacity freed).
  void PlaceAll(absl::Time now, Effects& fx);

  // Re-derives progress and state; finishes the run when it is done;
  // writes it and pushes it to watchers.
  void RunChanged(RunRec& rec, const std::string& failure, absl::Time now, Effects& fx);
  void FailRun(RunRec& rec, const std::string& reason, absl::Time now, Effects& fx);
  void FinalizeRun(RunRec& rec, v1::RunState state, const std::string& error,
                   const v1::RunStats* stats, absl::Time now, Effects& fx);
  void AbortRun(RunRec& rec, const std::string& reason, absl::Time now, Effects& fx);
  void SendStops(const v1::Run& run, const std::string& reason, Effects& fx);
  void SampleRates(RunRec& rec, absl::Time now);
  v1::RunUpdate UpdateOf(const RunRec& rec, absl::Time now) const;
  void Write(const RunRec& rec, bool report_back, Effects& fx);
  void Push(const RunRec& rec, absl::Time now, Effects& fx);
  static void Log(Effects& fx, LogLevel level, std::string message,
                  std::vector<std::pair<std::string, std::string>> fields = {});

  const OrchestratorConfig config_;
  const ProcessProbe probe_;
  const bool collector_;
  std::mt19937_64 rng_;
  bool stopping_ = false;

  std::map<std::string, WorkerRec> workers_;
  std::map<uint64_t, std::string> streams_;  // Attach stream -> worker id (after hello)
  std::map<std::string, RunRec> runs_;
  std::set<std::string> active_runs_;  // not terminal (starting ones included)
};

// Timestamps for runs from tracker time.
google::protobuf::Timestamp ToTimestamp(absl::Time t);
absl::Time FromTimestamp(const google::protobuf::Timestamp& t);

}  // namespace llmload::orchestrator
