#include "tools/llmload/interrupt.h"

#include <utility>

namespace llmload::cli {

int InterruptLatch::Raise() {
  absl::MutexLock lock(&mu_);
  return ++count_;
}

int InterruptLatch::count() const {
  absl::MutexLock lock(&mu_);
  return count_;
}

InterruptWatcher::InterruptWatcher(InterruptLatch& latch, std::function<void()> on_interrupt)
    : latch_(latch), on_interrupt_(std::move(on_interrupt)), thread_([this] {
        {
          absl::MutexLock lock(&latch_.mu_);
          latch_.mu_.Await(absl::Condition(this, &InterruptWatcher::ShouldWake));
          // The owner is leaving: whatever the action would touch may be
          // about to go, so an interrupt that comes now is not acted on.
          if (stopping_) {
            return;
          }
        }
        on_interrupt_();
      }) {}

InterruptWatcher::~InterruptWatcher() {
  {
    absl::MutexLock lock(&latch_.mu_);
    stopping_ = true;
  }
  thread_.join();
}

bool InterruptWatcher::ShouldWake() const { return stopping_ || latch_.count_ > 0; }

}  // namespace llmload::cli
