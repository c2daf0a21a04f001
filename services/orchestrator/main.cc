// llmload-orchestrator: validates run specs, splits runs across the attached
// workers, tracks them and keeps them in SQLite. See DESIGN.md.

#include <signal.h>

#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "lib/common/env.h"
#include "lib/common/log.h"
#include "services/common/flags.h"
#include "services/common/grpc_util.h"
#include "services/common/security_flags.h"
#include "services/orchestrator/orchestrator_server.h"

ABSL_FLAG(std::string, grpc_address,
          llmload::EnvOr("LLMLOAD_ORCHESTRATOR_GRPC_ADDRESS", "0.0.0.0:50051"),
          "gRPC listen address host:port (env LLMLOAD_ORCHESTRATOR_GRPC_ADDRESS).");
ABSL_FLAG(std::string, collector, llmload::EnvOr("LLMLOAD_COLLECTOR", "127.0.0.1:50052"),
          "Collector gRPC address for GetRun statistics; empty: none (env LLMLOAD_COLLECTOR).");
ABSL_FLAG(std::string, db_path, llmload::EnvOr("LLMLOAD_ORCHESTRATOR_DB", "orchestrator.db"),
          "SQLite database holding every run (env LLMLOAD_ORCHESTRATOR_DB).");
ABSL_FLAG(double, heartbeat_timeout_seconds,
          llmload::EnvOr("LLMLOAD_ORCHESTRATOR_HEARTBEAT_TIMEOUT_SECONDS", 3.0),
          "A worker silent for this long (or whose stream ended and that did not re-attach "
          "within it) is lost and its unfinished work moves to other workers (env "
          "LLMLOAD_ORCHESTRATOR_HEARTBEAT_TIMEOUT_SECONDS).");
ABSL_FLAG(double, heartbeat_interval_seconds,
          llmload::EnvOr("LLMLOAD_ORCHESTRATOR_HEARTBEAT_INTERVAL_SECONDS", 0.5),
          "How often workers are asked to send a heartbeat; below the timeout (env "
          "LLMLOAD_ORCHESTRATOR_HEARTBEAT_INTERVAL_SECONDS).");
ABSL_FLAG(double, reassign_wait_seconds,
          llmload::EnvOr("LLMLOAD_ORCHESTRATOR_REASSIGN_WAIT_SECONDS", 60.0),
          "Work of a lost worker waits this long for a worker with spare capacity (one that "
          "attaches later counts) before its run fails (env "
          "LLMLOAD_ORCHESTRATOR_REASSIGN_WAIT_SECONDS).");
ABSL_FLAG(double, crash_loop_window_seconds,
          llmload::EnvOr("LLMLOAD_ORCHESTRATOR_CRASH_LOOP_WINDOW_SECONDS", 30.0),
          "A worker lost within this long of being given a piece of work counts as killed by "
          "it; work that killed two workers is not handed to a third (env "
          "LLMLOAD_ORCHESTRATOR_CRASH_LOOP_WINDOW_SECONDS).");
ABSL_FLAG(double, recovery_grace_seconds,
          llmload::EnvOr("LLMLOAD_ORCHESTRATOR_RECOVERY_GRACE_SECONDS", 10.0),
          "After a restart, how long the workers of runs in progress have to re-attach before "
          "they count as lost (env LLMLOAD_ORCHESTRATOR_RECOVERY_GRACE_SECONDS).");
ABSL_FLAG(std::string, allow_targets, llmload::EnvOr("LLMLOAD_ALLOW_TARGETS", "default"),
          "Comma-separated hosts, *.domain patterns and CIDRs runs may load; 'default' is "
          "loopback, private networks and cluster-local names; '*' allows anything (env "
          "LLMLOAD_ALLOW_TARGETS).");
ABSL_FLAG(int64_t, max_run_clients, llmload::EnvOr("LLMLOAD_MAX_RUN_CLIENTS", int64_t{100000}),
          "Most sessions one run may open (env LLMLOAD_MAX_RUN_CLIENTS).");
ABSL_FLAG(double, max_run_rate, llmload::EnvOr("LLMLOAD_MAX_RUN_RATE", 10000.0),
          "Highest open-model arrival rate per second a run may ask for (env "
          "LLMLOAD_MAX_RUN_RATE).");
ABSL_FLAG(double, max_run_duration, llmload::EnvOr("LLMLOAD_MAX_RUN_DURATION", 86400.0),
          "Longest duration or open run, in seconds (env LLMLOAD_MAX_RUN_DURATION).");
