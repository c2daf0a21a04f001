// File: run_caps.h
//
// Per-run limits an operator sets on the orchestrator, so that one StartRun
// cannot ask for more load than the deployment is meant to give. A spec over
// a cap is refused with INVALID_ARGUMENT naming the cap's flag.

#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "llmload/v1/run.pb.h"

namespace llmload::validation {

struct RunCaps {
  // Sessions: closed clients, duration connections, open max in flight.
  int64_t max_clients = 100000;
  // Open model: the highest arrival rate of any stage, per second.
  double max_rate = 10000;
  // Duration and open models: how long the run lasts (ramp stages included).
  absl::Duration max_duration = absl::Hours(24);
  // Requests a run may offer: closed clients x cycles; open model, the
  // arrivals its rate profile produces. (The duration model's count depends
  // on the target's speed: its connections and duration bound it.)
  int64_t max_requests = 100000000;
};

// OK, or INVALID_ARGUMENT naming the exceeded cap and its flag
// (--max_run_clients, --max_run_rate, --max_run_duration, --max_run_requests).
// Expects a spec that ValidateRunSpec accepted.
absl::Status CheckRunCaps(const v1::RunSpec& spec, const RunCaps& caps);

// The arrivals an open load's rate profile produces: the ramp stages (linear
// from the previous rate) and then the last rate until max(duration, stages).
double ExpectedOpenArrivals(const v1::OpenLoad& open);

}  // namespace llmload::validation
