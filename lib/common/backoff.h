// File: backoff.h
//
// Reconnection delays: exponential backoff with full jitter. The n-th delay
// after a failure is drawn uniformly from [0, min(cap, base * 2^n)], so a
// hundred clients that lost the same server at the same moment come back
// spread over the whole window instead of in lockstep. Pure: the random
// draws come from an explicit seed.
//
//   Backoff backoff(absl::Milliseconds(200), absl::Seconds(5), seed);
//   while (!Connect()) SleepFor(backoff.Next());
//   backoff.Reset();  // after a success
//
// Thread-compatible.

#pragma once

#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace llmload {

class Backoff {
 public:
  Backoff(absl::Duration base, absl::Duration cap, uint64_t seed)
      : base_(base), cap_(cap), rng_(seed) {}

  // The window the next delay is drawn from: min(cap, base * 2^attempts).
  absl::Duration Window() const {
    absl::Duration w = base_;
    for (int i = 0; i < attempts_ && w < cap_; ++i) {
      w *= 2;
    }
    return w < cap_ ? w : cap_;
  }

  // The next delay (uniform in [0, Window()]); widens the window.
  absl::Duration Next() {
    const absl::Duration window = Window();
    ++attempts_;
    std::uniform_int_distribution<int64_t> draw(0, absl::ToInt64Microseconds(window));
    return absl::Microseconds(draw(rng_));
  }

  void Reset() { attempts_ = 0; }
  int attempts() const { return attempts_; }

 private:
  const absl::Duration base_;
  const absl::Duration cap_;
  std::mt19937_64 rng_;
  int attempts_ = 0;
};

// A seed that differs between processes and between objects of one process
// (time, pid and address), for Backoff outside tests.
uint64_t BackoffSeed(const void* salt);

}  // namespace llmload
