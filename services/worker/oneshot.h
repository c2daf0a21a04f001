// File: oneshot.h
//
// One-shot mode: `llmload-worker --oneshot=spec.json` runs a whole run spec
// in this process — no orchestrator, no collector — prints its statistics
// and exits. For debugging a target, and for benchmark harnesses that must
// count the worker's CPU alone.

#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"

namespace llmload::worker {

struct OneShotOptions {
  std::string spec_path;  // RunSpec or {"spec": …} in proto JSON
  int threads = 1;
  // What the worker declares to the planner (--capacity): the open model's
  // default in-flight cap.
  int32_t capacity = 9000;
  bool json = false;  // print RunStats as proto JSON instead of text
  absl::Duration progress_interval = absl::Seconds(5);
};

// Returns the process exit code: 0 when every request succeeded, 1 when
// some failed, 2 when the spec could not be read or run. `interrupted` is
// polled; when it returns true the run is cancelled and what was measured
// is printed.
int RunOneShot(const OneShotOptions& options, const std::function<bool()>& interrupted);

}  // namespace llmload::worker
