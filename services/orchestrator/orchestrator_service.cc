#include "services/orchestrator/orchestrator_service.h"

#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "services/common/grpc_util.h"
#include "services/common/process_identity.h"
#include "services/orchestrator/run_state.h"

namespace llmload::orchestrator {
namespace {

// A dataset this large stays out of answers to clients (Run.elided_prompts).
constexpr size_t kShownDatasetBytes = 64 * 1024;

// The run as clients see it: its spec without a large prompt dataset.
void ElideLargeDataset(v1::Run* run) {
  v1::Target* target = run->mutable_spec()->mutable_target();
  if (target->prompts_size() == 0 && target->prompt_messages_size() == 0) {
    return;
  }
  size_t bytes = 0;
  for (const std::string& p : target->prompts()) {
    bytes += p.size();
  }
  for (const v1::PromptConversation& c : target->prompt_messages()) {
    bytes += c.ByteSizeLong();
  }
  if (bytes <= kShownDatasetBytes) {
    return;
  }
  run->set_elided_prompts(static_cast<uint32_t>(target->prompts_size() +
                                                target->prompt_messages_size()));
  target->clear_prompts();
  target->clear_prompt_messages();
}

void ElideLargeDataset(v1::RunUpdate* update) { ElideLargeDataset(update->mutable_run()); }

const grpc::Status kShuttingDown(grpc::StatusCode::UNAVAILABLE, "orchestrator is shutting down");

// "; process 1234 has exited" or "; process 1234 is still running" when the
// worker runs on this host (`local_host`); nothing when it cannot be known.
// How the process ended is never said: only its parent (waitpid) learns the
// exit code or signal, and the orchestrator did not start it.
ProcessReport DescribeProcess(const v1::WorkerHello& hello, const std::string& local_host) {
  ProcessIdentity process;
  process.pid = hello.pid();
  process.start_ticks = hello.pid_start_ticks();
  process.host = hello.host_id();
  ProcessReport report;
  if (hello.pid() <= 0) {
    return report;
  }
  switch (ProbeProcess(process, local_host)) {
    case ProcessFate::kExited:
      report.clause = absl::StrCat("; process ", hello.pid(), " has exited");
      report.exited = true;
      break;
    case ProcessFate::kRunning:
      report.clause = absl::StrCat("; process ", hello.pid(), " is still running");
      break;
    case ProcessFate::kUnknown:
      break;
  }
  return report;
}

}  // namespace

OrchestratorServiceImpl::OrchestratorServiceImpl(
    const OrchestratorConfig& config, RunWriter* writer, std::vector<v1::Run> stored_runs,
    std::unique_ptr<v1::Collector::StubInterface> collector)
    : config_(config),
      writer_(writer),
      collector_(std::move(collector)),
      tracker_(config,
               [host = HostIdentity()](const v1::WorkerHello& hello) {
                 return DescribeProcess(hello, host);
               },
               collector_ != nullptr && collector_->async() != nullptr) {
  Apply([&](RunTracker& t, Effects& fx) {
    t.Recover(std::move(stored_runs), absl::Now(), fx);
  });
}

OrchestratorServiceImpl::~OrchestratorServiceImpl() { Stop(); }

void OrchestratorServiceImpl::Start() {
  ticker_ = std::thread([this] { TickerLoop(); });
}

void OrchestratorServiceImpl::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
  }
  Apply([](RunTracker& t, Effects& fx) { t.Shutdown(fx); });
  {
    // Every effect queued so far has been carried out (another thread may
    // have been doing it).
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !draining_ && queued_.empty();
    };
    mu_.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(5));
  }
  {
    absl::MutexLock lock(&watch_mu_);
    watch_closed_ = true;
    for (auto& [run_id, list] : watchers_) {
      for (Watcher& w : list) {
        w.link->Close(kShuttingDown);
      }
    }
    watchers_.clear();
  }
  stop_ticker_.Notify();
  if (ticker_.joinable()) {
    ticker_.join();
  }
  // Collector calls in flight capture `this`: wait for their callbacks.
  absl::MutexLock lock(&collector_calls_mu_);
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(collector_calls_mu_) {
    return collector_calls_ == 0;
  };
  collector_calls_mu_.AwaitWithTimeout(absl::Condition(&idle),
                                       config_.collector_deadline + absl::Seconds(1));
}

