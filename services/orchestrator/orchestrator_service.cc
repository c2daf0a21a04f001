#include "services/orchestrator/orchestrator_service.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lib/common/log.h"
#include "lib/planning/planning.h"
#include "lib/validation/validation.h"
#include "services/common/grpc_util.h"
#include "services/common/process_identity.h"
#include "services/orchestrator/run_state.h"

namespace llmload::orchestrator {

// ---- Stream plumbing ----
//
// The service never holds a reactor pointer directly: it holds a shared
// link whose mutex guards the pointer, and the reactor clears it in OnDone
// before deleting itself. Sending on a link whose stream is gone does
// nothing.

class AttachReactor;
class WatchReactor;

class AttachLink {
 public:
  explicit AttachLink(AttachReactor* reactor) : reactor_(reactor) {}
  void Send(const v1::OrchestratorMessage& message) ABSL_LOCKS_EXCLUDED(mu_);
  void Close(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void Detach() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
  }

  // Owned by the service, guarded by OrchestratorServiceImpl::mu_.
  std::string worker_id;                // set by the accepted hello
  std::set<std::string> stopped_runs;   // stops sent for runs not active here

 private:
  absl::Mutex mu_;
  AttachReactor* reactor_ ABSL_GUARDED_BY(mu_);
};

class WatchLink {
 public:
  explicit WatchLink(WatchReactor* reactor) : reactor_(reactor) {}
  void Push(const v1::RunUpdate& update) ABSL_LOCKS_EXCLUDED(mu_);
  void Close(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void Detach() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  WatchReactor* reactor_ ABSL_GUARDED_BY(mu_);
};

namespace {

// Finishes a stream at once (unknown run, shutting down).
template <typename Base>
class FinishedReactor final : public Base {
 public:
  explicit FinishedReactor(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

const grpc::Status kShuttingDown(grpc::StatusCode::UNAVAILABLE, "orchestrator is shutting down");

std::string Seconds(absl::Duration d) { return absl::FormatDuration(d); }

// "; process 1234 has exited" or "; process 1234 is still running" when the
// worker runs on this host (`local_host`); "" when it cannot be known. How
// the process ended is never said: only its parent (waitpid) learns the exit
// code or signal, and the orchestrator did not start it.
std::string ProcessClause(const v1::WorkerHello& hello, const std::string& local_host) {
  ProcessIdentity process;
  process.pid = hello.pid();
  process.start_ticks = hello.pid_start_ticks();
  process.host = hello.host_id();
  switch (ProbeProcess(process, local_host)) {
    case ProcessFate::kExited:
      return absl::StrCat("; process ", hello.pid(), " has exited");
    case ProcessFate::kRunning:
      return absl::StrCat("; process ", hello.pid(), " is still running");
    case ProcessFate::kUnknown:
      break;
  }
  return "";
}

bool ValidWorkerId(const std::string& id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f;
  });
}

}  // namespace

// A unary reactor that counts itself in and out, so shutdown can wait for
// the unary calls in flight (and only for them).
class CountedUnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit CountedUnaryReactor(OrchestratorServiceImpl* service) : service_(service) {
    service_->CallStarted();
  }
  void OnDone() override {
    service_->CallDone();
    delete this;
  }

 private:
  OrchestratorServiceImpl* const service_;
};

// Attach: one write in flight, the rest queued; Finish once, deferred until
// the write in flight completes.
class AttachReactor final
    : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::OrchestratorMessage> {
 public:
  explicit AttachReactor(OrchestratorServiceImpl* service)
      : service_(service), link_(std::make_shared<AttachLink>(this)) {
    StartRead(&in_);
  }

  void Enqueue(const v1::OrchestratorMessage& message) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (finish_requested_) {
      return;
    }
    outbox_.push_back(message);
    if (!writing_) {
      writing_ = true;
      StartWrite(&outbox_.front());
    }
  }

  void RequestFinish(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (finish_requested_) {
        return;
      }
      finish_requested_ = true;
      final_status_ = status;
      if (writing_) {
        return;  // OnWriteDone finishes
      }
    }
    Finish(status);  // last touch of `this`: OnDone may follow at once
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      service_->OnWorkerStreamClosed(link_);
      RequestFinish(grpc::Status::OK);
      return;
    }
    if (absl::Status s = service_->OnWorkerMessage(link_, in_); !s.ok()) {
      service_->OnWorkerStreamClosed(link_);
      RequestFinish(ToGrpcStatus(s));
      return;
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      outbox_.pop_front();
      if (!ok) {
        outbox_.clear();  // the stream is broken; the read fails too
      }
      if (!outbox_.empty() && !finish_requested_) {
        StartWrite(&outbox_.front());
        return;
      }
      writing_ = false;
      if (!finish_requested_) {
        return;
      }
      status = final_status_;
    }
    Finish(status);
  }

  void OnCancel() override { RequestFinish(grpc::Status::CANCELLED); }

  void OnDone() override {
    link_->Detach();
    delete this;
  }

 private:
  OrchestratorServiceImpl* const service_;
  const std::shared_ptr<AttachLink> link_;
  v1::WorkerMessage in_;  // touched only by the read chain
  absl::Mutex mu_;
  std::deque<v1::OrchestratorMessage> outbox_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

// WatchRun: one write in flight and at most one pending snapshot (the newest
// replaces an older unsent one); finishes OK after writing a terminal run.
class WatchReactor final : public grpc::ServerWriteReactor<v1::RunUpdate> {
 public:
  WatchReactor(OrchestratorServiceImpl* service, std::string run_id)
      : service_(service), run_id_(std::move(run_id)), link_(std::make_shared<WatchLink>(this)) {}

  const std::shared_ptr<WatchLink>& link() const { return link_; }

