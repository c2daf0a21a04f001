#include "services/worker/worker.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>

#include <cstdlib>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "lib/common/backoff.h"
#include "lib/common/log.h"
#include "services/common/grpc_util.h"
#include "services/common/process_identity.h"

namespace llmload::worker {
namespace {

constexpr char kVersion[] = "0.1.0";
// Most per-request records one batch carries: the collector refuses a batch
// with more (RunRegistry::kMaxRecordsPerBatch), which would lose its samples
// too. Records past it are counted as dropped.
constexpr size_t kMaxRecordsPerBatch = 100000;

int64_t NowUnixMicros() { return absl::ToUnixMicros(absl::Now()); }

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Random per process start (WorkerHello.incarnation).
std::string NewIncarnation() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

constexpr size_t kMaxFinished = 1024;

#ifdef LLMLOAD_TEST_HOOKS
// Test builds: with LLMLOAD_TEST_CRASH_ON_CLIENT=<id>, a shard holding that
// client kills this process (as a poison work unit or an OOM would).
void MaybeCrashForTest(const v1::ShardAssignment& a) {
  const char* env = std::getenv("LLMLOAD_TEST_CRASH_ON_CLIENT");
  int32_t client = 0;
  if (env == nullptr || !absl::SimpleAtoi(env, &client)) {
    return;
  }
  bool holds = a.clients_size() == 0 && client >= a.client_begin() &&
               client < a.client_begin() + a.client_count();
  for (const v1::ClientSpan& s : a.clients()) {
    holds = holds || (client >= s.begin() && client < s.begin() + s.count());
  }
  if (holds) {
    LLMLOAD_LOG(kError, "Test hook: this shard holds the crash client; killing myself.")
        .Kv("run_id", a.run_id())
        .Kv("epoch", a.epoch())
        .Kv("client", client);
    ::kill(::getpid(), SIGKILL);
  }
}

// Test builds: with LLMLOAD_TEST_STALL_LOOPS_MS=<ms>, starting a shard
// blocks every event loop for that long once, as an overloaded generator
// would (the saturation flag's test).
void MaybeStallLoopsForTest(EventLoops& loops) {
  const char* env = std::getenv("LLMLOAD_TEST_STALL_LOOPS_MS");
  int32_t ms = 0;
  if (env == nullptr || !absl::SimpleAtoi(env, &ms) || ms <= 0) {
    return;
  }
  LLMLOAD_LOG(kWarn, "Test hook: stalling every event loop.").Kv("ms", ms);
  for (int i = 0; i < loops.size(); ++i) {
    net::post(loops.loop(i), [ms] { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); });
  }
}
#else
void MaybeCrashForTest(const v1::ShardAssignment&) {}
void MaybeStallLoopsForTest(EventLoops&) {}
#endif

}  // namespace

Worker::Worker(WorkerConfig config)
    : config_(std::move(config)),
      loops_(config_.threads),
      shipper_(config_.collector, config_.max_unacked_batches),
      incarnation_(NewIncarnation()) {}

Worker::~Worker() { Shutdown(absl::Seconds(0)); }

void Worker::Start() {
  last_cpu_seconds_ = ProcessCpuSeconds();
  last_cpu_at_ = absl::Now();
  attach_thread_ = std::thread([this] { AttachLoop(); });
  setup_thread_ = std::thread([this] { SetupLoop(); });
  control_thread_ = std::thread([this] { ControlLoop(); });
  if (!config_.metrics_address.empty()) {
    auto m = WorkerMetrics::Serve(config_.metrics_address, config_.worker_id, [this] {
      WorkerHealth h;
      absl::MutexLock lock(&mu_);
      for (auto& [id, rs] : runs_) {
        h.active_sessions += rs.runner->active_sessions();
      }
      h.runs = static_cast<int64_t>(runs_.size());
      h.cpu_percent = last_cpu_percent_;
      h.loop_lag_ms = last_lag_ms_;
      h.event_loops = loops_.size();
      h.batches_unacked = shipper_.Unacked();
      return h;
    });
    if (m.ok()) {
      metrics_ = *std::move(m);
    } else {
      LLMLOAD_LOG(kError, "Worker metrics endpoint disabled.").Kv("error", m.status().message());
    }
  }
  LLMLOAD_LOG(kInfo, "Worker started.")
      .Kv("worker_id", config_.worker_id)
      .Kv("orchestrator", config_.orchestrator)
      .Kv("collector", config_.collector)
      .Kv("threads", loops_.size())
      .Kv("capacity", config_.capacity);
}

