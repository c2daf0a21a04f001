// llmload-collector: ingests workers' sample batches exactly once, stores
// them durably, and serves merged statistics over gRPC and Prometheus.

#include <pthread.h>
#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "lib/common/env.h"
#include "lib/common/log.h"
#include "services/collector/collector_server.h"
#include "services/common/flags.h"
#include "services/common/security_flags.h"

ABSL_FLAG(std::string, grpc_address,
          llmload::EnvOr("LLMLOAD_COLLECTOR_GRPC_ADDRESS", "0.0.0.0:50052"),
          "host:port of the Collector gRPC service (env LLMLOAD_COLLECTOR_GRPC_ADDRESS).");
ABSL_FLAG(std::string, metrics_address,
          llmload::EnvOr("LLMLOAD_COLLECTOR_METRICS_ADDRESS", "0.0.0.0:9102"),
          "host:port of the Prometheus /metrics endpoint; empty disables it "
          "(env LLMLOAD_COLLECTOR_METRICS_ADDRESS).");
ABSL_FLAG(bool, metrics_worker_label,
          llmload::EnvOr("LLMLOAD_COLLECTOR_METRICS_WORKER_LABEL", true),
          "Classic latency histograms on /metrics per worker (worker_id label); false keeps "
          "one series per run, for fleets whose per-worker series would be too many for "
          "Prometheus (env LLMLOAD_COLLECTOR_METRICS_WORKER_LABEL).");
ABSL_FLAG(std::string, db_path, llmload::EnvOr("LLMLOAD_COLLECTOR_DB", "collector.db"),
          "SQLite database holding every ingested batch (env LLMLOAD_COLLECTOR_DB).");
ABSL_FLAG(int32_t, shutdown_grace_ms,
          llmload::EnvOr("LLMLOAD_COLLECTOR_SHUTDOWN_GRACE_MS", int32_t{5000}),
          "On SIGTERM/SIGINT, how long open streams may drain before they are cancelled "
          "(env LLMLOAD_COLLECTOR_SHUTDOWN_GRACE_MS).");
ABSL_FLAG(int32_t, max_group_commit,
          llmload::EnvOr("LLMLOAD_COLLECTOR_MAX_GROUP_COMMIT", int32_t{128}),
          "Most batches committed in one SQLite transaction "
          "(env LLMLOAD_COLLECTOR_MAX_GROUP_COMMIT).");
ABSL_FLAG(int32_t, max_in_flight_per_stream,
          llmload::EnvOr("LLMLOAD_COLLECTOR_MAX_IN_FLIGHT", int32_t{64}),
          "Batches an Ingest stream may have read but not yet acked before reading pauses "
          "(env LLMLOAD_COLLECTOR_MAX_IN_FLIGHT).");

ABSL_FLAG(int32_t, run_retention_seconds,
          llmload::EnvOr("LLMLOAD_COLLECTOR_RUN_RETENTION_SECONDS", int32_t{3600}),
          "How long a finished run stays on /metrics after its last interval; then it is "
          "archived and only GetRunStats serves it "
          "(env LLMLOAD_COLLECTOR_RUN_RETENTION_SECONDS).");

namespace {

std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals before any thread exists; main waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  llmload::InitProgram(argc, argv, "collector",
                       "ingests sample batches from llmload workers, stores them in SQLite "
                       "and serves merged statistics (gRPC llmload.v1.Collector, Prometheus "
                       "/metrics).\n\nUsage: llmload-collector [--grpc_address=host:port] "
                       "[--metrics_address=host:port] [--db_path=collector.db]\n"
                       "       [--tls_cert_file=F --tls_key_file=F [--tls_ca_file=F]]\n"
                       "       [--operator_token_file=F] [--read_token_file=F] "
                       "[--join_token_file=F]");

  llmload::collector::CollectorConfig config;
  config.grpc_address = absl::GetFlag(FLAGS_grpc_address);
  config.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  config.db_path = absl::GetFlag(FLAGS_db_path);
  config.metrics_worker_label = absl::GetFlag(FLAGS_metrics_worker_label);
  const int32_t grace_ms = absl::GetFlag(FLAGS_shutdown_grace_ms);
  const int32_t max_group = absl::GetFlag(FLAGS_max_group_commit);
  const int32_t max_in_flight = absl::GetFlag(FLAGS_max_in_flight_per_stream);
  const int32_t retention_s = absl::GetFlag(FLAGS_run_retention_seconds);
  if (retention_s < 0) {
    std::fprintf(stderr, "--run_retention_seconds must be >= 0\n");
    return 2;
  }
  config.run_retention = absl::Seconds(retention_s);
  if (grace_ms < 0 || max_group < 1 || max_in_flight < 1) {
    std::fprintf(stderr,
                 "--shutdown_grace_ms must be >= 0, --max_group_commit and "
                 "--max_in_flight_per_stream >= 1\n");
    return 2;
  }
  config.max_group_commit = static_cast<size_t>(max_group);
  config.max_in_flight_per_stream = static_cast<size_t>(max_in_flight);
  if (absl::Status s = llmload::collector::ValidateConfig(config); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  auto tls = llmload::TlsFilesFromFlags();
  auto auth = tls.ok() ? llmload::ServerAuthFromFlags() : tls.status();
  if (!auth.ok()) {
    std::fprintf(stderr, "%s\n", std::string(auth.status().message()).c_str());
    return 2;
  }
  config.tls = *tls;
  config.auth = *auth;
  llmload::LogSecurity(*tls, auth->get(), nullptr);

  auto server = llmload::collector::CollectorServer::Create(config);
  if (!server.ok()) {
    LLMLOAD_LOG(kError, "Collector failed to start.")
        .Kv("error", std::string(server.status().message()));
    return 1;
  }
  auto& collector = **server;
  LLMLOAD_LOG(kInfo, "Collector listening.")
      .Kv("grpc", HostOf(config.grpc_address) + ":" + std::to_string(collector.grpc_port()))
      .Kv("metrics", config.metrics_address.empty()
                         ? std::string("disabled")
                         : HostOf(config.metrics_address) + ":" +
                               std::to_string(collector.metrics_port()))
      .Kv("db", config.db_path);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  LLMLOAD_LOG(kInfo, "Collector stopping.").Kv("signal", sig == SIGINT ? "SIGINT" : "SIGTERM");
  collector.Shutdown(absl::Milliseconds(grace_ms));
  LLMLOAD_LOG(kInfo, "Collector stopped.");
  return 0;
}
