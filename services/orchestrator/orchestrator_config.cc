#include "services/orchestrator/orchestrator_config.h"

#include "absl/strings/str_cat.h"

namespace llmload::orchestrator {

absl::Status Validate(const OrchestratorConfig& config) {
  if (config.grpc_address.empty()) {
    return absl::InvalidArgumentError("--grpc_address: required");
  }
  if (config.db_path.empty()) {
    return absl::InvalidArgumentError("--db_path: required");
  }
  if (config.heartbeat_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--heartbeat_timeout_seconds: must be > 0, got ",
                     absl::FormatDuration(config.heartbeat_timeout)));
  }
  if (config.heartbeat_interval <= absl::ZeroDuration() ||
      config.heartbeat_interval >= config.heartbeat_timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--heartbeat_interval_seconds: must be > 0 and below the heartbeat timeout (",
        absl::FormatDuration(config.heartbeat_timeout), "), got ",
        absl::FormatDuration(config.heartbeat_interval)));
  }
  if (config.reassign_wait < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--reassign_wait_seconds: must be >= 0, got ",
                     absl::FormatDuration(config.reassign_wait)));
  }
  if (config.stop_grace < absl::ZeroDuration() || config.watch_interval <= absl::ZeroDuration() ||
      config.tick <= absl::ZeroDuration() || config.collector_deadline <= absl::ZeroDuration() ||
      config.recovery_grace < absl::ZeroDuration() || config.crash_window < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timer settings must be positive");
  }
  if (config.caps.max_clients < 1 || config.caps.max_requests < 1 ||
      !(config.caps.max_rate > 0) || config.caps.max_duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--max_run_clients, --max_run_rate, --max_run_duration and --max_run_requests must be "
        "positive");
  }
  return absl::OkStatus();
}

}  // namespace llmload::orchestrator