ABSL_FLAG(int64_t, max_run_requests,
          llmload::EnvOr("LLMLOAD_MAX_RUN_REQUESTS", int64_t{100000000}),
          "Most requests a closed or open run may offer (env LLMLOAD_MAX_RUN_REQUESTS).");

namespace {

constexpr char kUsage[] =
    "llmload-orchestrator: starts load-test runs on the attached workers.\n"
    "\n"
    "  llmload-orchestrator [--grpc_address=0.0.0.0:50051] [--collector=127.0.0.1:50052]\n"
    "                       [--db_path=orchestrator.db] [--heartbeat_timeout_seconds=3]\n"
    "                       [--heartbeat_interval_seconds=0.5] [--reassign_wait_seconds=60]\n"
    "                       [--recovery_grace_seconds=10] [--crash_loop_window_seconds=30]\n"
    "                       [--allow_targets=default] [--max_run_clients=100000]\n"
    "                       [--max_run_rate=10000] [--max_run_duration=86400]\n"
    "                       [--max_run_requests=100000000]\n"
    "                       [--tls_cert_file=F --tls_key_file=F [--tls_ca_file=F]]\n"
    "                       [--operator_token_file=F] [--read_token_file=F] [--join_token_file=F]\n";

}  // namespace

int main(int argc, char** argv) {
  llmload::InitProgram(argc, argv, "orchestrator", kUsage);

  // Block the stop signals in every thread (they inherit the mask) and take
  // them synchronously on the main thread below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  llmload::orchestrator::OrchestratorConfig config;
  config.grpc_address = absl::GetFlag(FLAGS_grpc_address);
  config.collector_address = absl::GetFlag(FLAGS_collector);
  config.db_path = absl::GetFlag(FLAGS_db_path);
  config.heartbeat_timeout = absl::Seconds(absl::GetFlag(FLAGS_heartbeat_timeout_seconds));
  config.heartbeat_interval = absl::Seconds(absl::GetFlag(FLAGS_heartbeat_interval_seconds));
  config.reassign_wait = absl::Seconds(absl::GetFlag(FLAGS_reassign_wait_seconds));
  config.recovery_grace = absl::Seconds(absl::GetFlag(FLAGS_recovery_grace_seconds));
  config.crash_window = absl::Seconds(absl::GetFlag(FLAGS_crash_loop_window_seconds));
  auto policy = llmload::validation::TargetPolicy::Parse(absl::GetFlag(FLAGS_allow_targets));
  if (!policy.ok()) {
    LLMLOAD_LOG(kError, "Invalid configuration.")
        .Kv("error", absl::StrCat("--allow_targets: ", policy.status().message()));
    return 2;
  }
  config.allow_targets = *std::move(policy);
  config.caps.max_clients = absl::GetFlag(FLAGS_max_run_clients);
  config.caps.max_rate = absl::GetFlag(FLAGS_max_run_rate);
  config.caps.max_duration = absl::Seconds(absl::GetFlag(FLAGS_max_run_duration));
  config.caps.max_requests = absl::GetFlag(FLAGS_max_run_requests);
  auto tls = llmload::TlsFilesFromFlags();
  auto auth = tls.ok() ? llmload::ServerAuthFromFlags() : tls.status();
  auto join = auth.ok() ? llmload::JoinTokenFromFlags() : auth.status();
  if (!join.ok()) {
    LLMLOAD_LOG(kError, "Invalid configuration.").Kv("error", std::string(join.status().message()));
    return 2;
  }
  config.tls = *tls;
  config.auth = *auth;
  // The orchestrator calls the collector as one of llmload's own processes.
  if (absl::Status s = llmload::ConfigureClientLinks({*tls, *join}); !s.ok()) {
    LLMLOAD_LOG(kError, "Invalid configuration.").Kv("error", std::string(s.message()));
    return 2;
  }
  llmload::LogSecurity(*tls, auth->get(), join->get());
  if (absl::Status s = llmload::orchestrator::Validate(config); !s.ok()) {
    LLMLOAD_LOG(kError, "Invalid configuration.").Kv("error", std::string(s.message()));
    return 2;
  }

  auto server = llmload::orchestrator::OrchestratorServer::Create(config);
  if (!server.ok()) {
    LLMLOAD_LOG(kError, "Orchestrator failed to start.")
        .Kv("error", std::string(server.status().message()));
    return 1;
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  LLMLOAD_LOG(kInfo, "Shutting down.").Kv("signal", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->Shutdown(absl::Seconds(5));
  server->reset();
  LLMLOAD_LOG(kInfo, "Orchestrator stopped.");
  return 0;
}
