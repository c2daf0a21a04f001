// File: collector_server.h
//
// Wiring of the collector process: opens the store and replays it into the
// registry, starts the ingest pipeline, the scheduler, the gRPC server
// (Collector + health + reflection) and the Prometheus endpoint.
//
//   CollectorConfig config;                      // from flags in main.cc
//   auto server = CollectorServer::Create(config);
//   if (!server.ok()) { log; exit(1); }
//   ... wait for SIGTERM ...
//   (*server)->Shutdown(absl::Seconds(5));
//
// Thread-safe; Shutdown() must be called from a thread that is not a gRPC
// or scheduler thread (main).

#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "services/collector/collector_service.h"
#include "services/collector/ingest_pipeline.h"
#include "services/collector/metrics_exposition.h"
#include "services/collector/run_registry.h"
#include "services/collector/scheduler.h"
#include "services/collector/store.h"
#include "services/common/auth.h"
#include "services/common/tls.h"

namespace prometheus {
class Exposer;
}

namespace llmload::collector {

struct CollectorConfig {
  std::string grpc_address = "0.0.0.0:50052";
  // host:port of the Prometheus /metrics endpoint; empty disables it.
  std::string metrics_address = "0.0.0.0:9102";
  // Classic histograms on /metrics per worker (worker_id label) or, false,
  // per run only.
  bool metrics_worker_label = true;
  std::string db_path = "collector.db";
  // Most batches committed in one SQLite transaction.
  size_t max_group_commit = IngestPipeline::kDefaultMaxGroup;
  // Batches per Ingest stream read but not yet acked.
  size_t max_in_flight_per_stream = 64;
  // How long a finished run stays on /metrics after its data ended; then it
  // is archived (its final statistics stay available over gRPC).
  absl::Duration run_retention = absl::Hours(1);
  // How often the retention check runs.
  absl::Duration retention_sweep = absl::Seconds(5);
  // TLS of the gRPC port (off by default) and who may call what (open).
  TlsFiles tls;
  std::shared_ptr<const ServerAuth> auth = ServerAuth::Open();
};

// INVALID_ARGUMENT naming the field when the config cannot work.
absl::Status ValidateConfig(const CollectorConfig& config);

class CollectorServer {
 public:
  // Opens the SQLite store at config.db_path.
  static absl::StatusOr<std::unique_ptr<CollectorServer>> Create(const CollectorConfig& config);
  // Uses `store` instead (tests).
  static absl::StatusOr<std::unique_ptr<CollectorServer>> Create(
      const CollectorConfig& config, std::unique_ptr<BatchStore> store);
  ~CollectorServer();  // Shutdown(absl::ZeroDuration()) unless done
  CollectorServer(const CollectorServer&) = delete;
  CollectorServer& operator=(const CollectorServer&) = delete;

  int grpc_port() const { return grpc_port_; }
  // 0 when the metrics endpoint is disabled.
  int metrics_port() const { return metrics_port_; }
  uint64_t replayed_batches() const { return replayed_batches_; }
  const RunRegistry& registry() const { return registry_; }
  const IngestCounters& counters() const { return counters_; }
  std::shared_ptr<grpc::Channel> InProcessChannel();

  // Health goes NOT_SERVING, the gRPC server drains for up to `grace` and
  // then cancels what is left, the pipeline commits what it holds, and the
  // store and the metrics endpoint close. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  CollectorServer() = default;
  absl::Status Start(const CollectorConfig& config, std::unique_ptr<BatchStore> store);
  // Archives expired runs and schedules the next sweep.
  void Sweep();

  std::unique_ptr<BatchStore> store_;
  RunRegistry registry_;
  IngestCounters counters_;
  std::unique_ptr<IngestPipeline> pipeline_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<TargetScraper> scraper_;
  std::unique_ptr<CollectorServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<MetricsExposition> exposition_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  absl::Duration run_retention_;
  absl::Duration retention_sweep_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  uint64_t replayed_batches_ = 0;
  bool shut_down_ = false;
};

}  // namespace llmload::collector
