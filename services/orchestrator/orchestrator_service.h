// File: orchestrator_service.h
//
// The llmload.v1.Orchestrator gRPC service (callback API): starts runs by
// planning them over the idle attached workers, dispatches shards over each
// worker's Attach stream, tracks progress and worker liveness, and keeps
// every run durable through a RunWriter.
//
// Threading: handlers and reactions run on gRPC threads and never block.
// All state sits behind one absl::Mutex with short critical sections; SQLite
// writes happen on the RunWriter's thread, collector calls on the callback
// stub. A ticker thread (Start/Stop) declares silent workers lost, ends stop
// grace periods and sends the periodic WatchRun updates; once per second it
// polls the collector for each running run (live percentiles, abort on a
// failing threshold, the latency trend).
//
// StartRun stores the new run (PENDING) before any worker hears of it and
// dispatches the shards from the store's callback, so it never answers OK
// for a run that is not durable and a run that could not be stored leaves
// no trace. A later write that fails is logged and recorded on the run as an
// event (its stored copy is behind); the run goes on.
//
// Runs do not share workers: a run is planned over the attached workers
// that have no unfinished shard, and StartRun answers FAILED_PRECONDITION
// when there is none. A worker that attaches during a run is not given any
// of it (the plan is fixed at StartRun); it serves the next run.
//
// A lost worker: when its stream ends or it falls silent, the run's events
// say whether its process is still running or has exited, if the worker
// runs on this host (its hello carries its pid and host identity, see
// services/common/process_identity.h); from elsewhere nothing is claimed.
//
// The verdict: when every shard has ended, the run stays RUNNING while the
// orchestrator fetches the final statistics (bounded by the collector
// deadline), evaluates the thresholds and warning signs, and only then
// becomes terminal, so a terminal run always carries `passed`.
//
// Lock order: OrchestratorServiceImpl::mu_ -> a stream link's mutex -> the
// stream reactor's mutex; mu_ -> the RunWriter's mutex -> store_failures_mu_.
// Reactors never call into the service while holding their own mutex.

#pragma once

#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "lib/load/verdict.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/orchestrator/run_store.h"

namespace llmload::orchestrator {

struct OrchestratorConfig {
  std::string grpc_address = "0.0.0.0:50051";
  // Collector gRPC address for GetRun statistics; empty: no statistics.
  std::string collector_address = "127.0.0.1:50052";
  std::string db_path = "orchestrator.db";
  // A worker is lost after this long without a message (or this long after
  // its stream ended, unless it re-attached with the same id).
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  // What AttachAccepted asks workers for.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // After StopRun, shards that did not confirm within this are cancelled.
  absl::Duration stop_grace = absl::Seconds(5);
  // WatchRun sends the run at least this often while nothing changes.
  absl::Duration watch_interval = absl::Milliseconds(500);
  absl::Duration collector_deadline = absl::Seconds(2);
  // Resolution of the liveness, grace and watch timers.
  absl::Duration tick = absl::Milliseconds(100);
};

// INVALID_ARGUMENT naming the offending option.
absl::Status Validate(const OrchestratorConfig& config);

class AttachLink;
class WatchLink;

class OrchestratorServiceImpl final : public v1::Orchestrator::CallbackService {
 public:
  // `writer` persists runs; its callbacks call into the service, so it must
  // be stopped before the service is destroyed. `stored_runs` are the runs
  // loaded at start-up (already recovered, see RecoverRuns). `collector` may
  // be null.
  OrchestratorServiceImpl(const OrchestratorConfig& config, RunWriter* writer,
                          std::vector<v1::Run> stored_runs,
                          std::unique_ptr<v1::Collector::StubInterface> collector);
  ~OrchestratorServiceImpl() override;

