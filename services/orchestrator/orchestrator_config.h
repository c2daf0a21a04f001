// File: orchestrator_config.h
//
// The orchestrator's settings (filled from flags in main.cc, or by tests)
// and their validation. Plain data: nothing here reads flags or clocks.
//
// Thread-compatible.

#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/validation/run_caps.h"
#include "lib/validation/target_policy.h"
#include "services/common/auth.h"
#include "services/common/tls.h"

namespace llmload::orchestrator {

struct OrchestratorConfig {
  std::string grpc_address = "0.0.0.0:50051";
  // Collector gRPC address for GetRun statistics and for sealing the shards
  // of lost workers; empty: neither (lost work then cannot be moved, and a
  // lost worker fails its run).
  std::string collector_address = "127.0.0.1:50052";
  std::string db_path = "orchestrator.db";
  // A worker is lost after this long without a message, whether its stream
  // is open (hung, network cut) or ended (unless it re-attached).
  absl::Duration heartbeat_timeout = absl::Seconds(3);
  // What AttachAccepted asks workers for.
  absl::Duration heartbeat_interval = absl::Milliseconds(500);
  // After StopRun, shards that did not confirm within this are cancelled.
  absl::Duration stop_grace = absl::Seconds(5);
  // WatchRun sends the run at least this often while nothing changes.
  absl::Duration watch_interval = absl::Milliseconds(500);
  // Deadline of each call to the collector (statistics, seals).
  absl::Duration collector_deadline = absl::Seconds(2);
  // Resolution of the liveness, grace and watch timers.
  absl::Duration tick = absl::Milliseconds(100);
  // Work of a lost worker waits this long for a worker with spare capacity
  // (one that attaches later counts); then its run fails, saying so.
  absl::Duration reassign_wait = absl::Seconds(60);
  // A worker lost within this long of being given a piece of work counts as
  // killed by it: work that killed two workers this way is not handed to a
  // third (a crash loop). Losses later than this are independent faults.
  absl::Duration crash_window = absl::Seconds(30);
  // After a restart, the workers of runs in progress get this long to
  // re-attach and report their shards before they count as lost.
  absl::Duration recovery_grace = absl::Seconds(10);
  // Which targets runs may load (--allow_targets); a spec naming another
  // host is refused before anything is dispatched, and workers check what
  // the names resolve to.
  validation::TargetPolicy allow_targets = validation::TargetPolicy::Default();
  // Per-run limits (--max_run_*): a bigger spec is refused.
  validation::RunCaps caps;
  // TLS of the gRPC port (and, through ConfigureClientLinks, of the link to
  // the collector); off by default.
  TlsFiles tls;
  // Who may call what (auth.h); open by default.
  std::shared_ptr<const ServerAuth> auth = ServerAuth::Open();
  // Seed of run ids (0: random).
  uint64_t seed = 0;
};

// INVALID_ARGUMENT naming the offending option.
absl::Status Validate(const OrchestratorConfig& config);

}  // namespace llmload::orchestrator