  void Push(const v1::RunUpdate& update) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (finish_requested_ || terminal_queued_) {
      return;
    }
    terminal_queued_ = IsTerminal(update.run().state());
    if (writing_) {
      pending_ = update;
      has_pending_ = true;
      return;
    }
    current_ = update;
    writing_ = true;
    StartWrite(&current_);
  }

  void RequestFinish(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (finish_requested_) {
        return;
      }
      finish_requested_ = true;
      final_status_ = status;
      if (writing_) {
        return;
      }
    }
    Finish(status);
  }

  void OnWriteDone(bool ok) override {
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        if (!finish_requested_) {
          finish_requested_ = true;
          final_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "watcher went away");
        }
      } else if (has_pending_ && !finish_requested_) {
        current_.Swap(&pending_);
        has_pending_ = false;
        writing_ = true;
        StartWrite(&current_);
        return;
      } else if (terminal_queued_ && !finish_requested_) {
        finish_requested_ = true;
        final_status_ = grpc::Status::OK;
      } else if (!finish_requested_) {
        return;
      }
      status = final_status_;
    }
    Finish(status);
  }

  void OnCancel() override { RequestFinish(grpc::Status::CANCELLED); }

  void OnDone() override {
    link_->Detach();
    service_->RemoveWatcher(run_id_, link_.get());
    delete this;
  }

 private:
  OrchestratorServiceImpl* const service_;
  const std::string run_id_;
  const std::shared_ptr<WatchLink> link_;
  absl::Mutex mu_;
  v1::RunUpdate current_ ABSL_GUARDED_BY(mu_);
  v1::RunUpdate pending_ ABSL_GUARDED_BY(mu_);
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool terminal_queued_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

void AttachLink::Send(const v1::OrchestratorMessage& message) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) {
    reactor_->Enqueue(message);
  }
}

void AttachLink::Close(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) {
    reactor_->RequestFinish(status);
  }
}

void WatchLink::Push(const v1::RunUpdate& update) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) {
    reactor_->Push(update);
  }
}

void WatchLink::Close(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) {
    reactor_->RequestFinish(status);
  }
}

// ---- Config and recovery ----

absl::Status Validate(const OrchestratorConfig& config) {
  if (config.grpc_address.empty()) {
    return absl::InvalidArgumentError("--grpc_address: required");
  }
  if (config.db_path.empty()) {
    return absl::InvalidArgumentError("--db_path: required");
  }
  if (config.heartbeat_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--heartbeat_timeout_seconds: must be > 0, got ",
                                                   Seconds(config.heartbeat_timeout)));
  }
  if (config.heartbeat_interval <= absl::ZeroDuration() ||
      config.heartbeat_interval >= config.heartbeat_timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "heartbeat interval must be > 0 and below the heartbeat timeout (",
        Seconds(config.heartbeat_timeout), "), got ", Seconds(config.heartbeat_interval)));
  }
  if (config.stop_grace < absl::ZeroDuration() || config.watch_interval <= absl::ZeroDuration() ||
      config.tick <= absl::ZeroDuration() || config.collector_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timer settings must be positive");
  }
  return absl::OkStatus();
}

bool RecoverRun(v1::Run* run, const google::protobuf::Timestamp& now) {
  if (IsTerminal(run->state())) {
    return false;
  }
  for (v1::Shard& shard : *run->mutable_shards()) {
    if (!IsTerminal(shard.state())) {
      shard.set_state(v1::SHARD_LOST);
      shard.set_error("orchestrator restarted while the shard was running");
    }
  }
  SumProgress(run);
  FinishRun(run, v1::FAILED, now, "orchestrator restarted while the run was in progress");
  return true;
}

// ---- Service ----

OrchestratorServiceImpl::OrchestratorServiceImpl(
    const OrchestratorConfig& config, RunWriter* writer, std::vector<v1::Run> stored_runs,
    std::unique_ptr<v1::Collector::StubInterface> collector)
    : config_(config),
      host_id_(HostIdentity()),
      writer_(writer),
      collector_(std::move(collector)) {
  absl::MutexLock lock(&mu_);
  rng_.seed(std::random_device{}());
  for (v1::Run& run : stored_runs) {
    const std::string id = run.id();
    if (!IsTerminal(run.state())) {
      active_runs_.insert(id);
    }
    runs_[id].run = std::move(run);
  }
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
    for (auto& [id, worker] : workers_) {
      if (worker.link != nullptr) {
        worker.link->Close(kShuttingDown);
      }
    }
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
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stats_calls_ == 0; };
  mu_.AwaitWithTimeout(absl::Condition(&idle), config_.collector_deadline + absl::Seconds(1));
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::NewUnaryReactor() {
  return new CountedUnaryReactor(this);
}

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

void OrchestratorServiceImpl::TickerLoop() {
  while (!stop_ticker_.WaitForNotificationWithTimeout(config_.tick)) {
    Tick(absl::Now());
  }
}

std::string OrchestratorServiceImpl::NewRunId() {
  for (;;) {
    std::string id = absl::StrFormat("run-%012x", rng_() & 0xffffffffffffULL);
    if (!runs_.contains(id) && !starting_.contains(id)) {
      return id;
    }
  }
}

bool OrchestratorServiceImpl::WorkerBusy(const std::string& worker_id) const {
  for (const auto& [run_id, starting] : starting_) {
    for (const v1::Shard& shard : starting.run.shards()) {
      if (shard.worker_id() == worker_id) {
        return true;
      }
    }
  }
  return !ActiveRunsOf(worker_id).empty();
}