  // Starts / stops the ticker thread. Stop() also ends every Attach and
  // WatchRun stream so a server Shutdown does not wait for them.
  void Start();
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // v1::Orchestrator
  grpc::ServerUnaryReactor* StartRun(grpc::CallbackServerContext* ctx,
                                     const v1::StartRunRequest* request, v1::Run* reply) override;
  grpc::ServerUnaryReactor* GetRun(grpc::CallbackServerContext* ctx,
                                   const v1::GetRunRequest* request, v1::Run* reply) override;
  grpc::ServerUnaryReactor* ListRuns(grpc::CallbackServerContext* ctx,
                                     const v1::ListRunsRequest* request,
                                     v1::ListRunsResponse* reply) override;
  grpc::ServerUnaryReactor* StopRun(grpc::CallbackServerContext* ctx,
                                    const v1::StopRunRequest* request, v1::Run* reply) override;
  grpc::ServerWriteReactor<v1::RunUpdate>* WatchRun(grpc::CallbackServerContext* ctx,
                                                    const v1::WatchRunRequest* request) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest* request,
                                        v1::ListWorkersResponse* reply) override;
  grpc::ServerBidiReactor<v1::WorkerMessage, v1::OrchestratorMessage>* Attach(
      grpc::CallbackServerContext* ctx) override;

  // Called by the Attach reactor (not for other users).
  absl::Status OnWorkerMessage(const std::shared_ptr<AttachLink>& link,
                               const v1::WorkerMessage& message) ABSL_LOCKS_EXCLUDED(mu_);
  void OnWorkerStreamClosed(const std::shared_ptr<AttachLink>& link) ABSL_LOCKS_EXCLUDED(mu_);
  // Called by the WatchRun reactor when it is done.
  void RemoveWatcher(const std::string& run_id, const WatchLink* link) ABSL_LOCKS_EXCLUDED(mu_);

  // Used by the unary reactors to count calls in flight.
  void CallStarted() ABSL_LOCKS_EXCLUDED(calls_mu_);
  void CallDone() ABSL_LOCKS_EXCLUDED(calls_mu_);
  // Blocks until no unary call is in flight or `deadline`; false on timeout.
  // For shutdown, from the main thread.
  bool WaitForUnaryCalls(absl::Time deadline) ABSL_LOCKS_EXCLUDED(calls_mu_);

