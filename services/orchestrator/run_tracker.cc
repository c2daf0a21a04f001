#include "services/orchestrator/run_tracker.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lib/metrics/metrics.h"
#include "lib/planning/planning.h"
#include "lib/validation/validation.h"
#include "services/orchestrator/run_state.h"
#include "services/orchestrator/run_tracker_util.h"

namespace llmload::orchestrator {
namespace {

using tracker_util::ClientsOf;
using tracker_util::DescribeSpans;
using tracker_util::Secs;

bool ValidWorkerId(const std::string& id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f;
  });
}

}  // namespace

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t ns = absl::ToUnixNanos(t);
  ts.set_seconds(ns / 1000000000);
  ts.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return ts;
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

RunTracker::RunTracker(OrchestratorConfig config, ProcessProbe probe, bool collector)
    : config_(std::move(config)), probe_(std::move(probe)), collector_(collector) {
  rng_.seed(config_.seed != 0 ? config_.seed : std::random_device{}());
}

void RunTracker::Log(Effects& fx, LogLevel level, std::string message,
                     std::vector<std::pair<std::string, std::string>> fields) {
  fx.push_back(LogEffect{level, std::move(message), std::move(fields)});
}

// ---- Recovery ----

void RunTracker::Recover(std::vector<v1::Run> runs, absl::Time now, Effects& fx) {
  const google::protobuf::Timestamp ts = ToTimestamp(now);
  for (v1::Run& stored : runs) {
    const std::string id = stored.id();
    RunRec& rec = runs_[id];
    rec.run = std::move(stored);
    if (IsTerminal(rec.run.state())) {
      continue;
    }
    v1::Run& run = rec.run;
    active_runs_.insert(id);
    if (!run.has_started_at()) {
      // Stored, and perhaps dispatched, before it was marked started.
      *run.mutable_started_at() = run.created_at();
    }
    run.set_state(v1::RUNNING);
    rec.started = FromTimestamp(run.started_at());
    rec.rate_at = now;
    rec.next_poll = now + absl::Seconds(1);
    uint64_t next_epoch = 0;
    for (const v1::Shard& shard : run.shards()) {
      next_epoch = std::max(next_epoch, shard.epoch());
    }
    int waiting = 0;
    for (v1::Shard& shard : *run.mutable_shards()) {
      if (shard.epoch() == 0) {
        shard.set_epoch(++next_epoch);  // stored before epochs existed
      }
      ShardRec& sr = rec.shards[shard.epoch()];
      sr.dispatched = true;  // perhaps: the worker ignores an assignment it knows
      sr.dispatched_at = now;
      for (int i = 0; i < run.losses_size(); ++i) {
        if (run.losses(i).epoch() == shard.epoch()) {
          sr.loss_index = i;
        }
      }
      if (!IsTerminal(shard.state())) {
        ++waiting;
        WorkerRec& w = workers_[shard.worker_id()];
        w.last_seen = now;
        w.grace_until = now + config_.recovery_grace;
        w.attached_at = ts;
      } else if (sr.loss_index >= 0 && !shard.settled()) {
        // Its seal (or the move of its work) was under way: do it again;
        // sealing is idempotent.
        sr.sealing = true;
        sr.ended_at = now;
        sr.seal_retry_at = now;
      }
    }
    AddEvent(&run, ts,
             absl::StrCat("orchestrator restarted; the run goes on: ", waiting,
                          waiting == 1 ? " shard waits" : " shards wait", " up to ",
                          Secs(config_.recovery_grace), " for its worker to re-attach"));
    Log(fx, LogLevel::kInfo, "Recovered a run in progress.",
        {{"run_id", id}, {"shards_waiting", absl::StrCat(waiting)}});
    SumProgress(&run);
    Write(rec, false, fx);
  }
}

// ---- Runs ----

std::string RunTracker::NewRunId() {
  for (;;) {
    std::string id = absl::StrFormat("run-%012x", rng_() & 0xffffffffffffULL);
    if (!runs_.contains(id)) {
      return id;
    }
  }
}

bool RunTracker::WorkerBusy(const std::string& worker_id, const std::string& except_run) const {
  for (const std::string& run_id : active_runs_) {
    if (run_id == except_run) {
      continue;
    }
    const RunRec& rec = runs_.at(run_id);
    for (const v1::Shard& shard : rec.run.shards()) {
      if (shard.worker_id() == worker_id && !IsTerminal(shard.state())) {
        return true;
      }
    }
  }
  return false;
}

std::vector<std::string> RunTracker::ActiveRunsOf(const std::string& worker_id) const {
  std::vector<std::string> out;
  for (const std::string& run_id : active_runs_) {
    const RunRec& rec = runs_.at(run_id);
    if (rec.starting) {
      continue;
    }
    for (const v1::Shard& shard : rec.run.shards()) {
      if (shard.worker_id() == worker_id && !IsTerminal(shard.state())) {
        out.push_back(run_id);
        break;
      }
    }
  }
  return out;
}

