// File: fake_worker.h
//
// A scripted worker for orchestrator tests: attaches over real gRPC with the
// synchronous client API, collects everything the orchestrator sends, and
// lets the test send hello, heartbeats and shard updates. Header-only so the
// integration test (which links only the shared test libraries) can use it.
//
//   FakeWorker w(channel, "w1", /*capacity=*/10);
//   ASSERT_TRUE(w.Attach());
//   auto assign = w.NextAssign(absl::Seconds(5));
//   w.Update(assign->run_id(), v1::SHARD_DONE, /*cycles_done=*/10);
//
// Thread-safe: a reader thread fills the inbox; writes are serialized.

#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "tests/testing/mono_clock.h"

namespace llmload::testing_util {

class FakeWorker {
 public:
  FakeWorker(std::shared_ptr<grpc::Channel> channel, std::string id, int32_t capacity)
      : stub_(v1::Orchestrator::NewStub(std::move(channel))),
        id_(std::move(id)),
        capacity_(capacity) {}
  ~FakeWorker() { Disconnect(); }
  FakeWorker(const FakeWorker&) = delete;
  FakeWorker& operator=(const FakeWorker&) = delete;

  const std::string& id() const { return id_; }

  // What the hello says about the worker's process (before Open/Attach).
  void SetProcess(int32_t pid, uint64_t start_ticks, std::string host_id) {
    pid_ = pid;
    pid_start_ticks_ = start_ticks;
    host_id_ = std::move(host_id);
  }

  // Opens the stream and sends hello (without waiting for the answer).
  void Open() {
    stream_ = stub_->Attach(&context_);
    reader_ = std::thread([this] { ReadLoop(); });
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(id_);
    hello.mutable_hello()->set_capacity(capacity_);
    hello.mutable_hello()->set_threads(2);
    hello.mutable_hello()->set_version("fake-1");
    hello.mutable_hello()->set_pid(pid_);
    hello.mutable_hello()->set_pid_start_ticks(pid_start_ticks_);
    hello.mutable_hello()->set_host_id(host_id_);
    Send(hello);
  }

  // Open() and wait for `accepted`; then heartbeats every `heartbeat` (zero:
  // none) until StopHeartbeats() or Disconnect().
  bool Attach(absl::Duration heartbeat = absl::Milliseconds(100),
              absl::Duration timeout = absl::Seconds(5)) {
    Open();
    std::optional<v1::OrchestratorMessage> m = Next(timeout);
    if (!m.has_value() || !m->has_accepted() || m->accepted().worker_id() != id_) {
      return false;
    }
    heartbeat_interval_ms_ = m->accepted().heartbeat_interval_ms();
    if (heartbeat > absl::ZeroDuration()) {
      heartbeats_ = std::thread([this, heartbeat] {
        while (!stop_heartbeats_.WaitForNotificationWithTimeout(heartbeat)) {
          v1::WorkerMessage hb;
          hb.mutable_heartbeat()->set_active_sessions(3);
          hb.mutable_heartbeat()->set_cpu_percent(12.5);
          hb.mutable_heartbeat()->set_loop_lag_ms(0.5);
          Send(hb);
        }
      });
    }
    return true;
  }

  uint32_t heartbeat_interval_ms() const { return heartbeat_interval_ms_; }

  bool Send(const v1::WorkerMessage& message) {
    absl::MutexLock lock(&write_mu_);
    return stream_ != nullptr && !writes_done_ && stream_->Write(message);
  }

  bool Update(const std::string& run_id, v1::ShardState state, int64_t cycles_done,
              const std::string& error = "") {
    v1::WorkerMessage m;
    v1::ShardUpdate* u = m.mutable_shard_update();
    u->set_run_id(run_id);
    u->set_state(state);
    u->mutable_progress()->set_cycles_done(cycles_done);
    u->mutable_progress()->set_requests_ok(cycles_done);
    u->mutable_progress()->set_tokens(cycles_done * 10);
    u->set_error(error);
    return Send(m);
  }

  // The next message, or nullopt after `timeout` or once the stream ended.
  std::optional<v1::OrchestratorMessage> Next(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !inbox_.empty() || ended_; };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    if (inbox_.empty()) {
      return std::nullopt;
    }
    v1::OrchestratorMessage m = std::move(inbox_.front());
    inbox_.pop_front();
    return m;
  }

  // Skips other messages until an assignment (or stop) arrives.
  std::optional<v1::ShardAssignment> NextAssign(absl::Duration timeout) {
    const absl::Time deadline = testing_util::MonoNow() + timeout;
    while (testing_util::MonoNow() < deadline) {
      std::optional<v1::OrchestratorMessage> m = Next(deadline - testing_util::MonoNow());
      if (m.has_value() && m->has_assign()) {
        return m->assign();
      }
    }
    return std::nullopt;
  }
  std::optional<v1::StopShard> NextStop(absl::Duration timeout) {
    const absl::Time deadline = testing_util::MonoNow() + timeout;
    while (testing_util::MonoNow() < deadline) {
      std::optional<v1::OrchestratorMessage> m = Next(deadline - testing_util::MonoNow());
      if (m.has_value() && m->has_stop()) {
        return m->stop();
      }
    }
    return std::nullopt;
  }

  // Waits for the orchestrator to end the stream; returns its status.
  std::optional<grpc::Status> WaitEnded(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ended = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return finished_; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ended), timeout)) {
      return std::nullopt;
    }
    return status_;
  }

  void StopHeartbeats() {
    if (!stop_heartbeats_.HasBeenNotified()) {
      stop_heartbeats_.Notify();
    }
    if (heartbeats_.joinable()) {
      heartbeats_.join();
    }
  }

  // Ends the stream from the worker side (half-close, like a clean exit).
  void CloseStream() {
    StopHeartbeats();
    absl::MutexLock lock(&write_mu_);
    if (stream_ != nullptr && !writes_done_) {
      writes_done_ = true;
      stream_->WritesDone();
    }
  }

  // Tears the stream down abruptly (like a crash) and joins the threads.
  void Disconnect() {
    StopHeartbeats();
    if (stream_ != nullptr) {
      context_.TryCancel();
    }
    if (reader_.joinable()) {
      reader_.join();
    }
  }

 private:
  void ReadLoop() {
    v1::OrchestratorMessage m;
    while (stream_->Read(&m)) {
      absl::MutexLock lock(&mu_);
      inbox_.push_back(m);
    }
    {
      absl::MutexLock lock(&mu_);
      ended_ = true;
    }
    grpc::Status status = stream_->Finish();
    absl::MutexLock lock(&mu_);
    status_ = status;
    finished_ = true;
  }

  std::unique_ptr<v1::Orchestrator::Stub> stub_;
  const std::string id_;
  const int32_t capacity_;
  int32_t pid_ = 0;
  uint64_t pid_start_ticks_ = 0;
  std::string host_id_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WorkerMessage, v1::OrchestratorMessage>> stream_;
  std::thread reader_;
  std::thread heartbeats_;
  absl::Notification stop_heartbeats_;
  uint32_t heartbeat_interval_ms_ = 0;

  absl::Mutex write_mu_;
  bool writes_done_ ABSL_GUARDED_BY(write_mu_) = false;

  absl::Mutex mu_;
  std::deque<v1::OrchestratorMessage> inbox_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace llmload::testing_util