std::vector<std::string> OrchestratorServiceImpl::ActiveRunsOf(
    const std::string& worker_id) const {
  std::vector<std::string> out;
  for (const std::string& run_id : active_runs_) {
    const v1::Run& run = runs_.at(run_id).run;
    for (const v1::Shard& shard : run.shards()) {
      if (shard.worker_id() == worker_id && !IsTerminal(shard.state())) {
        out.push_back(run_id);
        break;
      }
    }
  }
  return out;
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::StartRun(grpc::CallbackServerContext* ctx,
                                                            const v1::StartRunRequest* request,
                                                            v1::Run* reply) {
  grpc::ServerUnaryReactor* reactor = NewUnaryReactor();
  if (absl::Status s = validation::ValidateRunSpec(request->spec()); !s.ok()) {
    LLMLOAD_LOG(kInfo, "Rejected a run spec.").Kv("error", std::string(s.message()));
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  absl::ReleasableMutexLock lock(&mu_);
  if (stopping_) {
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  absl::StatusOr<StartingRun> starting = PlanRunLocked(request->spec());
  if (!starting.ok()) {
    reactor->Finish(ToGrpcStatus(starting.status()));
    return reactor;
  }
  // Store first, dispatch after: no worker may start a run the orchestrator
  // could not keep. The workers stay reserved meanwhile.
  const v1::Run pending = starting->run;
  const std::string id = pending.id();
  starting_.emplace(id, *std::move(starting));
  lock.Release();  // the writer may run the callback inline
  writer_->Enqueue(pending, [this, id, reactor, reply](absl::Status stored) {
    OnRunStored(id, stored, reactor, reply);
  });
  return reactor;
}

absl::StatusOr<OrchestratorServiceImpl::StartingRun> OrchestratorServiceImpl::PlanRunLocked(
    const v1::RunSpec& request_spec) {
  std::vector<planning::WorkerCapacity> idle;
  int attached = 0;
  for (const auto& [id, worker] : workers_) {
    if (worker.link == nullptr) {
      continue;
    }
    ++attached;
    if (!WorkerBusy(id)) {
      idle.push_back({id, worker.hello.capacity()});
    }
  }
  if (idle.empty()) {
    return absl::FailedPreconditionError(
        attached == 0
            ? std::string("no idle workers attached (no worker is attached)")
            : absl::StrCat("no idle workers attached (", attached,
                           " attached, all busy with other runs: ",
                           absl::StrJoin(active_runs_, ", "),
                           "); runs do not share workers: wait for a run to end, stop it, or "
                           "attach more workers"));
  }
  v1::RunSpec spec = request_spec;
  validation::ApplyDefaults(&spec);
  absl::StatusOr<std::vector<planning::ShardPlan>> plan = planning::PlanForSpec(spec, idle);
  if (!plan.ok()) {
    return plan.status();
  }

  const google::protobuf::Timestamp now = NowTimestamp();
  const std::string id = NewRunId();
  StartingRun starting;
  starting.run = NewRun(id, spec, *plan, now);
  AddEvent(&starting.run, now, absl::StrCat("run created: ", DescribeLoad(spec)));
  for (const v1::Shard& shard : starting.run.shards()) {
    v1::ShardAssignment& assign = starting.assignments.emplace_back();
    assign.set_run_id(id);
    *assign.mutable_spec() = spec;
    assign.set_client_begin(shard.client_begin());
    assign.set_client_count(shard.client_count());
    assign.set_max_concurrent(shard.max_concurrent());
    assign.set_rate_per_second(shard.rate_per_second());
    for (const planning::ShardPlan& p : *plan) {
      if (p.worker_id == shard.worker_id()) {
        assign.set_rate_share(p.rate_share);
      }
    }
  }
  return starting;
}

void OrchestratorServiceImpl::OnRunStored(const std::string& run_id, const absl::Status& stored,
                                          grpc::ServerUnaryReactor* reactor, v1::Run* reply) {
  absl::MutexLock lock(&mu_);
  auto node = starting_.extract(run_id);
  if (node.empty()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL,
                                 absl::StrCat("internal error: run ", run_id, " is not starting")));
    return;
  }
  StartingRun& starting = node.mapped();
  if (!stored.ok()) {
    // Nothing was dispatched and the workers are free again: the run leaves
    // no trace, and the caller may simply try again.
    LLMLOAD_LOG(kError, "Run not started: it could not be stored.")
        .Kv("run_id", run_id)
        .Kv("error", std::string(stored.message()));
    reactor->Finish(grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("run not started: it could not be stored (", stored.message(),
                     "); no worker was given any of it")));
    return;
  }
  const google::protobuf::Timestamp now = NowTimestamp();
  RunEntry& entry = runs_[run_id];
  entry.run = std::move(starting.run);
  v1::Run& run = entry.run;
  if (stopping_) {
    // Stored but never dispatched: end it now rather than leave it to the
    // next start-up's recovery.
    for (v1::Shard& shard : *run.mutable_shards()) {
      shard.set_state(v1::SHARD_CANCELLED);
      shard.set_error("orchestrator shut down before the shard was dispatched");
    }
    FinishRun(&run, v1::FAILED, now, "orchestrator shut down before the run was dispatched");
    PersistRun(run);
    reactor->Finish(kShuttingDown);
    return;
  }
  active_runs_.insert(run_id);

  std::vector<std::string> described;
  std::vector<std::string> gone;
  for (int i = 0; i < run.shards_size(); ++i) {
    v1::Shard& shard = *run.mutable_shards(i);
    auto worker = workers_.find(shard.worker_id());
    if (worker == workers_.end() || worker->second.link == nullptr) {
      // Its stream ended while the run was being stored.
      shard.set_state(v1::SHARD_LOST);
      shard.set_error("worker detached before its shard was dispatched");
      gone.push_back(shard.worker_id());
      continue;
    }
    v1::OrchestratorMessage message;
    *message.mutable_assign() = std::move(starting.assignments[static_cast<size_t>(i)]);
    worker->second.link->Send(message);
    described.push_back(DescribeShard(shard));
  }
  run.set_state(v1::RUNNING);
  *run.mutable_started_at() = now;
  if (!described.empty()) {
    AddEvent(&run, now,
             absl::StrCat("run started on ", described.size(),
                          described.size() == 1 ? " worker: " : " workers: ",
                          absl::StrJoin(described, "; ")));
  }
  std::string failure;
  if (!gone.empty()) {
    failure = absl::StrCat("worker ", absl::StrJoin(gone, ", "),
                           " detached before its shard was dispatched");
    AddEvent(&run, now, failure);
  }
  LLMLOAD_LOG(kInfo, "Run started.")
      .Kv("run_id", run_id)
      .Kv("name", run.spec().name())
      .Kv("workers", static_cast<int64_t>(described.size()))
      .Kv("load", DescribeLoad(run.spec()));
  entry.rate_at = absl::Now();
  entry.next_poll = absl::Now() + absl::Seconds(1);
  RunChanged(entry, failure);  // persists the started run, notifies watchers
  *reply = entry.run;
  reactor->Finish(grpc::Status::OK);
}

void OrchestratorServiceImpl::PersistRun(const v1::Run& run) {
  writer_->Enqueue(run, [this, id = run.id()](absl::Status stored) {
    if (!stored.ok()) {
      absl::MutexLock lock(&store_failures_mu_);
      store_failures_.emplace_back(id, std::string(stored.message()));
    }
  });
}