// ---- Effects ----

void OrchestratorServiceImpl::Apply(absl::FunctionRef<void(RunTracker&, Effects&)> f) {
  {
    absl::MutexLock lock(&mu_);
    Effects fx;
    f(tracker_, fx);
    for (Effect& e : fx) {
      queued_.push_back(std::move(e));
    }
    if (draining_ || queued_.empty()) {
      return;
    }
    draining_ = true;
  }
  for (;;) {
    Effects batch;
    {
      absl::MutexLock lock(&mu_);
      if (queued_.empty()) {
        draining_ = false;
        return;
      }
      batch.swap(queued_);
    }
    for (Effect& e : batch) {
      Execute(e);
    }
  }
}

void OrchestratorServiceImpl::Execute(Effect& effect) {
  if (auto* send = std::get_if<SendEffect>(&effect)) {
    std::shared_ptr<AttachLink> link;
    {
      absl::MutexLock lock(&links_mu_);
      auto it = links_.find(send->stream);
      if (it != links_.end()) {
        link = it->second;
      }
    }
    if (link != nullptr) {
      link->Send(send->message);
    }
  } else if (auto* close = std::get_if<CloseEffect>(&effect)) {
    std::shared_ptr<AttachLink> link;
    {
      absl::MutexLock lock(&links_mu_);
      auto it = links_.find(close->stream);
      if (it != links_.end()) {
        link = it->second;
      }
    }
    if (link != nullptr) {
      link->Close(ToGrpcStatus(close->status));
    }
  } else if (auto* write = std::get_if<WriteEffect>(&effect)) {
    const std::string id = write->run.id();
    if (write->report_back) {
      writer_->Enqueue(write->run, [this, id](absl::Status stored) {
        Apply([&](RunTracker& t, Effects& fx) { t.OnRunWritten(id, stored, absl::Now(), fx); });
      });
    } else {
      writer_->Enqueue(write->run, [this, id](absl::Status stored) {
        if (!stored.ok()) {
          Apply([&](RunTracker& t, Effects& fx) {
            t.OnStoreFailed(id, std::string(stored.message()), absl::Now(), fx);
          });
        }
      });
    }
  } else if (auto* fetch = std::get_if<FetchStatsEffect>(&effect)) {
    if (fetch->stop_scrape) {
      StopScrapeThenFetch(fetch->run_id);
    } else {
      FetchStats(fetch->run_id, fetch->final);
    }
  } else if (auto* scrape = std::get_if<ScrapeTargetEffect>(&effect)) {
    StartScrape(*scrape);
  } else if (auto* seal = std::get_if<SealEffect>(&effect)) {
    Seal(*seal);
  } else if (auto* push = std::get_if<PushEffect>(&effect)) {
    PushToWatchers(push->update);
  } else if (auto* log = std::get_if<LogEffect>(&effect)) {
    if (LogEnabled(log->level)) {
      LogLine line(log->level, log->message);
      for (const auto& [k, v] : log->fields) {
        line.Kv(k, v);
      }
    }
  }
}