absl::StatusOr<v1::Run> RunTracker::PlanRun(const v1::RunSpec& request_spec, absl::Time now,
                                            Effects& fx) {
  if (absl::Status s = validation::ValidateRunSpec(request_spec); !s.ok()) {
    Log(fx, LogLevel::kInfo, "Rejected a run spec.", {{"error", std::string(s.message())}});
    return s;
  }
  if (absl::Status s = config_.allow_targets.CheckSpec(request_spec); !s.ok()) {
    Log(fx, LogLevel::kWarn, "Refused a run: its target is not allowed.",
        {{"error", std::string(s.message())}});
    return s;
  }
  if (absl::Status s = validation::CheckRunCaps(request_spec, config_.caps); !s.ok()) {
    Log(fx, LogLevel::kInfo, "Refused a run over the operator's caps.",
        {{"error", std::string(s.message())}});
    return s;
  }
  if (stopping_) {
    return absl::UnavailableError("orchestrator is shutting down");
  }
  std::vector<planning::WorkerCapacity> idle;
  int attached = 0;
  for (const auto& [id, worker] : workers_) {
    if (worker.stream == 0) {
      continue;
    }
    ++attached;
    if (!worker.leaving && !WorkerBusy(id, "")) {
      idle.push_back({id, worker.hello.capacity()});
    }
  }
  if (idle.empty()) {
    std::vector<std::string> busy;
    for (const std::string& run_id : active_runs_) {
      busy.push_back(run_id);
    }
    return absl::FailedPreconditionError(
        attached == 0
            ? std::string("no idle workers attached (no worker is attached)")
            : absl::StrCat("no idle workers attached (", attached,
                           " attached, all busy with other runs: ", absl::StrJoin(busy, ", "),
                           "); runs do not share workers: wait for a run to end, stop it, or "
                           "attach more workers"));
  }
  v1::RunSpec spec = request_spec;
  validation::ApplyDefaults(&spec);
  absl::StatusOr<std::vector<planning::ShardPlan>> plan = planning::PlanForSpec(spec, idle);
  if (!plan.ok()) {
    return plan.status();
  }
  const google::protobuf::Timestamp ts = ToTimestamp(now);
  const std::string id = NewRunId();
  RunRec& rec = runs_[id];
  rec.starting = true;
  rec.run = NewRun(id, spec, *plan, ts);
  uint64_t epoch = 0;
  for (int i = 0; i < rec.run.shards_size(); ++i) {
    v1::Shard& shard = *rec.run.mutable_shards(i);
    shard.set_epoch(++epoch);
    shard.set_rate_share((*plan)[static_cast<size_t>(i)].rate_share);
    shard.set_worker_incarnation(workers_.at(shard.worker_id()).hello.incarnation());
    rec.shards[shard.epoch()];
  }
  AddEvent(&rec.run, ts, absl::StrCat("run created: ", DescribeLoad(spec)));
  active_runs_.insert(id);
  return rec.run;
}

absl::StatusOr<v1::Run> RunTracker::OnStartStored(const std::string& run_id,
                                                  const absl::Status& stored, absl::Time now,
                                                  Effects& fx) {
  auto it = runs_.find(run_id);
  if (it == runs_.end() || !it->second.starting) {
    return absl::InternalError(absl::StrCat("internal error: run ", run_id, " is not starting"));
  }
  RunRec& rec = it->second;
  if (!stored.ok()) {
    // Nothing was dispatched and the workers are free again: the run leaves
    // no trace, and the caller may simply try again.
    Log(fx, LogLevel::kError, "Run not started: it could not be stored.",
        {{"run_id", run_id}, {"error", std::string(stored.message())}});
    active_runs_.erase(run_id);
    runs_.erase(it);
    return absl::UnavailableError(absl::StrCat("run not started: it could not be stored (",
                                               stored.message(),
                                               "); no worker was given any of it"));
  }
  rec.starting = false;
  const google::protobuf::Timestamp ts = ToTimestamp(now);
  v1::Run& run = rec.run;
  if (stopping_) {
    // Stored but never dispatched: end it now rather than leave it to the
    // next start-up.
    for (v1::Shard& shard : *run.mutable_shards()) {
      shard.set_state(v1::SHARD_CANCELLED);
      shard.set_error("orchestrator shut down before the shard was dispatched");
    }
    FinishRun(&run, v1::FAILED, ts, "orchestrator shut down before the run was dispatched");
    active_runs_.erase(run_id);
    Write(rec, false, fx);
    return absl::UnavailableError("orchestrator is shutting down");
  }
  std::vector<std::string> described;
  std::vector<std::string> gone;
  for (v1::Shard& shard : *run.mutable_shards()) {
    auto worker = workers_.find(shard.worker_id());
    if (worker == workers_.end() || worker->second.stream == 0) {
      gone.push_back(shard.worker_id());
      continue;
    }
    described.push_back(DescribeShard(shard));
  }
  run.set_state(v1::RUNNING);
  *run.mutable_started_at() = ts;
  rec.started = now;
  if (!described.empty()) {
    AddEvent(&run, ts,
             absl::StrCat("run started on ", described.size(),
                          described.size() == 1 ? " worker: " : " workers: ",
                          absl::StrJoin(described, "; ")));
  }
  Log(fx, LogLevel::kInfo, "Run started.",
      {{"run_id", run_id},
       {"name", run.spec().name()},
       {"workers", absl::StrCat(described.size())},
       {"load", DescribeLoad(run.spec())}});
  rec.rate_at = now;
  rec.next_poll = now + absl::Seconds(1);
  if (collector_ && run.spec().has_target_metrics()) {
    fx.push_back(ScrapeTargetEffect{run_id, run.spec().target_metrics(),
                                    config_.allow_targets.ToString()});
  }
  Dispatch(rec, now, fx);
  for (v1::Shard& shard : *run.mutable_shards()) {
    if (std::find(gone.begin(), gone.end(), shard.worker_id()) != gone.end() &&
        !IsTerminal(shard.state())) {
      // Its stream ended while the run was being stored.
      ShardEndedEarly(rec, shard, v1::SHARD_LOST,
                      "worker detached before its shard was dispatched", now, now, fx);
    }
  }
  RunChanged(rec, "", now, fx);
  return rec.run;
}

void RunTracker::OnRunWritten(const std::string& run_id, const absl::Status& stored,
                              absl::Time now, Effects& fx) {
  auto it = runs_.find(run_id);
  if (it == runs_.end() || IsTerminal(it->second.run.state())) {
    return;
  }
  if (!stored.ok()) {
    OnStoreFailed(run_id, std::string(stored.message()), now, fx);
  }
  // Dispatched either way: the run goes on; a restart would show an older
  // state of it (said on the run).
  Dispatch(it->second, now, fx);
}

void RunTracker::OnStoreFailed(const std::string& run_id, const std::string& error,
                               absl::Time now, Effects& fx) {
  auto it = runs_.find(run_id);
  if (it == runs_.end() || it->second.store_failure_recorded) {
    return;
  }
  RunRec& rec = it->second;
  rec.store_failure_recorded = true;
  AddEvent(&rec.run, ToTimestamp(now),
           absl::StrCat("could not store the run (", error,
                        "); an orchestrator restart would show an older state of it"));
  Push(rec, now, fx);
}

