// File: token_gaps.h
//
// The emulator's own record of the gaps it left between the tokens of each
// response: the ground truth a load generator's inter-token latency is
// judged against. A gap is measured between the moments two consecutive
// tokens of one response were handed to the connection (the WebSocket
// outbox, the HTTP chunked body, a Centrifugo channel's subscribers), on the
// monotonic clock, so it includes the emulator's own lateness and nothing
// of the network or the client. Kept in llmload's histogram (microseconds,
// 1/2048 relative resolution), so its percentiles compare bucket for bucket
// with a run's merged ITL.
//
// Thread-safety: thread-safe. One mutex per protocol, held for one Record;
// the event loops of one process are few, so it is rarely contended.

#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "lib/histogram/histogram.h"

namespace llmload::emulator {

class TokenGaps {
 public:
  // Protocol families it can hold (the emulator's Protocol values).
  static constexpr size_t kProtocols = 16;

  void Record(size_t protocol, std::chrono::nanoseconds gap) {
    if (protocol >= kProtocols) {
      return;
    }
    const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(gap).count();
    Slot& slot = slots_[protocol];
    absl::MutexLock lock(&slot.mu);
    if (slot.gaps == nullptr) {
      slot.gaps = std::make_unique<histogram::Histogram>();  // 200 KB: only when used
    }
    slot.gaps->Record(us < 0 ? 0 : static_cast<uint64_t>(us));
  }

  // A copy of the gaps recorded so far for `protocol` (empty if none).
  histogram::Histogram Snapshot(size_t protocol) const {
    if (protocol >= kProtocols) {
      return {};
    }
    const Slot& slot = slots_[protocol];
    absl::MutexLock lock(&slot.mu);
    return slot.gaps == nullptr ? histogram::Histogram() : *slot.gaps;
  }

 private:
  struct Slot {
    mutable absl::Mutex mu;
    std::unique_ptr<histogram::Histogram> gaps ABSL_GUARDED_BY(mu);
  };
  std::array<Slot, kProtocols> slots_;
};

// The JSON object /stats shows for one protocol's gaps: count, min, max,
// mean, p50 and p99 (microseconds, as llmload's reports compute them), and
// every non-empty bucket as [value_us, count] so that the histograms of the
// processes of a group can be merged exactly by whoever reads them.
std::string TokenGapsJson(const histogram::Histogram& gaps);

}  // namespace llmload::emulator