void OrchestratorServiceImpl::RecordStoreFailures() {
  std::vector<std::pair<std::string, std::string>> failures;
  {
    absl::MutexLock lock(&store_failures_mu_);
    failures.swap(store_failures_);
  }
  for (const auto& [run_id, error] : failures) {
    auto it = runs_.find(run_id);
    if (it == runs_.end() || it->second.store_failure_recorded) {
      continue;
    }
    // The run goes on (its workers are busy with it either way); the next
    // change writes it again. Until one succeeds, a restart would show an
    // older state of it.
    RunEntry& entry = it->second;
    entry.store_failure_recorded = true;
    AddEvent(&entry.run, NowTimestamp(),
             absl::StrCat("could not store the run (", error,
                          "); an orchestrator restart would show an older state of it"));
    NotifyWatchers(entry, absl::Now());
  }
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::GetRun(grpc::CallbackServerContext* ctx,
                                                          const v1::GetRunRequest* request,
                                                          v1::Run* reply) {
  grpc::ServerUnaryReactor* reactor = NewUnaryReactor();
  {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(request->id());
    if (it == runs_.end()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                   absl::StrCat("run \"", request->id(), "\" not found")));
      return reactor;
    }
    *reply = it->second.run;
  }
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
  if (request->limit() < 0) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 absl::StrCat("limit: must be >= 0 (0: all), got ",
                                              request->limit())));
    return reactor;
  }
  absl::MutexLock lock(&mu_);
  std::vector<const v1::Run*> runs;
  runs.reserve(runs_.size());
  for (const auto& [id, entry] : runs_) {
    runs.push_back(&entry.run);
  }
  std::sort(runs.begin(), runs.end(), [](const v1::Run* a, const v1::Run* b) {
    const auto& ta = a->created_at();
    const auto& tb = b->created_at();
    if (ta.seconds() != tb.seconds()) {
      return ta.seconds() > tb.seconds();
    }
    if (ta.nanos() != tb.nanos()) {
      return ta.nanos() > tb.nanos();
    }
    return a->id() > b->id();
  });
  if (request->limit() > 0 && runs.size() > static_cast<size_t>(request->limit())) {
    runs.resize(request->limit());
  }
  for (const v1::Run* run : runs) {
    v1::Run* out = reply->add_runs();
    *out = *run;
    out->clear_stats();
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::StopRun(grpc::CallbackServerContext* ctx,
                                                           const v1::StopRunRequest* request,
                                                           v1::Run* reply) {
  grpc::ServerUnaryReactor* reactor = NewUnaryReactor();
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(request->id());
  if (it == runs_.end()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 absl::StrCat("run \"", request->id(), "\" not found")));
    return reactor;
  }
  RunEntry& entry = it->second;
  if (IsTerminal(entry.run.state())) {
    reactor->Finish(grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("run ", request->id(), " is already ", v1::RunState_Name(entry.run.state()))));
    return reactor;
  }
  if (!entry.stop_requested) {
    entry.stop_requested = true;
    entry.stop_deadline = absl::Now() + config_.stop_grace;
    int unfinished = 0;
    for (const v1::Shard& shard : entry.run.shards()) {
      unfinished += IsTerminal(shard.state()) ? 0 : 1;
    }
    AddEvent(&entry.run, NowTimestamp(),
             absl::StrCat("stop requested; waiting up to ", Seconds(config_.stop_grace), " for ",
                          unfinished, " shard(s) to confirm"));
    LLMLOAD_LOG(kInfo, "Stopping run.").Kv("run_id", request->id());
    SendStops(entry.run);
    RunChanged(entry, "");
  }
  *reply = entry.run;
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<v1::RunUpdate>* OrchestratorServiceImpl::WatchRun(
    grpc::CallbackServerContext* ctx, const v1::WatchRunRequest* request) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return new FinishedReactor<grpc::ServerWriteReactor<v1::RunUpdate>>(kShuttingDown);
  }
  auto it = runs_.find(request->id());
  if (it == runs_.end()) {
    return new FinishedReactor<grpc::ServerWriteReactor<v1::RunUpdate>>(
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("run \"", request->id(), "\" not found")));
  }
  auto* reactor = new WatchReactor(this, request->id());
  reactor->Push(MakeUpdate(it->second, absl::Now()));
  if (!IsTerminal(it->second.run.state())) {
    watchers_[request->id()].push_back({reactor->link(), absl::Now()});
  }
  return reactor;
}

void OrchestratorServiceImpl::RemoveWatcher(const std::string& run_id, const WatchLink* link) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(run_id);
  if (it == watchers_.end()) {
    return;
  }
  std::erase_if(it->second, [link](const Watcher& w) { return w.link.get() == link; });
  if (it->second.empty()) {
    watchers_.erase(it);
  }
}

void OrchestratorServiceImpl::NotifyWatchers(const RunEntry& entry, absl::Time now) {
  const v1::Run& run = entry.run;
  auto it = watchers_.find(run.id());
  if (it == watchers_.end()) {
    return;
  }
  const v1::RunUpdate update = MakeUpdate(entry, now);
  for (Watcher& w : it->second) {
    w.link->Push(update);
    w.last_push = now;
  }
  if (IsTerminal(run.state())) {
    watchers_.erase(it);  // each finishes after writing the terminal run
  }
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::ListWorkers(
    grpc::CallbackServerContext* ctx, const v1::ListWorkersRequest* request,
    v1::ListWorkersResponse* reply) {
  grpc::ServerUnaryReactor* reactor = NewUnaryReactor();
  absl::MutexLock lock(&mu_);
  for (const auto& [id, worker] : workers_) {
    if (worker.link == nullptr) {
      continue;
    }
    v1::Worker* out = reply->add_workers();
    out->set_id(id);
    out->set_capacity(worker.hello.capacity());
    out->set_threads(worker.hello.threads());
    *out->mutable_attached_at() = worker.attached_at;
    *out->mutable_last_heartbeat() = worker.last_heartbeat;
    out->set_active_sessions(worker.heartbeat.active_sessions());
    out->set_cpu_percent(worker.heartbeat.cpu_percent());
    out->set_loop_lag_ms(worker.heartbeat.loop_lag_ms());
    for (const std::string& run_id : ActiveRunsOf(id)) {
      out->add_run_ids(run_id);
    }
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<v1::WorkerMessage, v1::OrchestratorMessage>*
OrchestratorServiceImpl::Attach(grpc::CallbackServerContext* ctx) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return new FinishedReactor<
          grpc::ServerBidiReactor<v1::WorkerMessage, v1::OrchestratorMessage>>(kShuttingDown);
    }
  }
  return new AttachReactor(this);
}