v1::ShardAssignment RunTracker::AssignmentFor(const v1::Run& run, const v1::Shard& shard) const {
  v1::ShardAssignment a;
  a.set_run_id(run.id());
  *a.mutable_spec() = run.spec();
  a.set_client_begin(shard.client_begin());
  a.set_client_count(shard.client_count());
  a.set_max_concurrent(shard.max_concurrent());
  a.set_rate_per_second(shard.rate_per_second());
  a.set_rate_share(shard.rate_share());
  a.set_epoch(shard.epoch());
  *a.mutable_clients() = shard.clients();
  if (!config_.allow_targets.allows_everything()) {
    a.set_allowed_targets(config_.allow_targets.ToString());
  }
  if (shard.has_load_offset()) {
    *a.mutable_load_offset() = shard.load_offset();
  }
  return a;
}

void RunTracker::Send(const std::string& worker_id, v1::OrchestratorMessage message,
                      Effects& fx) {
  auto it = workers_.find(worker_id);
  if (it != workers_.end() && it->second.stream != 0) {
    fx.push_back(SendEffect{it->second.stream, std::move(message)});
  }
}

void RunTracker::SendStop(const std::string& worker_id, const std::string& run_id,
                          uint64_t epoch, const std::string& reason, Effects& fx) {
  v1::OrchestratorMessage stop;
  stop.mutable_stop()->set_run_id(run_id);
  stop.mutable_stop()->set_epoch(epoch);
  stop.mutable_stop()->set_reason(reason);
  Send(worker_id, std::move(stop), fx);
}

void RunTracker::Dispatch(RunRec& rec, absl::Time now, Effects& fx) {
  for (const v1::Shard& shard : rec.run.shards()) {
    ShardRec& sr = rec.shards[shard.epoch()];
    if (sr.dispatched || IsTerminal(shard.state())) {
      continue;
    }
    auto w = workers_.find(shard.worker_id());
    if (w == workers_.end() || w->second.stream == 0) {
      continue;  // liveness decides: it comes back, or it is lost
    }
    sr.dispatched = true;
    sr.dispatched_at = now;
    v1::OrchestratorMessage message;
    *message.mutable_assign() = AssignmentFor(rec.run, shard);
    fx.push_back(SendEffect{w->second.stream, std::move(message)});
  }
}

absl::StatusOr<v1::Run> RunTracker::StopRun(const std::string& run_id, absl::Time now,
                                            Effects& fx) {
  auto it = runs_.find(run_id);
  if (it == runs_.end() || it->second.starting) {
    return absl::NotFoundError(absl::StrCat("run \"", run_id, "\" not found"));
  }
  RunRec& rec = it->second;
  if (IsTerminal(rec.run.state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " is already ", v1::RunState_Name(rec.run.state())));
  }
  if (!rec.stop_requested) {
    rec.stop_requested = true;
    rec.stop_deadline = now + config_.stop_grace;
    rec.pending.clear();
    int unfinished = 0;
    for (const v1::Shard& shard : rec.run.shards()) {
      unfinished += IsTerminal(shard.state()) ? 0 : 1;
    }
    AddEvent(&rec.run, ToTimestamp(now),
             absl::StrCat("stop requested; waiting up to ", Secs(config_.stop_grace), " for ",
                          unfinished, " shard(s) to confirm"));
    Log(fx, LogLevel::kInfo, "Stopping run.", {{"run_id", run_id}});
    SendStops(rec.run, "run stopped", fx);
    RunChanged(rec, "", now, fx);
  }
  return rec.run;
}

absl::StatusOr<v1::Run> RunTracker::GetRun(const std::string& run_id) const {
  auto it = runs_.find(run_id);
  if (it == runs_.end() || it->second.starting) {
    return absl::NotFoundError(absl::StrCat("run \"", run_id, "\" not found"));
  }
  return it->second.run;
}