void Worker::Shutdown(absl::Duration drain) {
  const absl::Time deadline = absl::Now() + drain;
  // Requests in flight get the drain less a moment for the last batches
  // and their acks.
  const absl::Duration grace =
      std::max(absl::ZeroDuration(), std::min(drain - absl::Seconds(1), drain * 0.8));
  int drained = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || draining_) {
      return;
    }
    draining_ = true;
    // Assignments not started yet are handed back at once.
    for (const v1::ShardAssignment& a : setup_queue_) {
      starting_.erase({a.run_id(), a.epoch()});
      outbox_.push_back({});
      v1::ShardUpdate* u = outbox_.back().mutable_shard_update();
      u->set_run_id(a.run_id());
      u->set_epoch(a.epoch());
      u->set_state(v1::SHARD_DRAINED);
      u->set_error("the worker is shutting down; the shard was never started");
    }
    setup_queue_.clear();
    for (auto& [key, rs] : runs_) {
      if (rs.final_enqueued || rs.runner->Finished()) {
        continue;
      }
      rs.runner->Drain(absl::ToChronoMilliseconds(grace));
      if (rs.runner->drained() && rs.final_state == v1::SHARD_DONE) {
        rs.final_state = v1::SHARD_DRAINED;
        rs.error = "the worker is shutting down (drained: requests in flight finished)";
        ++drained;
      }
    }
  }
  LLMLOAD_LOG(kInfo, "Draining: no new requests; finishing those in flight.")
      .Kv("shards", drained)
      .Kv("drain", absl::FormatDuration(drain));
  // The control thread cuts each shard's last batch, waits for its acks and
  // reports the shard (DRAINED, or DONE if it finished meanwhile).
  {
    absl::MutexLock lock(&mu_);
    auto reported = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return runs_.empty() && starting_.empty();
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&reported), deadline)) {
      LLMLOAD_LOG(kWarn, "Drain deadline reached with shards not reported; leaving anyway.")
          .Kv("shards", static_cast<int64_t>(runs_.size()))
          .Kv("unacked_batches", static_cast<int64_t>(shipper_.Unacked()));
    }
    // Then say goodbye, so the orchestrator moves what is left at once.
    if (attached_) {
      v1::WorkerMessage leaving;
      leaving.mutable_leaving()->set_reason("SIGTERM");
      outbox_.push_back(std::move(leaving));
      auto left = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return left_ || !attached_; };
      mu_.AwaitWithDeadline(absl::Condition(&left),
                            std::max(deadline, absl::Now()) + absl::Seconds(2));
    }
    stopping_ = true;
    if (attach_ctx_ != nullptr) {
      attach_ctx_->TryCancel();
    }
  }
  if (control_thread_.joinable()) {
    control_thread_.join();
  }
  if (setup_thread_.joinable()) {
    setup_thread_.join();
  }
  if (attach_thread_.joinable()) {
    attach_thread_.join();
  }
  for (auto& [key, rs] : runs_) {
    rs.runner->Cancel();  // whatever the deadline cut short
  }
  metrics_.reset();
  shipper_.Stop();
  loops_.Stop();
  LLMLOAD_LOG(kInfo, "Drained.").Kv("left_cleanly", left_ ? "true" : "false");
}

// ---- orchestrator link ----

