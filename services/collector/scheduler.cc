#include "services/collector/scheduler.h"

#include <chrono>

namespace llmload::collector {

absl::Time Scheduler::Now() {
  return absl::UnixEpoch() + absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

Scheduler::Scheduler() : thread_([this] { Loop(); }) {}

Scheduler::~Scheduler() { Stop(); }

Scheduler::TaskId Scheduler::RunAt(absl::Time when, absl::AnyInvocable<void()> task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return 0;
  }
  const TaskId id = next_id_++;
  tasks_.emplace(std::make_pair(when, id), std::move(task));
  when_.emplace(id, when);
  return id;
}

bool Scheduler::Cancel(TaskId id) {
  absl::MutexLock lock(&mu_);
  auto it = when_.find(id);
  if (it == when_.end()) {
    return false;
  }
  tasks_.erase(std::make_pair(it->second, id));
  when_.erase(it);
  return true;
}

void Scheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  decltype(tasks_) dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped.swap(tasks_);
    when_.clear();
  }
  // `dropped` destroys the tasks outside the lock.
}

void Scheduler::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (tasks_.empty()) {
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !tasks_.empty();
      };
      mu_.Await(absl::Condition(&woken));
      continue;
    }
    auto first = tasks_.begin();
    const auto first_key = first->first;
    if (const absl::Time now = Now(); now < first_key.first) {
      // Wakes early when a sooner task arrives, the first one is cancelled,
      // or on Stop. A timeout, not a deadline: the mutex's deadlines are on
      // the wall clock.
      auto changed = [this, first_key]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || tasks_.empty() || tasks_.begin()->first != first_key;
      };
      mu_.AwaitWithTimeout(absl::Condition(&changed), first_key.first - now);
      continue;
    }
    absl::AnyInvocable<void()> task = std::move(first->second);
    when_.erase(first->first.second);
    tasks_.erase(first);
    mu_.Unlock();
    task();
    task = nullptr;  // destroy captures outside the lock too
    mu_.Lock();
  }
}

}  // namespace llmload::collector
