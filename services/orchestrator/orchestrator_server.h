// File: orchestrator_server.h
//
// Wiring of the orchestrator process: opens the run database (runs an
// earlier process left in progress go on), starts the run writer, the
// service with its ticker, and the gRPC server with health and reflection.
//
//   absl::StatusOr<std::unique_ptr<OrchestratorServer>> server =
//       OrchestratorServer::Create(config);
//   ... (*server)->port() ...
//   (*server)->Shutdown(absl::Seconds(5));  // from the main thread
//
// Create and Shutdown are for one thread (main); the server itself serves
// from gRPC's threads.

#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/orchestrator/run_store.h"

namespace llmload::orchestrator {

class OrchestratorServer {
 public:
  static absl::StatusOr<std::unique_ptr<OrchestratorServer>> Create(
      const OrchestratorConfig& config);
  ~OrchestratorServer();  // Shutdown(zero deadline) if still running
  OrchestratorServer(const OrchestratorServer&) = delete;
  OrchestratorServer& operator=(const OrchestratorServer&) = delete;

  int port() const { return port_; }
  OrchestratorServiceImpl& service() { return *service_; }

  // Health goes NOT_SERVING, worker and watch streams end, unary calls in
  // flight get until `deadline` to finish, the server stops, then everything
  // queued is written to the database. Idempotent. Never call from a gRPC
  // thread.
  void Shutdown(absl::Duration deadline);

 private:
  OrchestratorServer() = default;

  std::unique_ptr<RunWriter> writer_;
  std::unique_ptr<OrchestratorServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace llmload::orchestrator
