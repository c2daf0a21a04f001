#include "services/collector/scheduler.h"

#include <vector>

#include "gtest/gtest.h"

namespace llmload::collector {
namespace {

class Recorder {
 public:
  absl::AnyInvocable<void()> Task(int id) {
    return [this, id] {
      absl::MutexLock lock(&mu_);
      ran_.push_back(id);
    };
  }
  bool WaitFor(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return ran_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
  std::vector<int> ran() {
    absl::MutexLock lock(&mu_);
    return ran_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int> ran_ ABSL_GUARDED_BY(mu_);
};

TEST(SchedulerTest, RunsTasksInTimeOrder) {
  Scheduler scheduler;
  Recorder rec;
  const absl::Time now = Scheduler::Now();
  scheduler.RunAt(now + absl::Milliseconds(60), rec.Task(3));
  scheduler.RunAt(now + absl::Milliseconds(20), rec.Task(2));
  scheduler.RunAt(now - absl::Seconds(1), rec.Task(1));  // already due
  ASSERT_TRUE(rec.WaitFor(3));
  EXPECT_EQ(rec.ran(), (std::vector<int>{1, 2, 3}));
  EXPECT_GE(Scheduler::Now(), now + absl::Milliseconds(60));
}

TEST(SchedulerTest, CancelledTaskNeverRuns) {
  Scheduler scheduler;
  Recorder rec;
  const absl::Time now = Scheduler::Now();
  Scheduler::TaskId cancelled = scheduler.RunAt(now + absl::Milliseconds(20), rec.Task(1));
  scheduler.RunAt(now + absl::Milliseconds(50), rec.Task(2));
  EXPECT_TRUE(scheduler.Cancel(cancelled));
  EXPECT_FALSE(scheduler.Cancel(cancelled));
  ASSERT_TRUE(rec.WaitFor(1));
  EXPECT_EQ(rec.ran(), (std::vector<int>{2}));
}

TEST(SchedulerTest, CancelAfterRunReturnsFalse) {
  Scheduler scheduler;
  Recorder rec;
  Scheduler::TaskId id = scheduler.RunAt(Scheduler::Now(), rec.Task(1));
  ASSERT_TRUE(rec.WaitFor(1));
  EXPECT_FALSE(scheduler.Cancel(id));
}

TEST(SchedulerTest, StopDropsPendingTasksAndRefusesNewOnes) {
  Recorder rec;
  Scheduler scheduler;
  scheduler.RunAt(Scheduler::Now() + absl::Hours(1), rec.Task(1));
  scheduler.Stop();
  EXPECT_EQ(scheduler.RunAt(Scheduler::Now(), rec.Task(2)), 0u);
  EXPECT_TRUE(rec.ran().empty());
}

}  // namespace
}  // namespace llmload::collector