std::vector<v1::Run> RunTracker::ListRuns(int32_t limit) const {
  std::vector<const v1::Run*> runs;
  runs.reserve(runs_.size());
  for (const auto& [id, rec] : runs_) {
    if (!rec.starting) {
      runs.push_back(&rec.run);
    }
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
  if (limit > 0 && runs.size() > static_cast<size_t>(limit)) {
    runs.resize(static_cast<size_t>(limit));
  }
  std::vector<v1::Run> out;
  out.reserve(runs.size());
  for (const v1::Run* run : runs) {
    out.push_back(*run);
    out.back().clear_stats();
  }
  return out;
}

absl::StatusOr<v1::RunUpdate> RunTracker::MakeUpdate(const std::string& run_id,
                                                     absl::Time now) const {
  auto it = runs_.find(run_id);
  if (it == runs_.end() || it->second.starting) {
    return absl::NotFoundError(absl::StrCat("run \"", run_id, "\" not found"));
  }
  return UpdateOf(it->second, now);
}

std::vector<v1::Worker> RunTracker::ListWorkers() const {
  std::vector<v1::Worker> out;
  for (const auto& [id, worker] : workers_) {
    if (worker.stream == 0) {
      continue;
    }
    v1::Worker& w = out.emplace_back();
    w.set_id(id);
    w.set_capacity(worker.hello.capacity());
    w.set_threads(worker.hello.threads());
    *w.mutable_attached_at() = worker.attached_at;
    *w.mutable_last_heartbeat() = worker.last_heartbeat;
    w.set_active_sessions(worker.heartbeat.active_sessions());
    w.set_cpu_percent(worker.heartbeat.cpu_percent());
    w.set_loop_lag_ms(worker.heartbeat.loop_lag_ms());
    for (const std::string& run_id : ActiveRunsOf(id)) {
      w.add_run_ids(run_id);
    }
  }
  return out;
}

// ---- Workers ----

absl::Status RunTracker::OnMessage(uint64_t stream, const v1::WorkerMessage& message,
                                   absl::Time now, Effects& fx) {
  if (stopping_) {
    return absl::UnavailableError("orchestrator is shutting down");
  }
  auto s = streams_.find(stream);
  if (s == streams_.end()) {
    if (!message.has_hello()) {
      return absl::FailedPreconditionError("the first message on Attach must be hello");
    }
    absl::Status status;
    HandleHello(stream, message.hello(), now, fx, &status);
    return status;
  }
  auto it = workers_.find(s->second);
  if (it == workers_.end() || it->second.stream != stream) {
    return absl::AbortedError(
        "this Attach stream was replaced or its worker declared lost; attach again");
  }
  WorkerRec& worker = it->second;
  worker.last_seen = now;
  switch (message.msg_case()) {
    case v1::WorkerMessage::kHeartbeat: {
      worker.heartbeat = message.heartbeat();
      worker.last_heartbeat = ToTimestamp(now);
      const double lag_ms = message.heartbeat().loop_lag_ms();
      const double cpu_per_loop =
          message.heartbeat().cpu_percent() / std::max(1, worker.hello.threads());
      for (const std::string& run_id : ActiveRunsOf(s->second)) {
        RunRec& rec = runs_.at(run_id);
        rec.max_loop_lag_ms = std::max(rec.max_loop_lag_ms, lag_ms);
        rec.max_cpu_percent_per_loop = std::max(rec.max_cpu_percent_per_loop, cpu_per_loop);
        const bool saturated =
            lag_ms > load::kWarnLoopLagMs || cpu_per_loop > load::kWarnCpuPercentPerLoop;
        if (saturated && !rec.run.generator_saturated() && !IsTerminal(rec.run.state())) {
          // Said once, at once: what the run measures from now on may
          // include the generator's own delay.
          rec.run.set_generator_saturated(true);
          AddEvent(&rec.run, ToTimestamp(now),
                   absl::StrFormat("worker %s saturated (event-loop lag %.0f ms, CPU %.0f %% of "
                                   "its %d event loops): the load generator, not the target, "
                                   "may be the limit",
                                   s->second, lag_ms, cpu_per_loop,
                                   std::max(1, worker.hello.threads())));
          Log(fx, LogLevel::kWarn, "A worker is saturated during a run.",
              {{"run_id", run_id}, {"worker_id", s->second}});
          Write(rec, /*report_back=*/false, fx);
          Push(rec, now, fx);
        }
      }
      if (message.heartbeat().sequence() > 0) {
        v1::OrchestratorMessage lease;
        lease.mutable_lease()->set_heartbeat_sequence(message.heartbeat().sequence());
        lease.mutable_lease()->set_valid_ms(
            static_cast<uint32_t>(absl::ToInt64Milliseconds(config_.heartbeat_timeout)));
        fx.push_back(SendEffect{stream, std::move(lease)});
      }
      break;
    }
    case v1::WorkerMessage::kShardUpdate:
      HandleShardUpdate(worker, message.shard_update(), now, fx);
      break;
    case v1::WorkerMessage::kLeaving:
      HandleLeaving(worker, message.leaving(), now, fx);
      break;
    case v1::WorkerMessage::kHello:
      Log(fx, LogLevel::kDebug, "Ignoring a repeated hello.", {{"worker_id", s->second}});
      break;
    case v1::WorkerMessage::MSG_NOT_SET:
      break;
  }
  return absl::OkStatus();
}

void RunTracker::HandleHello(uint64_t stream, const v1::WorkerHello& hello, absl::Time now,
                             Effects& fx, absl::Status* status) {
  if (!ValidWorkerId(hello.worker_id())) {
    *status = absl::InvalidArgumentError(
        "hello.worker_id: required, at most 128 printable characters without spaces");
    return;
  }
  if (hello.capacity() <= 0) {
    *status = absl::InvalidArgumentError(
        absl::StrCat("hello.capacity: must be > 0, got ", hello.capacity()));
    return;
  }
  const std::string id = hello.worker_id();
  const google::protobuf::Timestamp ts = ToTimestamp(now);
  auto [it, inserted] = workers_.try_emplace(id);
  WorkerRec& worker = it->second;
  if (!inserted && worker.stream != 0 && worker.stream != stream) {
    fx.push_back(CloseEffect{worker.stream,
                             absl::AbortedError(absl::StrCat(
                                 "replaced by a newer Attach stream of worker ", id))});
    streams_.erase(worker.stream);
  }
  worker.hello = hello;
  worker.stream = stream;
  worker.last_seen = now;
  worker.grace_until = absl::InfinitePast();
  worker.last_heartbeat = ts;
  worker.leaving = false;
  worker.stops_sent.clear();
  if (inserted) {
    worker.attached_at = ts;
  }
  streams_[stream] = id;

  v1::OrchestratorMessage accepted;
  accepted.mutable_accepted()->set_worker_id(id);
  accepted.mutable_accepted()->set_heartbeat_interval_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(config_.heartbeat_interval)));
  accepted.mutable_accepted()->set_heartbeat_timeout_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(config_.heartbeat_timeout)));
  fx.push_back(SendEffect{stream, std::move(accepted)});

  const std::vector<std::string> runs = ActiveRunsOf(id);
  Log(fx, LogLevel::kInfo, inserted ? "Worker attached." : "Worker re-attached.",
      {{"worker_id", id},
       {"capacity", absl::StrCat(hello.capacity())},
       {"threads", absl::StrCat(hello.threads())},
       {"version", hello.version()},
       {"active_runs", absl::StrCat(runs.size())}});
  // A known worker is back, whether its old stream had already ended or is
  // only now being replaced (the new hello can overtake the old stream's
  // end). The same process keeps its shards (and is sent them again: it
  // ignores the ones it knows); a new process under the same id lost them.
  for (const std::string& run_id : runs) {
    RunRec& rec = runs_.at(run_id);
    std::vector<v1::Shard*> gone;
    bool kept = false;
    for (v1::Shard& shard : *rec.run.mutable_shards()) {
      if (shard.worker_id() != id || IsTerminal(shard.state())) {
        continue;
      }
      if (!shard.worker_incarnation().empty() && !hello.incarnation().empty() &&
          shard.worker_incarnation() != hello.incarnation()) {
        gone.push_back(&shard);
        continue;
      }
      kept = true;
      if (!hello.incarnation().empty()) {
        shard.set_worker_incarnation(hello.incarnation());
        ShardRec& sr = rec.shards[shard.epoch()];
        if (!sr.dispatched) {
          sr.dispatched = true;
          sr.dispatched_at = now;
        }
        v1::OrchestratorMessage message;
        *message.mutable_assign() = AssignmentFor(rec.run, shard);
        fx.push_back(SendEffect{stream, std::move(message)});
      }
    }
    if (kept && !inserted) {
      AddEvent(&rec.run, ts,
               absl::StrCat("worker ", id, " re-attached; its shard continues"));
    }
    for (v1::Shard* shard : gone) {
      ShardEndedEarly(rec, *shard, v1::SHARD_LOST,
                      "it came back as a new process; the one that ran the shard is gone", now,
                      now, fx);
    }
    RunChanged(rec, "", now, fx);
  }
  PlaceAll(now, fx);
}