void OrchestratorServiceImpl::FetchStats(const std::string& run_id, bool final) {
  if (collector_ == nullptr || collector_->async() == nullptr) {
    Apply([&](RunTracker& t, Effects& fx) { t.OnStats(run_id, nullptr, final, absl::Now(), fx); });
    return;
  }
  struct StatsCall {
    grpc::ClientContext context;
    v1::GetRunStatsRequest request;
    v1::RunStats response;
  };
  auto* call = new StatsCall;
  call->request.set_run_id(run_id);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + config_.collector_deadline));
  {
    absl::MutexLock lock(&collector_calls_mu_);
    ++collector_calls_;
  }
  collector_->async()->GetRunStats(
      &call->context, &call->request, &call->response, [this, call, final](grpc::Status status) {
        Apply([&](RunTracker& t, Effects& fx) {
          t.OnStats(call->request.run_id(), status.ok() ? &call->response : nullptr, final,
                    absl::Now(), fx);
        });
        delete call;
        absl::MutexLock lock(&collector_calls_mu_);
        --collector_calls_;
      });
}

void OrchestratorServiceImpl::StartScrape(const ScrapeTargetEffect& scrape) {
  if (collector_ == nullptr || collector_->async() == nullptr) {
    return;
  }
  struct ScrapeCall {
    grpc::ClientContext context;
    v1::TargetScrapeRequest request;
    v1::TargetScrapeReply response;
  };
  auto* call = new ScrapeCall;
  call->request.set_run_id(scrape.run_id);
  *call->request.mutable_target_metrics() = scrape.target_metrics;
  call->request.set_allow_targets(scrape.allow_targets);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + config_.collector_deadline));
  {
    absl::MutexLock lock(&collector_calls_mu_);
    ++collector_calls_;
  }
  collector_->async()->ScrapeTarget(
      &call->context, &call->request, &call->response, [this, call](grpc::Status status) {
        if (!status.ok()) {
          // The run goes on without the target's metrics.
          LLMLOAD_LOG(kWarn, "The collector did not start scraping the target's metrics.")
              .Kv("run_id", call->request.run_id())
              .Kv("error", status.error_message());
        }
        delete call;
        absl::MutexLock lock(&collector_calls_mu_);
        --collector_calls_;
      });
}

void OrchestratorServiceImpl::StopScrapeThenFetch(const std::string& run_id) {
  if (collector_ == nullptr || collector_->async() == nullptr) {
    FetchStats(run_id, true);
    return;
  }
  struct ScrapeCall {
    grpc::ClientContext context;
    v1::TargetScrapeRequest request;
    v1::TargetScrapeReply response;
  };
  auto* call = new ScrapeCall;
  call->request.set_run_id(run_id);
  call->request.set_stop(true);
  // The answer waits for one last scrape (at most the scraper's 5 s timeout).
  call->context.set_deadline(
      absl::ToChronoTime(absl::Now() + config_.collector_deadline + absl::Seconds(5)));
  {
    absl::MutexLock lock(&collector_calls_mu_);
    ++collector_calls_;
  }
  collector_->async()->ScrapeTarget(
      &call->context, &call->request, &call->response, [this, call](grpc::Status status) {
        if (!status.ok()) {
          LLMLOAD_LOG(kWarn, "The collector did not stop scraping the target's metrics.")
              .Kv("run_id", call->request.run_id())
              .Kv("error", status.error_message());
        }
        // The final statistics whatever the answer: the scrape never
        // decides the run.
        FetchStats(call->request.run_id(), true);
        delete call;
        absl::MutexLock lock(&collector_calls_mu_);
        --collector_calls_;
      });
}

void OrchestratorServiceImpl::Seal(const SealEffect& seal) {
  if (collector_ == nullptr || collector_->async() == nullptr) {
    Apply([&](RunTracker& t, Effects& fx) {
      t.OnSealed(seal.run_id, seal.worker_id, seal.epoch,
                 absl::FailedPreconditionError("no collector configured"), absl::Now(), fx);
    });
    return;
  }
  struct SealCall {
    grpc::ClientContext context;
    v1::SealShardRequest request;
    v1::SealedShard response;
  };
  auto* call = new SealCall;
  call->request.set_run_id(seal.run_id);
  call->request.set_worker_id(seal.worker_id);
  call->request.set_epoch(seal.epoch);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + config_.collector_deadline));
  {
    absl::MutexLock lock(&collector_calls_mu_);
    ++collector_calls_;
  }
  collector_->async()->SealShard(
      &call->context, &call->request, &call->response, [this, call](grpc::Status status) {
        absl::StatusOr<v1::SealedShard> result =
            status.ok() ? absl::StatusOr<v1::SealedShard>(std::move(call->response))
                        : absl::StatusOr<v1::SealedShard>(FromGrpcStatus(status));
        Apply([&](RunTracker& t, Effects& fx) {
          t.OnSealed(call->request.run_id(), call->request.worker_id(), call->request.epoch(),
                     result, absl::Now(), fx);
        });
        delete call;
        absl::MutexLock lock(&collector_calls_mu_);
        --collector_calls_;
      });
}

