// File: orchestrator_service.h
//
// The llmload.v1.Orchestrator gRPC service (callback API): the thin edge
// around the RunTracker (run_tracker.h), which takes every decision. Each
// call or stream event becomes a tracker call under one mutex; the effects
// it returns (stream writes, database writes, collector calls, log lines)
// are carried out after the mutex is released, in the order they were
// produced, by whichever thread is already carrying effects out (a
// trampoline: a callback that re-enters the service only queues its
// effects), so no lock is held while logging or writing to a stream and no
// effect overtakes an earlier one.
//
// Threading: handlers and reactions run on gRPC threads and never block.
// SQLite writes happen on the RunWriter's thread, collector calls on the
// callback stub. A ticker thread (Start/Stop) feeds the tracker its ticks
// (liveness, grace periods, waiting work, statistics polls) and sends the
// periodic WatchRun updates.
//
// StartRun stores the new run (PENDING) before any worker hears of it and
// dispatches the shards from the store's callback, so it never answers OK
// for a run that is not durable and a run that could not be stored leaves
// no trace. Work moved from a lost worker is likewise written before it is
// dispatched. A later write that fails is logged and recorded on the run as
// an event (its stored copy is behind); the run goes on.
//
// Lock order: mu_ (the tracker) is never held while another lock is taken;
// links_mu_ and watch_mu_ are each held alone, then a link's mutex, then its
// reactor's.

#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/orchestrator/orchestrator_config.h"
#include "services/orchestrator/run_store.h"
#include "services/orchestrator/run_tracker.h"
#include "services/orchestrator/stream_reactors.h"

namespace llmload::orchestrator {

class OrchestratorServiceImpl final : public v1::Orchestrator::CallbackService,
                                      public AttachHandler,
                                      public WatchHandler,
                                      public CallCounter {
 public:
  // `writer` persists runs; its callbacks call into the service, so it must
  // be stopped before the service is destroyed. `stored_runs` are the runs
  // loaded at start-up: those in progress go on (RunTracker::Recover).
  // `collector` may be null.
  OrchestratorServiceImpl(const OrchestratorConfig& config, RunWriter* writer,
                          std::vector<v1::Run> stored_runs,
                          std::unique_ptr<v1::Collector::StubInterface> collector);
  ~OrchestratorServiceImpl() override;

  // Starts / stops the ticker thread. Stop() also ends every Attach and
  // WatchRun stream so a server Shutdown does not wait for them.
  void Start();
  void Stop();

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

  // AttachHandler
  absl::Status OnAttachMessage(uint64_t stream, const v1::WorkerMessage& message) override;
  void OnAttachClosed(uint64_t stream) override;
  void OnAttachDone(uint64_t stream) override ABSL_LOCKS_EXCLUDED(links_mu_);
  // WatchHandler
  void OnWatchDone(const std::string& run_id, const WatchLink* link) override
      ABSL_LOCKS_EXCLUDED(watch_mu_);
  // CallCounter
  void CallStarted() override ABSL_LOCKS_EXCLUDED(calls_mu_);
  void CallDone() override ABSL_LOCKS_EXCLUDED(calls_mu_);

  // Blocks until no unary call is in flight or `deadline`; false on timeout.
  // For shutdown, from the main thread.
  bool WaitForUnaryCalls(absl::Time deadline) ABSL_LOCKS_EXCLUDED(calls_mu_);

  // Runs one round of the ticker's work at `now` (tests may call it).
  void Tick(absl::Time now);

 private:
  struct Watcher {
    std::shared_ptr<WatchLink> link;
    absl::Time last_push;
  };

  // Runs `f` on the tracker under mu_, then carries out the effects it
  // produced (and any queued meanwhile) unless another thread already is.
  void Apply(absl::FunctionRef<void(RunTracker&, Effects&)> f) ABSL_LOCKS_EXCLUDED(mu_);
  void Execute(Effect& effect);
  void PushToWatchers(const v1::RunUpdate& update) ABSL_LOCKS_EXCLUDED(watch_mu_);
  void FetchStats(const std::string& run_id, bool final);
  // spec.targetMetrics: start the collector's scrape loop; stop it (after
  // its last scrape) and then fetch the final statistics.
  void StartScrape(const ScrapeTargetEffect& scrape);
  void StopScrapeThenFetch(const std::string& run_id);
  void Seal(const SealEffect& seal);
  void TickerLoop();
  grpc::ServerUnaryReactor* NewUnaryReactor() { return new CountedUnaryReactor(this); }

  const OrchestratorConfig config_;
  RunWriter* const writer_;
  const std::unique_ptr<v1::Collector::StubInterface> collector_;

  absl::Mutex mu_;
  RunTracker tracker_ ABSL_GUARDED_BY(mu_);
  Effects queued_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> next_stream_{1};
  absl::Mutex links_mu_;
  std::map<uint64_t, std::shared_ptr<AttachLink>> links_ ABSL_GUARDED_BY(links_mu_);

  absl::Mutex watch_mu_;
  std::map<std::string, std::vector<Watcher>> watchers_ ABSL_GUARDED_BY(watch_mu_);
  bool watch_closed_ ABSL_GUARDED_BY(watch_mu_) = false;

  // Collector calls in flight that capture `this`.
  absl::Mutex collector_calls_mu_;
  int64_t collector_calls_ ABSL_GUARDED_BY(collector_calls_mu_) = 0;

  absl::Mutex calls_mu_;
  int64_t calls_in_flight_ ABSL_GUARDED_BY(calls_mu_) = 0;

  absl::Notification stop_ticker_;
  std::thread ticker_;
};

}  // namespace llmload::orchestrator