v1::Shard* RunTracker::FindShard(RunRec& rec, uint64_t epoch) {
  for (v1::Shard& s : *rec.run.mutable_shards()) {
    if (s.epoch() == epoch) {
      return &s;
    }
  }
  return nullptr;
}

void RunTracker::HandleShardUpdate(WorkerRec& worker, const v1::ShardUpdate& update,
                                   absl::Time now, Effects& fx) {
  const std::string& worker_id = worker.hello.worker_id();
  auto it = runs_.find(update.run_id());
  v1::Shard* shard = nullptr;
  if (it != runs_.end() && !it->second.starting && !IsTerminal(it->second.run.state())) {
    if (update.epoch() != 0) {
      shard = FindShard(it->second, update.epoch());
      if (shard != nullptr && shard->worker_id() != worker_id) {
        shard = nullptr;
      }
    } else {
      // An update without an epoch: the worker's unfinished shard of the
      // run (a worker has one unless work moved to it).
      for (v1::Shard& s : *it->second.run.mutable_shards()) {
        if (s.worker_id() == worker_id && (shard == nullptr || !IsTerminal(s.state()))) {
          shard = &s;
        }
      }
    }
  }
  if (shard == nullptr) {
    // A shard we do not track (the run ended, or an earlier orchestrator
    // started it): tell the worker to stop it, once per stream.
    if (!IsTerminal(update.state()) &&
        worker.stops_sent.emplace(update.run_id(), update.epoch()).second) {
      SendStop(worker_id, update.run_id(), update.epoch(), "the run is not active", fx);
      Log(fx, LogLevel::kInfo, "Stopping a shard of a run that is not active on this worker.",
          {{"worker_id", worker_id}, {"run_id", update.run_id()}});
    }
    return;
  }
  RunRec& rec = it->second;
  v1::Run& run = rec.run;
  ShardRec& sr = rec.shards[shard->epoch()];
  if (!sr.dispatched) {
    sr.dispatched = true;
    sr.dispatched_at = now;
  }
  if (IsTerminal(shard->state())) {
    if ((shard->state() == v1::SHARD_LOST || shard->state() == v1::SHARD_DRAINED) &&
        !IsTerminal(update.state()) &&
        worker.stops_sent.emplace(update.run_id(), shard->epoch()).second) {
      // Fenced: its work moved on while it was away.
      SendStop(worker_id, run.id(), shard->epoch(),
               "fenced: the worker was declared lost and this shard's work moved on", fx);
      AddEvent(&run, ToTimestamp(now),
               absl::StrCat("worker ", worker_id, " came back running epoch ", shard->epoch(),
                            ", whose work had moved on: told to stop it (fenced)"));
      Log(fx, LogLevel::kWarn, "Fenced a shard of a worker that came back.",
          {{"run_id", run.id()},
           {"worker_id", worker_id},
           {"epoch", absl::StrCat(shard->epoch())}});
      Push(rec, now, fx);
    }
    return;  // a late update after the shard ended
  }
  if (update.last_sequence() > 0) {
    sr.last_sequence = std::max(sr.last_sequence, update.last_sequence());
    sr.last_batch_end_us = std::max(sr.last_batch_end_us, update.last_batch_end_us());
  }
  if (update.has_progress()) {
    *shard->mutable_progress() = update.progress();
    if (shard->progress().cycles_total() == 0) {
      shard->mutable_progress()->set_cycles_total(ShardCycles(run.spec(), *shard));
    }
    // Batches the collector rejected are missing from the statistics: said
    // when the first arrive and, if more came since, when the shard ends.
    const v1::ShardProgress& p = shard->progress();
    int64_t& said = rec.rejections_said[worker_id];
    if (p.batches_rejected() > said && (said == 0 || IsTerminal(update.state()))) {
      said = p.batches_rejected();
      AddEvent(&run, ToTimestamp(now),
               absl::StrCat("collector rejected ", p.batches_rejected(),
                            p.batches_rejected() == 1 ? " batch (" : " batches (",
                            p.requests_rejected(), " requests, ", p.samples_rejected(),
                            " latency samples) from worker ", worker_id, ": ",
                            p.rejection_reason()));
      Log(fx, LogLevel::kWarn, "The collector rejected sample batches of a run.",
          {{"run_id", run.id()},
           {"worker_id", worker_id},
           {"batches", absl::StrCat(p.batches_rejected())},
           {"reason", p.rejection_reason()}});
    }
  }
  const v1::ShardState before = shard->state();
  const google::protobuf::Timestamp ts = ToTimestamp(now);
  const std::string range = shard->clients_size() > 0
                                ? DescribeSpans(ClientsOf(run.spec(), *shard), false)
                                : absl::StrCat("clients ", shard->client_begin(), "-",
                                               shard->client_begin() + shard->client_count() - 1);
  std::string failure;
  switch (update.state()) {
    case v1::SHARD_RUNNING:
      shard->set_state(v1::SHARD_RUNNING);
      if (before != v1::SHARD_RUNNING) {
        AddEvent(&run, ts, absl::StrCat("worker ", worker_id, " running ", range));
      }
      break;
    case v1::SHARD_DONE:
      shard->set_state(v1::SHARD_DONE);
      AddEvent(&run, ts,
               absl::StrCat("worker ", worker_id, " finished ", range, " (",
                            shard->progress().cycles_done(), " cycles)"));
      break;
    case v1::SHARD_FAILED:
      shard->set_state(v1::SHARD_FAILED);
      shard->set_error(update.error().empty() ? "worker reported failure without a reason"
                                              : update.error());
      failure = absl::StrCat("worker ", worker_id, " failed on ", range, ": ", shard->error());
      AddEvent(&run, ts, failure);
      break;
    case v1::SHARD_CANCELLED:
      if (rec.stop_requested) {
        shard->set_state(v1::SHARD_CANCELLED);
        shard->set_error(update.error());
        AddEvent(&run, ts, absl::StrCat("worker ", worker_id, " cancelled ", range));
      } else {
        // Not asked to: what it left moves on like a drained shard's.
        ShardEndedEarly(rec, *shard, v1::SHARD_CANCELLED,
                        absl::StrCat("cancelled without a stop request",
                                     update.error().empty() ? "" : ": " + update.error()),
                        now, now, fx);
      }
      break;
    case v1::SHARD_DRAINED:
      ShardEndedEarly(rec, *shard, v1::SHARD_DRAINED,
                      update.error().empty() ? "the worker is shutting down (drained)"
                                             : update.error(),
                      now, now, fx);
      break;
    default:
      break;  // progress only
  }
  if (shard->state() != before) {
    Log(fx, LogLevel::kInfo, "Shard state changed.",
        {{"run_id", run.id()},
         {"worker_id", worker_id},
         {"epoch", absl::StrCat(shard->epoch())},
         {"state", v1::ShardState_Name(shard->state())}});
  }
  RunChanged(rec, failure, now, fx);
  if (IsTerminal(shard->state())) {
    PlaceAll(now, fx);  // its capacity is free
  }
}