void OrchestratorServiceImpl::PushToWatchers(const v1::RunUpdate& full) {
  absl::MutexLock lock(&watch_mu_);
  auto it = watchers_.find(full.run().id());
  if (it == watchers_.end()) {
    return;
  }
  v1::RunUpdate update = full;
  ElideLargeDataset(&update);
  const absl::Time now = absl::Now();
  for (Watcher& w : it->second) {
    w.link->Push(update);
    w.last_push = now;
  }
  if (IsTerminal(update.run().state())) {
    watchers_.erase(it);  // each finishes after writing the terminal run
  }
}

// ---- Ticker ----

void OrchestratorServiceImpl::TickerLoop() {
  while (!stop_ticker_.WaitForNotificationWithTimeout(config_.tick)) {
    Tick(absl::Now());
  }
}

void OrchestratorServiceImpl::Tick(absl::Time now) {
  Apply([&](RunTracker& t, Effects& fx) { t.Tick(now, fx); });
  // Periodic WatchRun updates for runs whose watchers heard nothing lately.
  std::vector<std::string> due;
  {
    absl::MutexLock lock(&watch_mu_);
    for (const auto& [run_id, list] : watchers_) {
      for (const Watcher& w : list) {
        if (now - w.last_push >= config_.watch_interval) {
          due.push_back(run_id);
          break;
        }
      }
    }
  }
  for (const std::string& run_id : due) {
    absl::StatusOr<v1::RunUpdate> update;
    {
      absl::MutexLock lock(&mu_);
      update = tracker_.MakeUpdate(run_id, now);
    }
    if (!update.ok()) {
      continue;
    }
    ElideLargeDataset(&*update);
    absl::MutexLock lock(&watch_mu_);
    auto it = watchers_.find(run_id);
    if (it == watchers_.end()) {
      continue;
    }
    for (Watcher& w : it->second) {
      if (now - w.last_push >= config_.watch_interval || IsTerminal(update->run().state())) {
        w.link->Push(*update);
        w.last_push = now;
      }
    }
    if (IsTerminal(update->run().state())) {
      watchers_.erase(it);
    }
  }
}

// ---- Calls ----

void OrchestratorServiceImpl::CallStarted() {
  absl::MutexLock lock(&calls_mu_);
  ++calls_in_flight_;
}

void OrchestratorServiceImpl::CallDone() {
  absl::MutexLock lock(&calls_mu_);
  --calls_in_flight_;
}