void Worker::AttachLoop() {
  // Full jitter, so workers that lost the orchestrator together do not all
  // come back at the same instant.
  Backoff backoff(absl::Milliseconds(200), absl::Seconds(2), BackoffSeed(this));
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        return;
      }
    }
    const bool was_attached = RunAttachStream();
    {
      absl::MutexLock lock(&mu_);
      attached_ = false;
      if (stopping_ || left_) {
        return;
      }
    }
    if (was_attached) {
      backoff.Reset();
    }
    const absl::Duration delay = backoff.Next();
    absl::MutexLock lock(&mu_);
    auto stop = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&stop), delay);
  }
}

bool Worker::RunAttachStream() {
  auto stub = v1::Orchestrator::NewStub(MakeChannel(config_.orchestrator));
  grpc::ClientContext ctx;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return false;
    }
    attach_ctx_ = &ctx;
  }
  auto stream = stub->Attach(&ctx);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(config_.worker_id);
  hello.mutable_hello()->set_capacity(config_.capacity);
  hello.mutable_hello()->set_threads(loops_.size());
  hello.mutable_hello()->set_version(kVersion);
  // Lets an orchestrator on this host check, should the stream break,
  // whether this process is still alive.
  const ProcessIdentity self = SelfIdentity();
  hello.mutable_hello()->set_pid(self.pid);
  hello.mutable_hello()->set_pid_start_ticks(self.start_ticks);
  hello.mutable_hello()->set_host_id(self.host);
  hello.mutable_hello()->set_incarnation(incarnation_);
  bool attached = false;
  bool broken = false;
  if (stream->Write(hello)) {
    std::thread reader([&] {
      v1::OrchestratorMessage msg;
      while (stream->Read(&msg)) {
        if (msg.has_accepted()) {
          absl::MutexLock lock(&mu_);
          attached_ = true;
          attached = true;
          if (msg.accepted().heartbeat_interval_ms() > 0) {
            heartbeat_interval_ = absl::Milliseconds(msg.accepted().heartbeat_interval_ms());
          }
          // Leases start with the first answer to a heartbeat; until then
          // the stream's acceptance counts as one.
          lease_length_ = absl::Milliseconds(msg.accepted().heartbeat_timeout_ms());
          lease_until_ = lease_length_ > absl::ZeroDuration() ? absl::Now() + lease_length_
                                                             : absl::InfiniteFuture();
          // Re-announce shards still running (after an orchestrator hiccup
          // or restart): it matches them by epoch.
          for (auto& [key, rs] : runs_) {
            if (!rs.reported_terminal && !rs.final_enqueued) {
              outbox_.push_back({});
              *outbox_.back().mutable_shard_update() = MakeUpdate(key, rs, v1::SHARD_RUNNING);
            }
          }
          LLMLOAD_LOG(kInfo, "Attached to the orchestrator.")
              .Kv("address", config_.orchestrator)
              .Kv("worker_id", config_.worker_id);
        } else if (msg.has_lease()) {
          absl::MutexLock lock(&mu_);
          for (const auto& [seq, sent] : heartbeats_sent_) {
            if (seq == msg.lease().heartbeat_sequence()) {
              lease_until_ =
                  std::max(lease_until_, sent + absl::Milliseconds(msg.lease().valid_ms()));
              break;
            }
          }
        } else if (msg.has_assign()) {
          OnAssignment(msg.assign());
        } else if (msg.has_stop()) {
          OnStop(msg.stop());
        }
      }
      absl::MutexLock lock(&mu_);
      broken = true;
    });
    for (;;) {
      v1::WorkerMessage out;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return stopping_ || broken || !outbox_.empty();
        };
        mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(1));
        if (stopping_ || broken) {
          break;
        }
        if (outbox_.empty()) {
          continue;
        }
        out = std::move(outbox_.front());
        outbox_.pop_front();
      }
      if (!stream->Write(out)) {
        // Keep the message for the next stream.
        absl::MutexLock lock(&mu_);
        if (!out.has_heartbeat()) {
          outbox_.push_front(std::move(out));
        }
        break;
      }
      if (out.has_leaving()) {
        // Goodbye said: half-close and let the orchestrator end the stream,
        // so the message is not cut off by our own cancel.
        stream->WritesDone();
        absl::MutexLock lock(&mu_);
        auto ended = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return broken || stopping_; };
        mu_.AwaitWithTimeout(absl::Condition(&ended), absl::Seconds(2));
        left_ = true;
        break;
      }
    }
    bool ended_by_server = false;
    {
      absl::MutexLock lock(&mu_);
      ended_by_server = broken;
    }
    // A stream the orchestrator ended carries its status (a refusal says
    // why); cancelling it now would replace that with CANCELLED.
    if (!ended_by_server) {
      ctx.TryCancel();
    }
    reader.join();
  }
  grpc::Status status = stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    attach_ctx_ = nullptr;
  }
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
      status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    LLMLOAD_LOG(kError,
                "The orchestrator refused this worker: it needs the join token "
                "(--join_token_file or LLMLOAD_JOIN_TOKEN); retrying.")
        .Kv("address", config_.orchestrator)
        .Kv("error", status.error_message());
  } else if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    LLMLOAD_LOG(kWarn, "Orchestrator link lost; reconnecting.")
        .Kv("address", config_.orchestrator)
        .Kv("error", status.error_message());
  }
  return attached;
}