absl::Status OrchestratorServiceImpl::OnWorkerMessage(const std::shared_ptr<AttachLink>& link,
                                                      const v1::WorkerMessage& message) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::UnavailableError("orchestrator is shutting down");
  }
  const absl::Time now = absl::Now();
  const google::protobuf::Timestamp now_ts = NowTimestamp();

  if (link->worker_id.empty()) {
    if (!message.has_hello()) {
      return absl::FailedPreconditionError("the first message on Attach must be hello");
    }
    const v1::WorkerHello& hello = message.hello();
    if (!ValidWorkerId(hello.worker_id())) {
      return absl::InvalidArgumentError(
          "hello.worker_id: required, at most 128 printable characters without spaces");
    }
    if (hello.capacity() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("hello.capacity: must be > 0, got ", hello.capacity()));
    }
    auto [it, inserted] = workers_.try_emplace(hello.worker_id());
    WorkerEntry& worker = it->second;
    if (!inserted && worker.link != nullptr && worker.link != link) {
      worker.link->Close(grpc::Status(
          grpc::StatusCode::ABORTED,
          absl::StrCat("replaced by a newer Attach stream of worker ", hello.worker_id())));
    }
    worker.hello = hello;
    worker.link = link;
    worker.last_seen = now;
    worker.last_heartbeat = now_ts;
    if (inserted) {
      worker.attached_at = now_ts;
    }
    link->worker_id = hello.worker_id();

    v1::OrchestratorMessage accepted;
    accepted.mutable_accepted()->set_worker_id(hello.worker_id());
    accepted.mutable_accepted()->set_heartbeat_interval_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(config_.heartbeat_interval)));
    link->Send(accepted);

    const std::vector<std::string> runs = ActiveRunsOf(hello.worker_id());
    LLMLOAD_LOG(kInfo, inserted ? "Worker attached." : "Worker re-attached.")
        .Kv("worker_id", hello.worker_id())
        .Kv("capacity", hello.capacity())
        .Kv("threads", hello.threads())
        .Kv("version", hello.version())
        .Kv("active_runs", static_cast<int64_t>(runs.size()));
    // A known worker is back, whether its old stream had already ended or
    // is only now being replaced (the new hello can overtake the old
    // stream's end): its shards continue either way.
    if (!inserted) {
      for (const std::string& run_id : runs) {
        RunEntry& entry = runs_.at(run_id);
        AddEvent(&entry.run, now_ts,
                 absl::StrCat("worker ", hello.worker_id(), " re-attached; its shard continues"));
        RunChanged(entry, "");
      }
    }
    return absl::OkStatus();
  }

  auto it = workers_.find(link->worker_id);
  if (it == workers_.end() || it->second.link != link) {
    return absl::AbortedError(
        "this Attach stream was replaced or its worker declared lost; attach again");
  }
  WorkerEntry& worker = it->second;
  worker.last_seen = now;
  switch (message.msg_case()) {
    case v1::WorkerMessage::kHeartbeat:
      worker.heartbeat = message.heartbeat();
      worker.last_heartbeat = now_ts;
      for (const std::string& run_id : ActiveRunsOf(link->worker_id)) {
        RunEntry& entry = runs_.at(run_id);
        entry.max_loop_lag_ms = std::max(entry.max_loop_lag_ms, message.heartbeat().loop_lag_ms());
      }
      break;
    case v1::WorkerMessage::kShardUpdate:
      HandleShardUpdate(link->worker_id, *link, message.shard_update());
      break;
    case v1::WorkerMessage::kHello:
      LLMLOAD_LOG(kDebug, "Ignoring a repeated hello.").Kv("worker_id", link->worker_id);
      break;
    case v1::WorkerMessage::MSG_NOT_SET:
      break;
  }
  return absl::OkStatus();
}

void OrchestratorServiceImpl::HandleShardUpdate(const std::string& worker_id, AttachLink& link,
                                                const v1::ShardUpdate& update) {
  auto it = runs_.find(update.run_id());
  v1::Shard* shard = nullptr;
  if (it != runs_.end() && !IsTerminal(it->second.run.state())) {
    for (v1::Shard& s : *it->second.run.mutable_shards()) {
      if (s.worker_id() == worker_id) {
        shard = &s;
        break;
      }
    }
  }
  if (shard == nullptr) {
    // A shard we do not track (the run ended, or an earlier orchestrator
    // started it): tell the worker to stop it, once per stream.
    if (!IsTerminal(update.state()) && link.stopped_runs.insert(update.run_id()).second) {
      v1::OrchestratorMessage stop;
      stop.mutable_stop()->set_run_id(update.run_id());
      link.Send(stop);
      LLMLOAD_LOG(kInfo, "Stopping a shard of a run that is not active on this worker.")
          .Kv("worker_id", worker_id)
          .Kv("run_id", update.run_id());
    }
    return;
  }
  if (IsTerminal(shard->state())) {
    return;  // a late update after the shard ended
  }
  RunEntry& entry = it->second;
  v1::Run& run = entry.run;
  if (update.has_progress()) {
    *shard->mutable_progress() = update.progress();
    if (shard->progress().cycles_total() == 0) {
      shard->mutable_progress()->set_cycles_total(ShardCycles(run.spec(), *shard));
    }
    // Batches the collector rejected are missing from the statistics: said
    // when the first arrive and, if more came since, when the shard ends
    // (not on every progress update).
    const v1::ShardProgress& p = shard->progress();
    int64_t& said = entry.rejections_said[worker_id];
    if (p.batches_rejected() > said && (said == 0 || IsTerminal(update.state()))) {
      said = p.batches_rejected();
      AddEvent(&run, NowTimestamp(),
               absl::StrCat("collector rejected ", p.batches_rejected(),
                            p.batches_rejected() == 1 ? " batch (" : " batches (",
                            p.requests_rejected(), " requests, ", p.samples_rejected(),
                            " latency samples) from worker ", worker_id, ": ",
                            p.rejection_reason()));
      LLMLOAD_LOG(kWarn, "The collector rejected sample batches of a run.")
          .Kv("run_id", run.id())
          .Kv("worker_id", worker_id)
          .Kv("batches", p.batches_rejected())
          .Kv("reason", p.rejection_reason());
    }
  }
  const v1::ShardState before = shard->state();
  switch (update.state()) {
    case v1::SHARD_RUNNING:
    case v1::SHARD_DONE:
    case v1::SHARD_FAILED:
    case v1::SHARD_CANCELLED:
      shard->set_state(update.state());
      break;
    default:
      break;  // progress only
  }
  if (shard->state() == before) {
    RunChanged(entry, "");
    return;
  }
  const google::protobuf::Timestamp now = NowTimestamp();
  const std::string range = absl::StrCat("clients ", shard->client_begin(), "-",
                                         shard->client_begin() + shard->client_count() - 1);
  std::string failure;
  switch (shard->state()) {
    case v1::SHARD_RUNNING:
      AddEvent(&run, now, absl::StrCat("worker ", worker_id, " running ", range));
      break;
    case v1::SHARD_DONE:
      AddEvent(&run, now,
               absl::StrCat("worker ", worker_id, " finished ", range, " (",
                            shard->progress().cycles_done(), " cycles)"));
      break;
    case v1::SHARD_FAILED:
      shard->set_error(update.error().empty() ? "worker reported failure without a reason"
                                              : update.error());
      failure = absl::StrCat("worker ", worker_id, " failed on ", range, ": ", shard->error());
      AddEvent(&run, now, failure);
      break;
    case v1::SHARD_CANCELLED:
      shard->set_error(update.error());
      AddEvent(&run, now, absl::StrCat("worker ", worker_id, " cancelled ", range));
      if (!entry.stop_requested) {
        failure = absl::StrCat("worker ", worker_id, " cancelled ", range,
                               " without a stop request",
                               update.error().empty() ? "" : ": " + update.error());
      }
      break;
    default:
      break;
  }
  LLMLOAD_LOG(kInfo, "Shard state changed.")
      .Kv("run_id", run.id())
      .Kv("worker_id", worker_id)
      .Kv("state", v1::ShardState_Name(shard->state()));
  RunChanged(entry, failure);
}

