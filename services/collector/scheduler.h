// File: scheduler.h
//
// A timer thread: runs a task at (or soon after) a given time. gRPC reactors
// use it to wake up later without blocking a reaction; tasks run on the
// scheduler's thread one at a time, so they must be quick and must not block.
// Times are on the monotonic clock of Scheduler::Now(), so a step of the
// wall clock neither stalls nor hurries a task.
//
//   Scheduler scheduler;
//   Scheduler::TaskId id = scheduler.RunAt(Scheduler::Now() + absl::Seconds(1), [] { ... });
//   if (scheduler.Cancel(id)) { /* it will not run */ }
//
// Thread-safe.

#pragma once

#include <cstdint>
#include <map>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace llmload::collector {

class Scheduler {
 public:
  using TaskId = uint64_t;

  Scheduler();
  ~Scheduler();  // Stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The monotonic clock RunAt's times are read on (steady_clock as an
  // absl::Time; only differences between its values mean anything).
  static absl::Time Now();

  // Runs `task` on the scheduler thread once `when` (a Now() time) has
  // passed. After Stop() the task is dropped (and 0 returned).
  TaskId RunAt(absl::Time when, absl::AnyInvocable<void()> task) ABSL_LOCKS_EXCLUDED(mu_);

  // True when the task was removed before it started: it will never run.
  // False when it is running, has run, or never existed.
  bool Cancel(TaskId id) ABSL_LOCKS_EXCLUDED(mu_);

  // Drops pending tasks without running them and joins the thread. Call it
  // only once nothing depends on a pending task (e.g. after the gRPC server
  // has shut down).
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  // Ordered by (time, id): equal times run in submission order.
  std::map<std::pair<absl::Time, TaskId>, absl::AnyInvocable<void()>> tasks_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TaskId, absl::Time> when_ ABSL_GUARDED_BY(mu_);
  TaskId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace llmload::collector