  // Runs one round of the ticker's work at `now` (tests may call it).
  void Tick(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct WorkerEntry {
    v1::WorkerHello hello;
    google::protobuf::Timestamp attached_at;
    google::protobuf::Timestamp last_heartbeat;
    v1::WorkerHeartbeat heartbeat;
    absl::Time last_seen;
    std::shared_ptr<AttachLink> link;  // null while detached
    absl::Time detached_at;
  };
  struct Watcher {
    std::shared_ptr<WatchLink> link;
    absl::Time last_push;
  };
  struct RunEntry {
    v1::Run run;
    bool stop_requested = false;
    absl::Time stop_deadline;
    // A threshold with abortOnFail failed: the run is being stopped and ends
    // FAILED with this reason.
    std::string abort_reason;
    // Every shard ended; the final statistics are being fetched to decide
    // the verdict before the run becomes terminal.
    bool finalizing = false;
    v1::RunState final_state = v1::RUN_STATE_UNSPECIFIED;
    std::string final_error;
    // Live view: the collector's latest statistics (polled once per second),
    // cumulative e2e means over time (latency-rising warning), rates from
    // progress deltas, and the highest loop lag of the run's workers.
    bool poll_in_flight = false;
    absl::Time next_poll;
    v1::RunStats last_stats;
    load::CumulativeMeans e2e_series;
    double max_loop_lag_ms = 0;
    absl::Time rate_at;
    int64_t rate_requests = 0;
    int64_t rate_tokens = 0;
    double requests_per_sec = 0;
    double tokens_per_sec = 0;
    // A write of this run failed and the run says so (once).
    bool store_failure_recorded = false;
    // Per worker: the rejected-batch count its last rejection event named.
    std::map<std::string, int64_t> rejections_said;
  };

  // A run between planning and its first durable write: its workers are
  // reserved (WorkerBusy) and nothing is dispatched yet.
  struct StartingRun {
    v1::Run run;                                   // PENDING
    std::vector<v1::ShardAssignment> assignments;  // one per shard, in order
  };

  // Plans a PENDING run over the idle workers and reserves them.
  absl::StatusOr<StartingRun> PlanRunLocked(const v1::RunSpec& spec)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The writer's answer for a starting run: on success the run is tracked
  // and dispatched and StartRun answers it; on failure it is forgotten and
  // StartRun fails.
  void OnRunStored(const std::string& run_id, const absl::Status& stored,
                   grpc::ServerUnaryReactor* reactor, v1::Run* reply) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues the run's current state for the store. A failed write reaches the
  // run as an event at the next Tick.
  void PersistRun(const v1::Run& run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordStoreFailures() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleShardUpdate(const std::string& worker_id, AttachLink& link,
                         const v1::ShardUpdate& update) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Re-derives progress and state after shards changed; finishes the run
  // when it is done; persists and notifies watchers.
  void RunChanged(RunEntry& entry, const std::string& failure)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkWorkerLost(const std::string& worker_id, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends stop to the workers of the run's unfinished shards.
  void SendStops(const v1::Run& run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyWatchers(const RunEntry& entry, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The run plus its live statistics, as WatchRun streams it.
  v1::RunUpdate MakeUpdate(const RunEntry& entry, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks the collector for the run's statistics (`final`: to decide the
  // verdict); the answer goes to OnStats.
  void RequestStats(RunEntry& entry, bool final) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnStats(const std::string& run_id, const v1::RunStats* stats, bool final)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Stops the run because a threshold can no longer pass; it ends FAILED.
  void AbortRun(RunEntry& entry, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the run to its terminal state with the verdict (thresholds
  // evaluated on `stats`, null when unavailable) and warning signs.
  void FinalizeRun(RunEntry& entry, v1::RunState state, const std::string& error,
                   const v1::RunStats* stats) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SampleRates(RunEntry& entry, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool WorkerBusy(const std::string& worker_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::string> ActiveRunsOf(const std::string& worker_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewRunId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TickerLoop();
  grpc::ServerUnaryReactor* NewUnaryReactor();

  const OrchestratorConfig config_;
  const std::string host_id_;  // this process's HostIdentity()
  RunWriter* const writer_;
  const std::unique_ptr<v1::Collector::StubInterface> collector_;

  absl::Mutex mu_;
  std::map<std::string, WorkerEntry> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, RunEntry> runs_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> active_runs_ ABSL_GUARDED_BY(mu_);  // not terminal
  std::map<std::string, StartingRun> starting_ ABSL_GUARDED_BY(mu_);  // being stored
  absl::flat_hash_map<std::string, std::vector<Watcher>> watchers_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t stats_calls_ ABSL_GUARDED_BY(mu_) = 0;  // collector calls with `this` in flight

  // Failed writes (run id, error) as PersistRun's callbacks report them.
  // Those never take mu_: a stopped writer calls back at once, while mu_ is
  // held. Tick moves them onto the runs.
  absl::Mutex store_failures_mu_;
  std::vector<std::pair<std::string, std::string>> store_failures_
      ABSL_GUARDED_BY(store_failures_mu_);

  absl::Mutex calls_mu_;
  int64_t calls_in_flight_ ABSL_GUARDED_BY(calls_mu_) = 0;

  absl::Notification stop_ticker_;
  std::thread ticker_;
};

// Start-up recovery: a run that was PENDING or RUNNING when the previous
// process died becomes FAILED ("orchestrator restarted while the run was in
// progress"), its unfinished shards SHARD_LOST. Returns true if it changed.
bool RecoverRun(v1::Run* run, const google::protobuf::Timestamp& now);

}  // namespace llmload::orchestrator