void OrchestratorServiceImpl::RunChanged(RunEntry& entry, const std::string& failure) {
  v1::Run& run = entry.run;
  SumProgress(&run);
  v1::RunState next = DecideState(run, entry.stop_requested);
  if (next == v1::CANCELLED && !entry.abort_reason.empty()) {
    next = v1::FAILED;  // stopped by a failing threshold, not by a user
  }
  if (IsTerminal(next) && !IsTerminal(run.state()) && !entry.finalizing) {
    std::string error;
    if (next == v1::FAILED) {
      error = !entry.abort_reason.empty() ? entry.abort_reason : failure;
      for (const v1::Shard& shard : run.shards()) {
        if (error.empty() && !shard.error().empty()) {
          error = absl::StrCat("worker ", shard.worker_id(), ": ", shard.error());
        }
      }
      // The other shards cannot make the run succeed any more.
      SendStops(run);
      for (v1::Shard& shard : *run.mutable_shards()) {
        if (!IsTerminal(shard.state())) {
          shard.set_state(v1::SHARD_CANCELLED);
          shard.set_error("stopped because the run failed");
        }
      }
    }
    if (collector_ != nullptr && collector_->async() != nullptr && !stopping_) {
      // Decide the verdict on the final statistics first.
      entry.finalizing = true;
      entry.final_state = next;
      entry.final_error = error;
      RequestStats(entry, /*final=*/true);
    } else {
      FinalizeRun(entry, next, error, nullptr);
    }
  }
  PersistRun(run);
  NotifyWatchers(entry, absl::Now());
}

void OrchestratorServiceImpl::FinalizeRun(RunEntry& entry, v1::RunState state,
                                          const std::string& error, const v1::RunStats* stats) {
  v1::Run& run = entry.run;
  const google::protobuf::Timestamp now = NowTimestamp();
  bool passed = true;
  run.clear_threshold_results();
  if (stats != nullptr) {
    for (v1::ThresholdResult& r : load::EvaluateAll(run.spec().thresholds(), *stats,
                                                    /*final_stats=*/true, &passed)) {
      *run.add_threshold_results() = std::move(r);
    }
  } else {
    for (const v1::Threshold& t : run.spec().thresholds()) {
      v1::ThresholdResult* r = run.add_threshold_results();
      *r->mutable_threshold() = t;
      r->set_passed(false);
      r->set_description(absl::StrCat(t.metric(), ": no statistics (collector unreachable)"));
      passed = false;
    }
  }
  if (!entry.abort_reason.empty() || state == v1::FAILED) {
    passed = false;  // a failed run never passes, thresholds or not
  }
  run.set_passed(passed);
  load::WarningInputs inputs;
  inputs.max_loop_lag_ms = entry.max_loop_lag_ms;
  inputs.e2e_over_time = entry.e2e_series;
  run.clear_warnings();
  for (std::string& w : load::WarningSigns(stats != nullptr ? *stats : v1::RunStats(), inputs)) {
    run.add_warnings(std::move(w));
  }
  if (const v1::ShardProgress& p = run.progress(); p.batches_rejected() > 0) {
    run.add_warnings(absl::StrCat("the collector rejected ", p.batches_rejected(),
                                  " sample batches (", p.requests_rejected(), " requests, ",
                                  p.samples_rejected(),
                                  " latency samples); the statistics do not include them (",
                                  p.rejection_reason(), ")"));
  }
  run.set_max_loop_lag_ms(entry.max_loop_lag_ms);
  std::vector<std::string> violated;
  for (const v1::ThresholdResult& r : run.threshold_results()) {
    if (!r.passed()) {
      violated.push_back(r.description());
    }
  }
  if (!violated.empty()) {
    AddEvent(&run, now, absl::StrCat("thresholds failed: ", absl::StrJoin(violated, "; ")));
  } else if (run.threshold_results_size() > 0) {
    AddEvent(&run, now, absl::StrCat("all ", run.threshold_results_size(), " thresholds passed"));
  }
  FinishRun(&run, state, now, error);
  active_runs_.erase(run.id());
  entry.finalizing = false;
  LogLine(state == v1::FAILED ? LogLevel::kWarn : LogLevel::kInfo, "Run finished.")
      .Kv("run_id", run.id())
      .Kv("state", v1::RunState_Name(state))
      .Kv("passed", passed ? "true" : "false")
      .Kv("cycles_done", run.progress().cycles_done())
      .Kv("error", run.error());
}

