// File: interrupt.h
//
// Ctrl-C in the CLI. A signal thread takes SIGINT and SIGTERM and raises an
// InterruptLatch; while a run is followed, an InterruptWatcher acts on the
// latch (stops the run) on a thread of its own.
//
// The watcher is scoped: its destructor wakes and joins its thread, so what
// the action touches (the orchestrator stub) need only outlive the watcher,
// and an interrupt that comes after the watcher is gone never reaches it.
//
//   InterruptWatcher stop(latch, [&] { (void)stub->StopRun(...); });
//   return FollowRun(stub, ...);  // `stop` is joined before `stub` dies

#pragma once

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace llmload::cli {

class InterruptLatch {
 public:
  // Counts one interrupt and wakes the watchers; returns the count so far.
  int Raise() ABSL_LOCKS_EXCLUDED(mu_);
  int count() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class InterruptWatcher;
  mutable absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};

class InterruptWatcher {
 public:
  // Runs `on_interrupt` once, on the watcher's own thread, if `latch` is
  // raised while the watcher lives (or was raised before). `latch` must
  // outlive the watcher.
  InterruptWatcher(InterruptLatch& latch, std::function<void()> on_interrupt);
  // Returns once `on_interrupt` has finished, or when it will never run.
  ~InterruptWatcher();

  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

 private:
  bool ShouldWake() const ABSL_SHARED_LOCKS_REQUIRED(latch_.mu_);

  InterruptLatch& latch_;
  std::function<void()> on_interrupt_;
  bool stopping_ ABSL_GUARDED_BY(latch_.mu_) = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace llmload::cli