void Worker::SendToOrchestrator(v1::WorkerMessage msg) {
  absl::MutexLock lock(&mu_);
  // Heartbeats are not worth queueing while detached.
  if (msg.has_heartbeat() && !attached_) {
    return;
  }
  outbox_.push_back(std::move(msg));
}

void Worker::OnAssignment(const v1::ShardAssignment& a) {
  absl::MutexLock lock(&mu_);
  const ShardKey key(a.run_id(), a.epoch());
  if (draining_ && !runs_.contains(key) && !finished_.contains(key)) {
    // Leaving: hand it back at once.
    outbox_.push_back({});
    v1::ShardUpdate* u = outbox_.back().mutable_shard_update();
    u->set_run_id(a.run_id());
    u->set_epoch(a.epoch());
    u->set_state(v1::SHARD_DRAINED);
    u->set_error("the worker is shutting down; the shard was never started");
    return;
  }
  // Sent again (after a re-attach): answer with what the shard is doing;
  // never run it twice.
  if (auto it = runs_.find(key); it != runs_.end()) {
    if (!it->second.final_enqueued) {
      outbox_.push_back({});
      *outbox_.back().mutable_shard_update() = MakeUpdate(key, it->second, v1::SHARD_RUNNING);
    }
    return;
  }
  if (auto it = finished_.find(key); it != finished_.end()) {
    outbox_.push_back({});
    *outbox_.back().mutable_shard_update() = it->second;
    return;
  }
  if (!starting_.insert(key).second || stopping_) {
    return;
  }
  setup_queue_.push_back(a);
}

void Worker::SetupLoop() {
  for (;;) {
    v1::ShardAssignment a;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || !setup_queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) {
        return;
      }
      a = std::move(setup_queue_.front());
      setup_queue_.pop_front();
    }
    StartShard(a);
  }
}