void RunTracker::HandleLeaving(WorkerRec& worker, const v1::WorkerLeaving& leaving,
                               absl::Time now, Effects& fx) {
  worker.leaving = true;
  Log(fx, LogLevel::kInfo, "Worker is leaving.",
      {{"worker_id", worker.hello.worker_id()}, {"reason", leaving.reason()}});
}

void RunTracker::OnStreamClosed(uint64_t stream, absl::Time now, Effects& fx) {
  auto s = streams_.find(stream);
  if (s == streams_.end()) {
    return;
  }
  const std::string worker_id = s->second;
  streams_.erase(s);
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.stream != stream) {
    return;  // replaced by a newer stream, or already lost
  }
  WorkerRec& worker = it->second;
  worker.stream = 0;
  const std::vector<std::string> runs = ActiveRunsOf(worker_id);
  if (runs.empty()) {
    // Read before the erase: `worker` refers into workers_.
    const bool left = worker.leaving;
    workers_.erase(it);
    Log(fx, LogLevel::kInfo, left ? "Worker left." : "Worker detached.",
        {{"worker_id", worker_id}});
    return;
  }
  if (stopping_) {
    return;
  }
  if (worker.leaving) {
    MarkLost(worker_id, "it left with shards it had not drained", now, fx);
    return;
  }
  const ProcessReport process = probe_ ? probe_(worker.hello) : ProcessReport{};
  if (process.exited) {
    MarkLost(worker_id, absl::StrCat("stream closed", process.clause), now, fx);
    return;
  }
  Log(fx, LogLevel::kWarn, "Worker stream closed during a run; waiting for it to re-attach.",
      {{"worker_id", worker_id},
       {"process", process.clause.empty() ? "unknown" : process.clause.substr(2)},
       {"timeout", Secs(config_.heartbeat_timeout)}});
  const google::protobuf::Timestamp ts = ToTimestamp(now);
  for (const std::string& run_id : runs) {
    RunRec& rec = runs_.at(run_id);
    AddEvent(&rec.run, ts,
             absl::StrCat("worker ", worker_id, " stream closed", process.clause,
                          "; lost unless it re-attaches within ",
                          Secs(config_.heartbeat_timeout)));
    RunChanged(rec, "", now, fx);
  }
}

// ---- Run state ----

void RunTracker::Write(const RunRec& rec, bool report_back, Effects& fx) {
  fx.push_back(WriteEffect{rec.run, report_back});
}

void RunTracker::Push(const RunRec& rec, absl::Time now, Effects& fx) {
  fx.push_back(PushEffect{UpdateOf(rec, now)});
}

void RunTracker::SendStops(const v1::Run& run, const std::string& reason, Effects& fx) {
  for (const v1::Shard& shard : run.shards()) {
    if (!IsTerminal(shard.state())) {
      SendStop(shard.worker_id(), run.id(), shard.epoch(), reason, fx);
    }
  }
}

void RunTracker::FailRun(RunRec& rec, const std::string& reason, absl::Time now, Effects& fx) {
  if (rec.fail_reason.empty()) {
    rec.fail_reason = reason;
  }
  RunChanged(rec, rec.fail_reason, now, fx);
}

void RunTracker::RunChanged(RunRec& rec, const std::string& failure, absl::Time now,
                            Effects& fx) {
  v1::Run& run = rec.run;
  SumProgress(&run);
  v1::RunState next = DecideState(run, rec.stop_requested);
  if (!rec.fail_reason.empty() && !IsTerminal(run.state())) {
    next = v1::FAILED;
  }
  if (next == v1::COMPLETED && !rec.pending.empty()) {
    next = run.state();  // lost work still waits for a worker
  }
  if (next == v1::CANCELLED && !rec.abort_reason.empty()) {
    next = v1::FAILED;  // stopped by a failing threshold, not by a user
  }
  if (IsTerminal(next) && !IsTerminal(run.state()) && !rec.finalizing) {
    std::string error;
    if (next == v1::FAILED) {
      error = !rec.fail_reason.empty() ? rec.fail_reason
              : !rec.abort_reason.empty() ? rec.abort_reason
                                          : failure;
      for (const v1::Shard& shard : run.shards()) {
        if (error.empty() && shard.state() == v1::SHARD_FAILED && !shard.error().empty()) {
          error = absl::StrCat("worker ", shard.worker_id(), ": ", shard.error());
        }
      }
      // The other shards cannot make the run succeed any more.
      SendStops(run, "the run failed", fx);
      for (v1::Shard& shard : *run.mutable_shards()) {
        if (!IsTerminal(shard.state())) {
          shard.set_state(v1::SHARD_CANCELLED);
          shard.set_error("stopped because the run failed");
        }
      }
      rec.pending.clear();
    }
    if (collector_ && !stopping_) {
      // Decide the verdict on the final statistics first.
      rec.finalizing = true;
      rec.final_state = next;
      rec.final_error = error;
      fx.push_back(FetchStatsEffect{run.id(), true, run.spec().has_target_metrics()});
    } else {
      FinalizeRun(rec, next, error, nullptr, now, fx);
    }
  }
  Write(rec, false, fx);
  Push(rec, now, fx);
}

