// File: mono_clock.h
//
// Time for tests: deadlines and elapsed times read from the monotonic clock,
// never from the wall clock (which can step while a test runs). The values
// are absl::Time so that deadline arithmetic with absl::Duration reads as
// usual, but they are only meaningful relative to each other.
//
//   const absl::Time deadline = testing_util::MonoNow() + absl::Seconds(10);
//   while (!done() && testing_util::MonoNow() < deadline) { ... }

#pragma once

#include <chrono>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpc/support/time.h"

namespace llmload::testing_util {

inline absl::Time MonoNow() {
  return absl::UnixEpoch() + absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

// A gRPC deadline `timeout` from now on the monotonic clock (ClientContext::
// set_deadline takes it as it is).
inline gpr_timespec GrpcDeadline(absl::Duration timeout) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_millis(absl::ToInt64Milliseconds(timeout), GPR_TIMESPAN));
}

}  // namespace llmload::testing_util
