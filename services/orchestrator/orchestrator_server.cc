#include "services/orchestrator/orchestrator_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/health_check_service_interface.h"
#include "lib/common/log.h"
#include "services/common/grpc_util.h"
#include "services/orchestrator/run_state.h"

namespace llmload::orchestrator {

absl::StatusOr<std::unique_ptr<OrchestratorServer>> OrchestratorServer::Create(
    const OrchestratorConfig& config) {
  if (absl::Status s = Validate(config); !s.ok()) {
    return s;
  }
  absl::StatusOr<std::unique_ptr<RunStore>> store = RunStore::Open(config.db_path);
  if (!store.ok()) {
    return store.status();
  }
  absl::StatusOr<std::vector<v1::Run>> runs = (*store)->LoadAll();
  if (!runs.ok()) {
    return runs.status();
  }
  int in_progress = 0;
  for (const v1::Run& run : *runs) {
    in_progress += IsTerminal(run.state()) ? 0 : 1;
  }
  LLMLOAD_LOG(kInfo, "Loaded runs.")
      .Kv("db_path", config.db_path)
      .Kv("runs", static_cast<int64_t>(runs->size()))
      .Kv("in_progress", in_progress);

  std::unique_ptr<v1::Collector::StubInterface> collector;
  if (!config.collector_address.empty()) {
    collector = v1::Collector::NewStub(MakeChannel(config.collector_address));
  }

  std::unique_ptr<OrchestratorServer> server(new OrchestratorServer());
  server->writer_ = std::make_unique<RunWriter>(*std::move(store));
  server->service_ = std::make_unique<OrchestratorServiceImpl>(
      config, server->writer_.get(), *std::move(runs), std::move(collector));

  auto credentials = MakeServerCredentials(config.tls);
  if (!credentials.ok()) {
    server->service_->Stop();
    server->writer_->Stop();
    server->shut_down_ = true;
    return credentials.status();
  }
  EnableHealthAndReflection();
  server->server_ = StartGrpcServer(config.grpc_address, {server->service_.get()}, &server->port_,
                                    *std::move(credentials));
  if (server->server_ == nullptr || server->port_ == 0) {
    server->service_->Stop();
    server->writer_->Stop();
    server->shut_down_ = true;
    return absl::UnavailableError(
        absl::StrCat("could not listen on ", config.grpc_address, " (in use or not local?)"));
  }
  server->service_->Start();
  LLMLOAD_LOG(kInfo, "Orchestrator listening.")
      .Kv("address", config.grpc_address)
      .Kv("port", server->port_)
      .Kv("collector", config.collector_address)
      .Kv("heartbeat_timeout", absl::FormatDuration(config.heartbeat_timeout));
  return server;
}

OrchestratorServer::~OrchestratorServer() { Shutdown(absl::ZeroDuration()); }

void OrchestratorServer::Shutdown(absl::Duration deadline) {
  if (shut_down_) {
    return;
  }
  shut_down_ = true;
  if (auto* health = server_->GetHealthCheckService(); health != nullptr) {
    health->SetServingStatus(false);
  }
  // Streams end now; unary calls get until the deadline. Then an immediate
  // server shutdown also drops idle client connections, which a graceful
  // one would wait on until the deadline.
  service_->Stop();
  if (!service_->WaitForUnaryCalls(absl::Now() + deadline)) {
    LLMLOAD_LOG(kWarn, "Calls still in flight at the shutdown deadline; cancelling them.");
  }
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  writer_->Stop();
}

}  // namespace llmload::orchestrator
