#include "tools/llmload/interrupt.h"

#include <atomic>
#include <memory>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace llmload::cli {
namespace {

TEST(InterruptWatcherTest, ActsOnceWhenRaisedWhileItLives) {
  InterruptLatch latch;
  std::atomic<int> calls{0};
  absl::Notification acted;
  {
    InterruptWatcher watcher(latch, [&] {
      ++calls;
      acted.Notify();
    });
    EXPECT_EQ(latch.Raise(), 1);
    EXPECT_EQ(latch.Raise(), 2);
    ASSERT_TRUE(acted.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
  EXPECT_EQ(calls.load(), 1);
}

TEST(InterruptWatcherTest, AnEarlierInterruptIsActedOn) {
  InterruptLatch latch;
  latch.Raise();
  absl::Notification acted;
  InterruptWatcher watcher(latch, [&] { acted.Notify(); });
  EXPECT_TRUE(acted.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(InterruptWatcherTest, NothingHappensWithoutAnInterrupt) {
  InterruptLatch latch;
  std::atomic<int> calls{0};
  { InterruptWatcher watcher(latch, [&] { ++calls; }); }
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(latch.count(), 0);
}

// The CLI's watcher used to be a detached thread holding the orchestrator
// stub by raw pointer: an interrupt after the stub was gone reached it. Now
// nothing the action touches is used once the watcher is destroyed (ASan
// reports the heap use after free if it is).
TEST(InterruptWatcherTest, AnInterruptAfterTheWatcherIsGoneTouchesNothing) {
  InterruptLatch latch;
  auto stub = std::make_unique<int>(0);
  {
    int* raw = stub.get();
    InterruptWatcher watcher(latch, [raw] { ++*raw; });
  }
  stub.reset();
  latch.Raise();
  // A stray thread would run now; give it the time to.
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(latch.count(), 1);
}

TEST(InterruptWatcherTest, DestructorWaitsForTheActionToFinish) {
  InterruptLatch latch;
  auto stub = std::make_unique<std::atomic<int>>(0);
  absl::Notification started;
  {
    InterruptWatcher watcher(latch, [&started, raw = stub.get()] {
      started.Notify();
      absl::SleepFor(absl::Milliseconds(200));  // a StopRun RPC in flight
      raw->store(1);
    });
    latch.Raise();
    ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
  // The watcher is gone, so the action has finished with the stub.
  EXPECT_EQ(stub->load(), 1);
  stub.reset();
}

}  // namespace
}  // namespace llmload::cli