void OrchestratorServiceImpl::RequestStats(RunEntry& entry, bool final) {
  if (collector_ == nullptr || collector_->async() == nullptr) {
    return;
  }
  if (!final) {
    if (entry.poll_in_flight) {
      return;
    }
    entry.poll_in_flight = true;
  }
  struct StatsCall {
    grpc::ClientContext context;
    v1::GetRunStatsRequest request;
    v1::RunStats response;
  };
  auto* call = new StatsCall;
  call->request.set_run_id(entry.run.id());
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + config_.collector_deadline));
  ++stats_calls_;
  collector_->async()->GetRunStats(&call->context, &call->request, &call->response,
                                   [this, call, final](grpc::Status status) {
                                     OnStats(call->request.run_id(),
                                             status.ok() ? &call->response : nullptr, final);
                                     delete call;
                                   });
}

void OrchestratorServiceImpl::OnStats(const std::string& run_id, const v1::RunStats* stats,
                                      bool final) {
  absl::MutexLock lock(&mu_);
  --stats_calls_;
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    return;
  }
  RunEntry& entry = it->second;
  if (!final) {
    entry.poll_in_flight = false;
  }
  const bool has_data = stats != nullptr && (stats->batches() > 0 || stats->metrics_size() > 0);
  if (has_data) {
    entry.last_stats = *stats;
    if (const v1::MetricStats* e2e = load::FindMetric(*stats, "e2e"); e2e != nullptr) {
      if (entry.e2e_series.empty() || entry.e2e_series.back().first != e2e->count()) {
        entry.e2e_series.emplace_back(e2e->count(), e2e->mean_ms());
      }
      // Bounded: keep every other snapshot (cumulative ones stay exact).
      if (entry.e2e_series.size() > 4096) {
        load::CumulativeMeans halved;
        for (size_t i = 0; i < entry.e2e_series.size(); i += 2) {
          halved.push_back(entry.e2e_series[i]);
        }
        halved.push_back(entry.e2e_series.back());
        entry.e2e_series = std::move(halved);
      }
    }
  }
  if (final) {
    if (entry.finalizing && !IsTerminal(entry.run.state())) {
      if (stats == nullptr) {
        LLMLOAD_LOG(kWarn, "No final statistics from the collector; thresholds cannot pass.")
            .Kv("run_id", run_id);
      }
      FinalizeRun(entry, entry.final_state, entry.final_error, stats);
      PersistRun(entry.run);
      NotifyWatchers(entry, absl::Now());
    }
    return;
  }
  if (!has_data || stopping_ || entry.finalizing || IsTerminal(entry.run.state()) ||
      entry.stop_requested) {
    return;
  }
  for (const v1::Threshold& t : entry.run.spec().thresholds()) {
    if (!t.abort_on_fail()) {
      continue;
    }
    const v1::ThresholdResult r = load::Evaluate(t, *stats, /*final_stats=*/false);
    if (!r.passed()) {
      AbortRun(entry, absl::StrCat("threshold failed, run aborted: ", r.description()));
      return;
    }
  }
}

void OrchestratorServiceImpl::AbortRun(RunEntry& entry, const std::string& reason) {
  entry.abort_reason = reason;
  entry.stop_requested = true;
  entry.stop_deadline = absl::Now() + config_.stop_grace;
  AddEvent(&entry.run, NowTimestamp(), reason);
  LLMLOAD_LOG(kWarn, "Aborting run: a threshold failed.")
      .Kv("run_id", entry.run.id())
      .Kv("reason", reason);
  SendStops(entry.run);
  RunChanged(entry, reason);
}

void OrchestratorServiceImpl::SampleRates(RunEntry& entry, absl::Time now) {
  const v1::ShardProgress& p = entry.run.progress();
  const int64_t requests = p.requests_ok() + p.requests_failed();
  const double dt = absl::ToDoubleSeconds(now - entry.rate_at);
  if (dt < 1.0) {
    return;
  }
  entry.requests_per_sec = static_cast<double>(requests - entry.rate_requests) / dt;
  entry.tokens_per_sec = static_cast<double>(p.tokens() - entry.rate_tokens) / dt;
  entry.rate_requests = requests;
  entry.rate_tokens = p.tokens();
  entry.rate_at = now;
}

v1::RunUpdate OrchestratorServiceImpl::MakeUpdate(const RunEntry& entry, absl::Time now) const {
  v1::RunUpdate update;
  *update.mutable_run() = entry.run;
  const v1::Run& run = entry.run;
  v1::LiveStats* live = update.mutable_live();
  if (run.has_started_at()) {
    const absl::Time started =
        absl::FromUnixSeconds(run.started_at().seconds()) + absl::Nanoseconds(run.started_at().nanos());
    absl::Time until = now;
    if (run.has_finished_at()) {
      until = absl::FromUnixSeconds(run.finished_at().seconds()) +
              absl::Nanoseconds(run.finished_at().nanos());
    }
    const double elapsed = std::max(0.0, absl::ToDoubleSeconds(until - started));
    live->set_elapsed_seconds(elapsed);
    const double length = LoadSeconds(run.spec());
    if (length > 0) {
      live->set_remaining_seconds(std::max(0.0, length - elapsed));
    }
  }
  const v1::ShardProgress& p = run.progress();
  live->set_cycles_done(p.cycles_done());
  live->set_cycles_total(p.cycles_total());
  live->set_active_sessions(p.active_sessions());
  live->set_requests_ok(p.requests_ok());
  live->set_requests_failed(p.requests_failed());
  live->set_tokens(p.tokens());
  live->set_requests_per_sec(IsTerminal(run.state()) ? 0 : entry.requests_per_sec);
  live->set_tokens_per_sec(IsTerminal(run.state()) ? 0 : entry.tokens_per_sec);
  if (const v1::MetricStats* m = load::FindMetric(entry.last_stats, "ttft"); m != nullptr) {
    live->set_ttft_p50_ms(m->p50_ms());
    live->set_ttft_p99_ms(m->p99_ms());
  }
  if (const v1::MetricStats* m = load::FindMetric(entry.last_stats, "itl"); m != nullptr) {
    live->set_itl_p50_ms(m->p50_ms());
    live->set_itl_p99_ms(m->p99_ms());
  }
  return update;
}

