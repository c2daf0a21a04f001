// File: stream_reactors.h
//
// The orchestrator's gRPC stream plumbing: the Attach reactor (workers'
// bidi stream), the WatchRun reactor, a reactor that finishes at once, and
// a unary reactor that counts calls in flight for shutdown.
//
// The service never holds a reactor pointer directly: it holds a shared
// link whose mutex guards the pointer, and the reactor clears it in OnDone
// before deleting itself. Sending on a link whose stream is gone does
// nothing.
//
// Each stream reactor keeps one write in flight and queues the rest (Attach:
// every message; WatchRun: only the newest update), calls Finish once on
// every path (deferred until the write in flight completes), and deletes
// itself only in OnDone.
//
// Lock order: a link's mutex -> its reactor's mutex. Reactors never call
// their handler while holding their own mutex.

#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "llmload/v1/orchestrator.grpc.pb.h"

namespace llmload::orchestrator {

// What the Attach reactor reports to (the service).
class AttachHandler {
 public:
  virtual ~AttachHandler() = default;
  // A message read from stream `stream`; a non-OK status ends the stream.
  virtual absl::Status OnAttachMessage(uint64_t stream, const v1::WorkerMessage& message) = 0;
  // The stream ended (read failed, or a message was refused).
  virtual void OnAttachClosed(uint64_t stream) = 0;
  // The reactor is about to be deleted: forget its link.
  virtual void OnAttachDone(uint64_t stream) = 0;
};

class WatchLink;

class WatchHandler {
 public:
  virtual ~WatchHandler() = default;
  virtual void OnWatchDone(const std::string& run_id, const WatchLink* link) = 0;
};

class CallCounter {
 public:
  virtual ~CallCounter() = default;
  virtual void CallStarted() = 0;
  virtual void CallDone() = 0;
};

class AttachReactor;
class WatchReactor;

class AttachLink {
 public:
  explicit AttachLink(AttachReactor* reactor) : reactor_(reactor) {}
  void Send(const v1::OrchestratorMessage& message) ABSL_LOCKS_EXCLUDED(mu_);
  void Close(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void Detach() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  AttachReactor* reactor_ ABSL_GUARDED_BY(mu_);
};

class WatchLink {
 public:
  explicit WatchLink(WatchReactor* reactor) : reactor_(reactor) {}
  void Push(const v1::RunUpdate& update) ABSL_LOCKS_EXCLUDED(mu_);
  void Close(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void Detach() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  WatchReactor* reactor_ ABSL_GUARDED_BY(mu_);
};

// A unary reactor that counts itself in and out, so shutdown can wait for
// the unary calls in flight (and only for them).
class CountedUnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit CountedUnaryReactor(CallCounter* counter) : counter_(counter) {
    counter_->CallStarted();
  }
  void OnDone() override {
    counter_->CallDone();
    delete this;
  }

 private:
  CallCounter* const counter_;
};

class AttachReactor final
    : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::OrchestratorMessage> {
 public:
  // `stream` identifies it to the handler. Start() begins reading (once the
  // handler knows the link).
  AttachReactor(AttachHandler* handler, uint64_t stream);
  void Start() { StartRead(&in_); }

  const std::shared_ptr<AttachLink>& link() const { return link_; }
  uint64_t stream() const { return stream_; }

  void Enqueue(const v1::OrchestratorMessage& message) ABSL_LOCKS_EXCLUDED(mu_);
  void RequestFinish(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  AttachHandler* const handler_;
  const uint64_t stream_;
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
  WatchReactor(WatchHandler* handler, std::string run_id);

  const std::shared_ptr<WatchLink>& link() const { return link_; }

  void Push(const v1::RunUpdate& update) ABSL_LOCKS_EXCLUDED(mu_);
  void RequestFinish(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  WatchHandler* const handler_;
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

}  // namespace llmload::orchestrator