bool OrchestratorServiceImpl::WaitForUnaryCalls(absl::Time deadline) {
  absl::MutexLock lock(&calls_mu_);
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(calls_mu_) { return calls_in_flight_ == 0; };
  return calls_mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::StartRun(grpc::CallbackServerContext* ctx,
                                                            const v1::StartRunRequest* request,
                                                            v1::Run* reply) {
  grpc::ServerUnaryReactor* reactor = NewUnaryReactor();
  if (grpc::Status denied = config_.auth->Check(*ctx, Access::kOperate, "StartRun"); !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  absl::StatusOr<v1::Run> pending;
  Apply([&](RunTracker& t, Effects& fx) { pending = t.PlanRun(request->spec(), absl::Now(), fx); });
  if (!pending.ok()) {
    reactor->Finish(ToGrpcStatus(pending.status()));
    return reactor;
  }
  // Store first, dispatch after: no worker may start a run the orchestrator
  // could not keep. The workers stay reserved meanwhile.
  const std::string id = pending->id();
  writer_->Enqueue(*pending, [this, id, reactor, reply](absl::Status stored) {
    absl::StatusOr<v1::Run> started;
    Apply([&](RunTracker& t, Effects& fx) {
      started = t.OnStartStored(id, stored, absl::Now(), fx);
    });
    if (started.ok()) {
      *reply = *std::move(started);
      ElideLargeDataset(reply);
    }
    reactor->Finish(ToGrpcStatus(started.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::GetRun(grpc::CallbackServerContext* ctx,
                                                          const v1::GetRunRequest* request,
                                                          v1::Run* reply) {
  grpc::ServerUnaryReactor* reactor = NewUnaryReactor();
  if (grpc::Status denied = config_.auth->Check(*ctx, Access::kRead, "GetRun"); !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  absl::StatusOr<v1::Run> run;
  {
    absl::MutexLock lock(&mu_);
    run = tracker_.GetRun(request->id());
  }
  if (!run.ok()) {
    reactor->Finish(ToGrpcStatus(run.status()));
    return reactor;
  }
  *reply = *std::move(run);
  ElideLargeDataset(reply);
  if (collector_ == nullptr || collector_->async() == nullptr) {
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  struct StatsCall {
    grpc::ClientContext context;
    v1::GetRunStatsRequest request;
    v1::RunStats response;
  };
  auto* call = new StatsCall;
  call->request.set_run_id(request->id());
  call->request.set_per_worker(true);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + config_.collector_deadline));
  collector_->async()->GetRunStats(
      &call->context, &call->request, &call->response,
      [call, reply, reactor](grpc::Status status) {
        const v1::RunStats& stats = call->response;
        const bool has_data = stats.batches() > 0 || stats.metrics_size() > 0 ||
                              stats.counters_size() > 0 || stats.workers_size() > 0;
        if (status.ok() && has_data) {
          *reply->mutable_stats() = std::move(call->response);
        } else if (!status.ok()) {
          LLMLOAD_LOG(kDebug, "No statistics from the collector.")
              .Kv("run_id", call->request.run_id())
              .Kv("code", static_cast<int>(status.error_code()))
              .Kv("error", status.error_message());
        }
        delete call;
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::ListRuns(grpc::CallbackServerContext* ctx,
                                                            const v1::ListRunsRequest* request,
                                                            v1::ListRunsResponse* reply) {
  grpc::ServerUnaryReactor* reactor = NewUnaryReactor();
  if (grpc::Status denied = config_.auth->Check(*ctx, Access::kRead, "ListRuns"); !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  if (request->limit() < 0) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 absl::StrCat("limit: must be >= 0 (0: all), got ",
                                              request->limit())));
    return reactor;
  }
  std::vector<v1::Run> runs;
  {
    absl::MutexLock lock(&mu_);
    runs = tracker_.ListRuns(request->limit());
  }
  for (v1::Run& run : runs) {
    ElideLargeDataset(&run);
    *reply->add_runs() = std::move(run);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::StopRun(grpc::CallbackServerContext* ctx,
                                                           const v1::StopRunRequest* request,
                                                           v1::Run* reply) {
  grpc::ServerUnaryReactor* reactor = NewUnaryReactor();
  if (grpc::Status denied = config_.auth->Check(*ctx, Access::kOperate, "StopRun"); !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  absl::StatusOr<v1::Run> run;
  Apply([&](RunTracker& t, Effects& fx) { run = t.StopRun(request->id(), absl::Now(), fx); });
  if (run.ok()) {
    *reply = *std::move(run);
    ElideLargeDataset(reply);
  }
  reactor->Finish(ToGrpcStatus(run.status()));
  return reactor;
}

grpc::ServerWriteReactor<v1::RunUpdate>* OrchestratorServiceImpl::WatchRun(
    grpc::CallbackServerContext* ctx, const v1::WatchRunRequest* request) {
  if (grpc::Status denied = config_.auth->Check(*ctx, Access::kRead, "WatchRun"); !denied.ok()) {
    return new FinishedReactor<grpc::ServerWriteReactor<v1::RunUpdate>>(denied);
  }
  absl::StatusOr<v1::RunUpdate> update;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return new FinishedReactor<grpc::ServerWriteReactor<v1::RunUpdate>>(kShuttingDown);
    }
    update = tracker_.MakeUpdate(request->id(), absl::Now());
  }
  if (!update.ok()) {
    return new FinishedReactor<grpc::ServerWriteReactor<v1::RunUpdate>>(
        ToGrpcStatus(update.status()));
  }
  ElideLargeDataset(&*update);
  auto* reactor = new WatchReactor(this, request->id());
  reactor->Push(*update);
  if (!IsTerminal(update->run().state())) {
    absl::MutexLock lock(&watch_mu_);
    if (watch_closed_) {
      reactor->link()->Close(kShuttingDown);
    } else {
      watchers_[request->id()].push_back({reactor->link(), absl::Now()});
    }
  }
  return reactor;
}

void OrchestratorServiceImpl::OnWatchDone(const std::string& run_id, const WatchLink* link) {
  absl::MutexLock lock(&watch_mu_);
  auto it = watchers_.find(run_id);
  if (it == watchers_.end()) {
    return;
  }
  std::erase_if(it->second, [link](const Watcher& w) { return w.link.get() == link; });
  if (it->second.empty()) {
    watchers_.erase(it);
  }
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::ListWorkers(
    grpc::CallbackServerContext* ctx, const v1::ListWorkersRequest* request,
    v1::ListWorkersResponse* reply) {
  grpc::ServerUnaryReactor* reactor = NewUnaryReactor();
  if (grpc::Status denied = config_.auth->Check(*ctx, Access::kRead, "ListWorkers"); !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  std::vector<v1::Worker> workers;
  {
    absl::MutexLock lock(&mu_);
    workers = tracker_.ListWorkers();
  }
  for (v1::Worker& w : workers) {
    *reply->add_workers() = std::move(w);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<v1::WorkerMessage, v1::OrchestratorMessage>*
OrchestratorServiceImpl::Attach(grpc::CallbackServerContext* ctx) {
  if (grpc::Status denied = config_.auth->Check(*ctx, Access::kJoin, "Attach"); !denied.ok()) {
    return new FinishedReactor<
        grpc::ServerBidiReactor<v1::WorkerMessage, v1::OrchestratorMessage>>(denied);
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return new FinishedReactor<
          grpc::ServerBidiReactor<v1::WorkerMessage, v1::OrchestratorMessage>>(kShuttingDown);
    }
  }
  const uint64_t stream = next_stream_.fetch_add(1);
  auto* reactor = new AttachReactor(this, stream);
  {
    // Registered before the first read can complete, so effects for the
    // stream always find its link.
    absl::MutexLock lock(&links_mu_);
    links_[stream] = reactor->link();
  }
  reactor->Start();
  return reactor;
}

absl::Status OrchestratorServiceImpl::OnAttachMessage(uint64_t stream,
                                                      const v1::WorkerMessage& message) {
  absl::Status status;
  Apply([&](RunTracker& t, Effects& fx) {
    status = t.OnMessage(stream, message, absl::Now(), fx);
  });
  return status;
}

void OrchestratorServiceImpl::OnAttachClosed(uint64_t stream) {
  Apply([&](RunTracker& t, Effects& fx) { t.OnStreamClosed(stream, absl::Now(), fx); });
}

void OrchestratorServiceImpl::OnAttachDone(uint64_t stream) {
  absl::MutexLock lock(&links_mu_);
  links_.erase(stream);
}

}  // namespace llmload::orchestrator