void RunTracker::FinalizeRun(RunRec& rec, v1::RunState state, const std::string& error,
                             const v1::RunStats* stats, absl::Time now, Effects& fx) {
  v1::Run& run = rec.run;
  const google::protobuf::Timestamp ts = ToTimestamp(now);
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
  if (!rec.abort_reason.empty() || state == v1::FAILED) {
    passed = false;  // a failed run never passes, thresholds or not
  }
  run.set_passed(passed);
  load::WarningInputs inputs;
  inputs.max_loop_lag_ms = rec.max_loop_lag_ms;
  inputs.max_cpu_percent_per_loop = rec.max_cpu_percent_per_loop;
  inputs.e2e_over_time = rec.e2e_series;
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
  if (run.losses_size() > 0) {
    int lost_workers = 0;
    int64_t lost = 0;
    for (const v1::WorkerLoss& l : run.losses()) {
      lost_workers += l.drained() ? 0 : 1;
      lost += l.requests_lost();
    }
    if (lost_workers > 0) {
      run.add_warnings(absl::StrCat(lost_workers, lost_workers == 1 ? " worker was" : " workers were",
                                    " lost during the run; ", lost,
                                    lost == 1 ? " request" : " requests",
                                    " in flight on them counted lost (see the events)"));
    }
  }
  run.set_max_loop_lag_ms(rec.max_loop_lag_ms);
  run.set_max_cpu_percent_per_loop(rec.max_cpu_percent_per_loop);
  std::vector<std::string> violated;
  for (const v1::ThresholdResult& r : run.threshold_results()) {
    if (!r.passed()) {
      violated.push_back(r.description());
    }
  }
  if (!violated.empty()) {
    AddEvent(&run, ts, absl::StrCat("thresholds failed: ", absl::StrJoin(violated, "; ")));
  } else if (run.threshold_results_size() > 0) {
    AddEvent(&run, ts, absl::StrCat("all ", run.threshold_results_size(), " thresholds passed"));
  }
  FinishRun(&run, state, ts, error);
  active_runs_.erase(run.id());
  rec.finalizing = false;
  rec.pending.clear();
  Log(fx, state == v1::FAILED ? LogLevel::kWarn : LogLevel::kInfo, "Run finished.",
      {{"run_id", run.id()},
       {"state", v1::RunState_Name(state)},
       {"passed", passed ? "true" : "false"},
       {"cycles_done", absl::StrCat(run.progress().cycles_done())},
       {"error", run.error()}});
}

void RunTracker::OnStats(const std::string& run_id, const v1::RunStats* stats, bool final,
                         absl::Time now, Effects& fx) {
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    return;
  }
  RunRec& rec = it->second;
  if (!final) {
    rec.poll_in_flight = false;
  }
  const bool has_data = stats != nullptr && (stats->batches() > 0 || stats->metrics_size() > 0);
  if (has_data) {
    rec.last_stats = *stats;
    if (const v1::MetricStats* e2e = load::FindMetric(*stats, "e2e"); e2e != nullptr) {
      if (rec.e2e_series.empty() || rec.e2e_series.back().first != e2e->count()) {
        rec.e2e_series.emplace_back(e2e->count(), e2e->mean_ms());
      }
      // Bounded: keep every other snapshot (cumulative ones stay exact).
      if (rec.e2e_series.size() > 4096) {
        load::CumulativeMeans halved;
        for (size_t i = 0; i < rec.e2e_series.size(); i += 2) {
          halved.push_back(rec.e2e_series[i]);
        }
        halved.push_back(rec.e2e_series.back());
        rec.e2e_series = std::move(halved);
      }
    }
  }
  if (final) {
    if (rec.finalizing && !IsTerminal(rec.run.state())) {
      if (stats == nullptr) {
        Log(fx, LogLevel::kWarn,
            "No final statistics from the collector; thresholds cannot pass.",
            {{"run_id", run_id}});
      }
      FinalizeRun(rec, rec.final_state, rec.final_error, stats, now, fx);
      Write(rec, false, fx);
      Push(rec, now, fx);
    }
    return;
  }
  if (!has_data || stopping_ || rec.finalizing || IsTerminal(rec.run.state()) ||
      rec.stop_requested) {
    return;
  }
  for (const v1::Threshold& t : rec.run.spec().thresholds()) {
    if (!t.abort_on_fail()) {
      continue;
    }
    const v1::ThresholdResult r = load::Evaluate(t, *stats, /*final_stats=*/false);
    if (!r.passed()) {
      AbortRun(rec, absl::StrCat("threshold failed, run aborted: ", r.description()), now, fx);
      return;
    }
  }
}

void RunTracker::AbortRun(RunRec& rec, const std::string& reason, absl::Time now, Effects& fx) {
  rec.abort_reason = reason;
  rec.stop_requested = true;
  rec.stop_deadline = now + config_.stop_grace;
  rec.pending.clear();
  AddEvent(&rec.run, ToTimestamp(now), reason);
  Log(fx, LogLevel::kWarn, "Aborting run: a threshold failed.",
      {{"run_id", rec.run.id()}, {"reason", reason}});
  SendStops(rec.run, "a threshold failed", fx);
  RunChanged(rec, reason, now, fx);
}

void RunTracker::SampleRates(RunRec& rec, absl::Time now) {
  const v1::ShardProgress& p = rec.run.progress();
  const int64_t requests = p.requests_ok() + p.requests_failed();
  const double dt = absl::ToDoubleSeconds(now - rec.rate_at);
  if (dt < 1.0) {
    return;
  }
  rec.requests_per_sec = static_cast<double>(requests - rec.rate_requests) / dt;
  rec.tokens_per_sec = static_cast<double>(p.tokens() - rec.rate_tokens) / dt;
  rec.rate_requests = requests;
  rec.rate_tokens = p.tokens();
  rec.rate_at = now;
}