void Worker::StartShard(const v1::ShardAssignment& a) {
  MaybeCrashForTest(a);
  MaybeStallLoopsForTest(loops_);
  // Resolves the target and builds the TLS context: may block, on this
  // thread only.
  auto runner = ShardRunner::Create(loops_, a);
  const ShardKey key(a.run_id(), a.epoch());
  v1::WorkerMessage msg;
  absl::MutexLock lock(&mu_);
  starting_.erase(key);
  if (!runner.ok()) {
    LLMLOAD_LOG(kError, "Cannot run the assigned shard.")
        .Kv("run_id", a.run_id())
        .Kv("epoch", a.epoch())
        .Kv("error", runner.status().message());
    auto* u = msg.mutable_shard_update();
    u->set_run_id(a.run_id());
    u->set_epoch(a.epoch());
    u->set_state(v1::SHARD_FAILED);
    u->set_error(std::string(runner.status().message()));
    outbox_.push_back(std::move(msg));
    return;
  }
  if (draining_) {
    auto* u = msg.mutable_shard_update();
    u->set_run_id(a.run_id());
    u->set_epoch(a.epoch());
    u->set_state(v1::SHARD_DRAINED);
    u->set_error("the worker is shutting down; the shard was never started");
    outbox_.push_back(std::move(msg));
    return;
  }
  RunState& rs = runs_[key];
  rs.runner = *std::move(runner);
  rs.protocol = v1::Protocol_Name(a.spec().target().protocol());
  rs.interval_start_us = NowUnixMicros();
  rs.runner->Start();
  LLMLOAD_LOG(kInfo, "Shard started.")
      .Kv("run_id", a.run_id())
      .Kv("epoch", a.epoch())
      .Kv("client_begin", a.client_begin())
      .Kv("clients", a.client_count())
      .Kv("max_concurrent", a.max_concurrent())
      .Kv("moved", a.clients_size() > 0 || a.has_load_offset() ? "true" : "false");
  *msg.mutable_shard_update() = MakeUpdate(key, rs, v1::SHARD_RUNNING);
  outbox_.push_back(std::move(msg));
}

void Worker::OnStop(const v1::StopShard& stop) {
  absl::MutexLock lock(&mu_);
  for (auto& [key, rs] : runs_) {
    if (key.first != stop.run_id() || (stop.epoch() != 0 && key.second != stop.epoch())) {
      continue;
    }
    LLMLOAD_LOG(kInfo, "Stopping shard.")
        .Kv("run_id", key.first)
        .Kv("epoch", key.second)
        .Kv("reason", stop.reason());
    rs.final_state = v1::SHARD_CANCELLED;
    rs.runner->Cancel();
  }
}

v1::ShardUpdate Worker::MakeUpdate(const ShardKey& key, RunState& rs, v1::ShardState state) {
  const std::string& run_id = key.first;
  v1::ShardUpdate u;
  u.set_run_id(run_id);
  u.set_epoch(key.second);
  u.set_state(state);
  u.set_error(rs.error);
  auto* p = u.mutable_progress();
  const metrics::MetricSet& t = rs.totals_counters;
  p->set_cycles_done(static_cast<int64_t>(t.Get(v1::CYCLES)));
  p->set_cycles_total(rs.runner ? rs.runner->cycles_total() : 0);
  p->set_requests_ok(static_cast<int64_t>(t.Get(v1::REQUESTS_OK)));
  p->set_requests_failed(static_cast<int64_t>(metrics::FailedRequests(t)));
  p->set_tokens(static_cast<int64_t>(t.Get(v1::TOKENS)));
  p->set_active_sessions(rs.runner ? rs.runner->active_sessions() : 0);
  p->set_sessions_opened(static_cast<int64_t>(t.Get(v1::SESSIONS_OPENED)));
  p->set_sessions_failed(static_cast<int64_t>(t.Get(v1::SESSIONS_FAILED)));
  const BatchShipper::Rejections rejected = shipper_.Rejected(run_id, key.second);
  p->set_batches_rejected(static_cast<int64_t>(rejected.batches));
  p->set_requests_rejected(static_cast<int64_t>(rejected.requests));
  p->set_samples_rejected(static_cast<int64_t>(rejected.samples));
  p->set_rejection_reason(rejected.reason);
  u.set_acked_sequence(shipper_.AckedSequence(run_id, key.second));
  u.set_last_sequence(rs.last_sequence);
  u.set_last_batch_end_us(rs.last_batch_end_us);
  return u;
}

// ---- control: batch cuts, progress, heartbeats ----