void OrchestratorServiceImpl::SendStops(const v1::Run& run) {
  for (const v1::Shard& shard : run.shards()) {
    if (IsTerminal(shard.state())) {
      continue;
    }
    auto it = workers_.find(shard.worker_id());
    if (it != workers_.end() && it->second.link != nullptr) {
      v1::OrchestratorMessage stop;
      stop.mutable_stop()->set_run_id(run.id());
      it->second.link->Send(stop);
    }
  }
}

void OrchestratorServiceImpl::OnWorkerStreamClosed(const std::shared_ptr<AttachLink>& link) {
  absl::MutexLock lock(&mu_);
  if (link->worker_id.empty()) {
    return;
  }
  auto it = workers_.find(link->worker_id);
  if (it == workers_.end() || it->second.link != link) {
    return;  // replaced by a newer stream, or already lost
  }
  const std::string worker_id = link->worker_id;
  const std::vector<std::string> runs = ActiveRunsOf(worker_id);
  if (runs.empty()) {
    workers_.erase(it);
    LLMLOAD_LOG(kInfo, "Worker detached.").Kv("worker_id", worker_id);
    return;
  }
  it->second.link = nullptr;
  it->second.detached_at = absl::Now();
  if (stopping_) {
    return;
  }
  const std::string process = ProcessClause(it->second.hello, host_id_);
  LLMLOAD_LOG(kWarn, "Worker stream closed during a run; waiting for it to re-attach.")
      .Kv("worker_id", worker_id)
      .Kv("process", process.empty() ? "unknown" : process.substr(2))
      .Kv("timeout", Seconds(config_.heartbeat_timeout));
  const google::protobuf::Timestamp now = NowTimestamp();
  for (const std::string& run_id : runs) {
    RunEntry& entry = runs_.at(run_id);
    AddEvent(&entry.run, now,
             absl::StrCat("worker ", worker_id, " stream closed", process,
                          "; lost unless it re-attaches within ",
                          Seconds(config_.heartbeat_timeout)));
    RunChanged(entry, "");
  }
}

void OrchestratorServiceImpl::MarkWorkerLost(const std::string& worker_id,
                                             const std::string& reason) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return;
  }
  if (it->second.link != nullptr) {
    it->second.link->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                        absl::StrCat("worker declared lost: ", reason)));
  }
  workers_.erase(it);
  LLMLOAD_LOG(kWarn, "Worker lost.").Kv("worker_id", worker_id).Kv("reason", reason);

  const google::protobuf::Timestamp now = NowTimestamp();
  for (const std::string& run_id : ActiveRunsOf(worker_id)) {
    RunEntry& entry = runs_.at(run_id);
    std::string failure;
    for (v1::Shard& shard : *entry.run.mutable_shards()) {
      if (shard.worker_id() != worker_id || IsTerminal(shard.state())) {
        continue;
      }
      shard.set_state(v1::SHARD_LOST);
      shard.set_error(absl::StrCat("worker lost: ", reason));
      failure = absl::StrCat("worker ", worker_id, " lost (", reason, "): ", shard.client_count(),
                             " clients (ids ", shard.client_begin(), "-",
                             shard.client_begin() + shard.client_count() - 1,
                             ") did not finish, ", shard.progress().cycles_done(), "/",
                             ShardCycles(entry.run.spec(), shard), " cycles done");
      AddEvent(&entry.run, now, failure);
    }
    RunChanged(entry, failure);
  }
}

void OrchestratorServiceImpl::Tick(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return;
  }
  RecordStoreFailures();

  // Liveness.
  std::vector<std::pair<std::string, std::string>> lost;
  for (const auto& [id, worker] : workers_) {
    if (worker.link != nullptr && now - worker.last_seen > config_.heartbeat_timeout) {
      lost.emplace_back(id, absl::StrCat("no heartbeat for ", Seconds(config_.heartbeat_timeout),
                                         ProcessClause(worker.hello, host_id_)));
    } else if (worker.link == nullptr && now - worker.detached_at > config_.heartbeat_timeout) {
      lost.emplace_back(id, absl::StrCat("stream closed and not re-attached within ",
                                         Seconds(config_.heartbeat_timeout),
                                         ProcessClause(worker.hello, host_id_)));
    }
  }
  for (const auto& [id, reason] : lost) {
    MarkWorkerLost(id, reason);
  }

  // Stop grace periods.
  const std::vector<std::string> active(active_runs_.begin(), active_runs_.end());
  for (const std::string& run_id : active) {
    RunEntry& entry = runs_.at(run_id);
    if (!entry.stop_requested || now < entry.stop_deadline || entry.finalizing) {
      continue;
    }
    std::vector<std::string> stragglers;
    for (v1::Shard& shard : *entry.run.mutable_shards()) {
      if (!IsTerminal(shard.state())) {
        shard.set_state(v1::SHARD_CANCELLED);
        shard.set_error(absl::StrCat("did not confirm the stop within ",
                                     Seconds(config_.stop_grace)));
        stragglers.push_back(shard.worker_id());
      }
    }
    if (!stragglers.empty()) {
      AddEvent(&entry.run, NowTimestamp(),
               absl::StrCat("stop grace of ", Seconds(config_.stop_grace),
                            " expired; marked cancelled: ", absl::StrJoin(stragglers, ", ")));
    }
    RunChanged(entry, "");
  }

  // Live statistics: rates from progress, the collector polled once per
  // second (percentiles, abort on a failing threshold, latency trend).
  for (const std::string& run_id : active_runs_) {
    RunEntry& entry = runs_.at(run_id);
    if (entry.run.state() != v1::RUNNING || entry.finalizing) {
      continue;
    }
    SampleRates(entry, now);
    if (now >= entry.next_poll) {
      entry.next_poll = now + absl::Seconds(1);
      RequestStats(entry, /*final=*/false);
    }
  }

  // Periodic WatchRun updates.
  for (auto& [run_id, list] : watchers_) {
    const RunEntry& entry = runs_.at(run_id);
    std::optional<v1::RunUpdate> update;
    for (Watcher& w : list) {
      if (now - w.last_push >= config_.watch_interval) {
        if (!update.has_value()) {
          update = MakeUpdate(entry, now);
        }
        w.link->Push(*update);
        w.last_push = now;
      }
    }
  }
}

}  // namespace llmload::orchestrator