v1::RunUpdate RunTracker::UpdateOf(const RunRec& rec, absl::Time now) const {
  v1::RunUpdate update;
  *update.mutable_run() = rec.run;
  const v1::Run& run = rec.run;
  v1::LiveStats* live = update.mutable_live();
  if (run.has_started_at()) {
    const absl::Time started = FromTimestamp(run.started_at());
    const absl::Time until = run.has_finished_at() ? FromTimestamp(run.finished_at()) : now;
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
  live->set_requests_per_sec(IsTerminal(run.state()) ? 0 : rec.requests_per_sec);
  live->set_tokens_per_sec(IsTerminal(run.state()) ? 0 : rec.tokens_per_sec);
  if (const v1::MetricStats* m = load::FindMetric(rec.last_stats, "ttft"); m != nullptr) {
    live->set_ttft_p50_ms(m->p50_ms());
    live->set_ttft_p99_ms(m->p99_ms());
  }
  if (const v1::MetricStats* m = load::FindMetric(rec.last_stats, "itl"); m != nullptr) {
    live->set_itl_p50_ms(m->p50_ms());
    live->set_itl_p99_ms(m->p99_ms());
  }
  // The target's own metrics, as last scraped (no run-long summary here).
  for (const v1::TargetSeries& s : rec.last_stats.target_series()) {
    v1::TargetSeries* out = live->add_target_series();
    out->set_name(s.name());
    *out->mutable_labels() = s.labels();
    out->set_type(s.type());
    out->set_value(s.value());
    out->set_samples(s.samples());
    out->set_time_us(s.time_us());
    out->set_selector(s.selector());
  }
  return update;
}

// ---- Time ----

void RunTracker::Tick(absl::Time now, Effects& fx) {
  if (stopping_) {
    return;
  }
  // Liveness: silent for the heartbeat timeout (stream open or not), or past
  // the grace of a restart.
  std::vector<std::pair<std::string, std::string>> lost;
  std::vector<std::string> forget;
  for (const auto& [id, worker] : workers_) {
    const absl::Time deadline =
        std::max(worker.last_seen + config_.heartbeat_timeout, worker.grace_until);
    if (now <= deadline) {
      continue;
    }
    const bool busy = !ActiveRunsOf(id).empty();
    if (!busy && worker.stream == 0) {
      forget.push_back(id);
      continue;
    }
    const ProcessReport process = probe_ ? probe_(worker.hello) : ProcessReport{};
    if (worker.hello.worker_id().empty()) {  // known from a stored run only
      lost.emplace_back(id, absl::StrCat("did not re-attach within ",
                                         Secs(config_.recovery_grace),
                                         " of the orchestrator's restart"));
    } else if (worker.stream != 0) {
      lost.emplace_back(id, absl::StrCat("no heartbeat for ", Secs(config_.heartbeat_timeout),
                                         process.clause));
    } else {
      lost.emplace_back(id, absl::StrCat("stream closed and not re-attached within ",
                                         Secs(config_.heartbeat_timeout), process.clause));
    }
  }
  for (const std::string& id : forget) {
    workers_.erase(id);
  }
  for (const auto& [id, reason] : lost) {
    MarkLost(id, reason, now, fx);
  }

  const std::vector<std::string> active(active_runs_.begin(), active_runs_.end());
  for (const std::string& run_id : active) {
    RunRec& rec = runs_.at(run_id);
    if (rec.starting || IsTerminal(rec.run.state())) {
      continue;
    }
    // Stop grace periods.
    if (rec.stop_requested && now >= rec.stop_deadline && !rec.finalizing) {
      std::vector<std::string> stragglers;
      for (v1::Shard& shard : *rec.run.mutable_shards()) {
        if (!IsTerminal(shard.state())) {
          shard.set_state(v1::SHARD_CANCELLED);
          shard.set_error(absl::StrCat("did not confirm the stop within ",
                                       Secs(config_.stop_grace)));
          stragglers.push_back(shard.worker_id());
        }
      }
      if (!stragglers.empty()) {
        AddEvent(&rec.run, ToTimestamp(now),
                 absl::StrCat("stop grace of ", Secs(config_.stop_grace),
                              " expired; marked cancelled: ", absl::StrJoin(stragglers, ", ")));
      }
      RunChanged(rec, "", now, fx);
      continue;
    }
    // Seals to try again.
    for (v1::Shard& shard : *rec.run.mutable_shards()) {
      ShardRec& sr = rec.shards[shard.epoch()];
      if (sr.sealing && !sr.seal_in_flight && now >= sr.seal_retry_at) {
        if (collector_) {
          StartSeal(rec, shard, fx);
        }
      }
    }
    // Work that waited too long for a worker.
    if (!rec.pending.empty() && !rec.finalizing) {
      PlacePending(rec, now, fx);
      for (const Pending& p : rec.pending) {
        if (now - p.since > config_.reassign_wait) {
          const v1::Shard* from = FindShard(rec, p.from_epoch);
          rec.fail_reason = absl::StrCat(
              "no worker with spare capacity took over the work of worker ",
              from != nullptr ? from->worker_id() : "?", " (epoch ", p.from_epoch, ", ",
              DescribeSpans(p.clients, rec.run.spec().load().has_closed()), ") within ",
              Secs(config_.reassign_wait));
          if (p.loss_index >= 0 && p.loss_index < rec.run.losses_size()) {
            rec.run.mutable_losses(p.loss_index)->set_not_moved(rec.fail_reason);
          }
          AddEvent(&rec.run, ToTimestamp(now), rec.fail_reason);
          break;
        }
      }
      RunChanged(rec, rec.fail_reason, now, fx);
      if (IsTerminal(rec.run.state()) || rec.finalizing) {
        continue;
      }
    }
    // Live statistics: rates from progress, the collector polled once per
    // second (percentiles, abort on a failing threshold, latency trend).
    if (rec.run.state() == v1::RUNNING && !rec.finalizing) {
      SampleRates(rec, now);
      if (collector_ && now >= rec.next_poll && !rec.poll_in_flight) {
        rec.next_poll = now + absl::Seconds(1);
        rec.poll_in_flight = true;
        fx.push_back(FetchStatsEffect{run_id, false});
      }
    }
  }
}

void RunTracker::Shutdown(Effects& fx) {
  if (stopping_) {
    return;
  }
  stopping_ = true;
  for (auto& [id, worker] : workers_) {
    if (worker.stream != 0) {
      fx.push_back(CloseEffect{worker.stream, absl::UnavailableError("orchestrator is shutting down")});
    }
  }
}

}  // namespace llmload::orchestrator