void Worker::ControlLoop() {
  absl::Time next_cut = absl::Now() + config_.batch_interval;
  absl::Time next_heartbeat = absl::Now();
  for (;;) {
    absl::Duration heartbeat_interval;
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
      // Wake often enough to notice finished shards and acks promptly.
      mu_.AwaitWithTimeout(absl::Condition(&stop), absl::Milliseconds(50));
      if (stopping_) {
        return;
      }
      heartbeat_interval = heartbeat_interval_;
    }
    const absl::Time now = absl::Now();
    const bool interval_cut = now >= next_cut;
    if (interval_cut) {
      next_cut = now + config_.batch_interval;
    }
    const bool heartbeat_due = now >= next_heartbeat;
    if (heartbeat_due) {
      next_heartbeat = now + heartbeat_interval;
    }
    Tick(interval_cut, heartbeat_due);
  }
}

void Worker::Tick(bool interval_cut, bool heartbeat_due) {
  // Shards whose cut is due: every shard each interval, and a finished one
  // at once (its final batch need not wait for the interval). A shard the
  // collector fenced stops now: its work moved on to another worker.
  std::vector<std::pair<ShardKey, ShardRunner*>> to_cut;
  {
    absl::MutexLock lock(&mu_);
    const bool lease_expired = attached_ && absl::Now() > lease_until_;
    for (auto& [key, rs] : runs_) {
      if (rs.final_enqueued) {
        continue;
      }
      if (lease_expired && !rs.runner->cancelled()) {
        LLMLOAD_LOG(kWarn, "Lease expired: no answer from the orchestrator; stopping the shard "
                           "(its work may have moved to another worker).")
            .Kv("run_id", key.first)
            .Kv("epoch", key.second)
            .Kv("lease", absl::FormatDuration(lease_length_));
        rs.final_state = v1::SHARD_CANCELLED;
        rs.error = absl::StrCat("lease expired: no answer from the orchestrator for ",
                                absl::FormatDuration(lease_length_));
        rs.runner->Cancel();
      }
      if (!rs.runner->cancelled() && shipper_.Fenced(key.first, key.second)) {
        LLMLOAD_LOG(kWarn, "Shard fenced by the collector; stopping it.")
            .Kv("run_id", key.first)
            .Kv("epoch", key.second);
        rs.final_state = v1::SHARD_CANCELLED;
        rs.error = "fenced: the worker was declared lost and the shard's work moved on";
        rs.runner->Cancel();
      }
      if (interval_cut || rs.runner->Finished()) {
        to_cut.emplace_back(key, rs.runner.get());
      }
    }
  }
  // Cutting blocks on the loops; do it without holding mu_ (loops never take it).
  for (auto& [key, runner] : to_cut) {
    const bool finished = runner->Finished();
    metrics::MetricSet delta;
    ShardRunner::CutExtras cut;
    runner->CutInto(delta, &cut);
    std::vector<v1::RequestRecord>& records = cut.records;
    uint64_t records_dropped = cut.records_dropped;
    if (records.size() > kMaxRecordsPerBatch) {
      records_dropped += records.size() - kMaxRecordsPerBatch;
      records.resize(kMaxRecordsPerBatch);
    }
    v1::SampleBatch batch;
    batch.set_run_id(key.first);
    batch.set_epoch(key.second);
    batch.set_worker_id(config_.worker_id);
    for (v1::ClientCycles& c : cut.clients) {
      *batch.add_clients() = std::move(c);
    }
    const int64_t now_us = NowUnixMicros();
    {
      absl::MutexLock lock(&mu_);
      RunState& rs = runs_[key];
      batch.set_interval_start_us(rs.interval_start_us);
      batch.set_interval_end_us(now_us);
      batch.set_active_us(now_us - rs.interval_start_us);
      rs.interval_start_us = now_us;
      batch.set_active_sessions(runner->active_sessions());
      batch.set_final(finished);
      batch.set_protocol(rs.protocol);
      batch.set_worker_cpu_percent(last_cpu_percent_);
      batch.set_worker_loop_lag_ms(last_lag_ms_);
      delta.AppendTo(batch);
      for (v1::RequestRecord& r : records) {
        *batch.add_records() = std::move(r);
      }
      batch.set_records_dropped(records_dropped);
      for (v1::Counter c : metrics::AllCounters()) {
        rs.totals_counters.Add(c, delta.Get(c));
      }
      if (finished) {
        rs.final_enqueued = true;
        if (runner->cancelled() && rs.final_state == v1::SHARD_DONE) {
          rs.final_state = v1::SHARD_CANCELLED;
        }
        if (runner->drained() && rs.final_state == v1::SHARD_DONE) {
          rs.final_state = v1::SHARD_DRAINED;
        }
      }
      rs.last_sequence = shipper_.Enqueue(std::move(batch));
      rs.last_batch_end_us = now_us;
    }
  }
  // Progress, terminal reports and heartbeat.
  absl::MutexLock lock(&mu_);
  std::vector<ShardKey> done;
  for (auto& [key, rs] : runs_) {
    if (rs.final_enqueued && shipper_.AllAcked(key.first, key.second)) {
      v1::WorkerMessage msg;
      *msg.mutable_shard_update() = MakeUpdate(key, rs, rs.final_state);
      const uint64_t dropped = shipper_.DroppedBatches(key.first, key.second);
      if (dropped > 0) {
        msg.mutable_shard_update()->set_error(
            absl::StrCat(dropped, " sample batches were dropped because the collector was "
                                  "unreachable for too long"));
      }
      finished_[key] = msg.shard_update();
      finished_order_.push_back(key);
      if (finished_order_.size() > kMaxFinished) {
        finished_.erase(finished_order_.front());
        finished_order_.pop_front();
      }
      outbox_.push_back(std::move(msg));
      LLMLOAD_LOG(kInfo, "Shard finished.")
          .Kv("run_id", key.first)
          .Kv("epoch", key.second)
          .Kv("state", v1::ShardState_Name(rs.final_state))
          .Kv("requests_ok", rs.totals_counters.Get(v1::REQUESTS_OK))
          .Kv("tokens", rs.totals_counters.Get(v1::TOKENS))
          .Kv("batches_rejected", msg.shard_update().progress().batches_rejected());
      done.push_back(key);
    } else if (interval_cut && !rs.final_enqueued) {
      v1::WorkerMessage msg;
      *msg.mutable_shard_update() = MakeUpdate(key, rs, v1::SHARD_RUNNING);
      outbox_.push_back(std::move(msg));
    }
  }
  for (const ShardKey& key : done) {
    runs_.erase(key);
    shipper_.ForgetRun(key.first, key.second);
  }
  if (heartbeat_due && attached_) {
    const double cpu = ProcessCpuSeconds();
    const absl::Time now = absl::Now();
    const double wall = absl::ToDoubleSeconds(now - last_cpu_at_);
    if (wall > 0.2) {
      last_cpu_percent_ = 100.0 * (cpu - last_cpu_seconds_) / wall;
      last_cpu_seconds_ = cpu;
      last_cpu_at_ = now;
    }
    last_lag_ms_ = loops_.TakeMaxLagMs();
    int64_t active = 0;
    for (auto& [id, rs] : runs_) {
      active += rs.runner->active_sessions();
    }
    v1::WorkerMessage hb;
    hb.mutable_heartbeat()->set_sequence(++heartbeat_sequence_);
    heartbeats_sent_.emplace_back(heartbeat_sequence_, now);
    while (heartbeats_sent_.size() > 64) {
      heartbeats_sent_.pop_front();
    }
    hb.mutable_heartbeat()->set_active_sessions(active);
    hb.mutable_heartbeat()->set_cpu_percent(last_cpu_percent_);
    hb.mutable_heartbeat()->set_loop_lag_ms(last_lag_ms_);
    outbox_.push_back(std::move(hb));
    if (last_lag_ms_ > 50 || last_cpu_percent_ > 90.0 * loops_.size()) {
      LLMLOAD_LOG(kWarn, "Worker is saturated; the load generator may be the limit.")
          .Kv("loop_lag_ms", last_lag_ms_)
          .Kv("cpu_percent", last_cpu_percent_);
    }
  }
}

}  // namespace llmload::worker
