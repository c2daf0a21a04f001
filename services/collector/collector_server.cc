#include "services/collector/collector_server.h"

#include <chrono>
#include <exception>
#include <mutex>
#include <utility>

#include "lib/common/log.h"
#include "prometheus/exposer.h"
#include "services/common/grpc_util.h"

namespace llmload::collector {
namespace {

void EnableHealthAndReflectionOnce() {
  static std::once_flag once;
  std::call_once(once, [] { EnableHealthAndReflection(); });
}

}  // namespace

absl::Status ValidateConfig(const CollectorConfig& config) {
  if (config.grpc_address.empty()) {
    return absl::InvalidArgumentError("grpc_address is empty");
  }
  if (config.db_path.empty()) {
    return absl::InvalidArgumentError("db_path is empty");
  }
  if (config.max_group_commit == 0) {
    return absl::InvalidArgumentError("max_group_commit must be at least 1");
  }
  if (config.max_in_flight_per_stream == 0) {
    return absl::InvalidArgumentError("max_in_flight_per_stream must be at least 1");
  }
  if (config.run_retention < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("run_retention must not be negative");
  }
  if (config.retention_sweep <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("retention_sweep must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CollectorServer>> CollectorServer::Create(
    const CollectorConfig& config) {
  if (absl::Status s = ValidateConfig(config); !s.ok()) {
    return s;
  }
  absl::StatusOr<std::unique_ptr<SqliteBatchStore>> store = SqliteBatchStore::Open(config.db_path);
  if (!store.ok()) {
    return store.status();
  }
  return Create(config, *std::move(store));
}

absl::StatusOr<std::unique_ptr<CollectorServer>> CollectorServer::Create(
    const CollectorConfig& config, std::unique_ptr<BatchStore> store) {
  if (absl::Status s = ValidateConfig(config); !s.ok()) {
    return s;
  }
  std::unique_ptr<CollectorServer> server(new CollectorServer());
  if (absl::Status s = server->Start(config, std::move(store)); !s.ok()) {
    return s;
  }
  return server;
}

absl::Status CollectorServer::Start(const CollectorConfig& config,
                                    std::unique_ptr<BatchStore> store) {
  store_ = std::move(store);
  run_retention_ = config.run_retention;
  retention_sweep_ = config.retention_sweep;

  // Replay: everything acked before a restart is reported again, exactly.
  const auto replay_start = std::chrono::steady_clock::now();
  // Batches apply in the order they were stored, so one that did not apply
  // when it arrived (and was rejected then) does not apply now either.
  uint64_t skipped = 0;
  absl::Status replayed = store_->ForEach([&](const v1::SampleBatch& batch) -> absl::Status {
    if (absl::StatusOr<ApplyResult> r = registry_.Apply(batch); !r.ok()) {
      ++skipped;
      LLMLOAD_LOG(kWarn, "A stored batch does not apply; skipped as when it arrived.")
          .Kv("run_id", batch.run_id())
          .Kv("worker_id", batch.worker_id())
          .Kv("sequence", batch.sequence())
          .Kv("error", std::string(r.status().message()));
      return absl::OkStatus();
    }
    ++replayed_batches_;
    // Archive finished runs as the replay goes (oldest are stored first), so
    // memory stays bounded by the live runs rather than by the database.
    if (replayed_batches_ % 1024 == 0) {
      registry_.ArchiveFinished(absl::Now(), run_retention_);
    }
    return absl::OkStatus();
  });
  if (!replayed.ok()) {
    return replayed;
  }
  // Then the seals: each closes a stream whose applied batches are exactly
  // the stored ones, so it counts the same lost requests as it did.
  uint64_t seals = 0;
  if (absl::Status s = store_->ForEachSeal([&](const v1::SealShardRequest& seal) {
        registry_.Seal(seal);
        ++seals;
        return absl::OkStatus();
      });
      !s.ok()) {
    return s;
  }
  const auto replay_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - replay_start)
                             .count();
  LLMLOAD_LOG(kInfo, "Replayed stored batches.")
      .Kv("db", config.db_path)
      .Kv("batches", replayed_batches_)
      .Kv("skipped", skipped)
      .Kv("seals", seals)
      .Kv("runs", registry_.NumRuns())
      .Kv("elapsed_ms", static_cast<int64_t>(replay_ms));

  registry_.ArchiveFinished(absl::Now(), run_retention_);
  pipeline_ = std::make_unique<IngestPipeline>(store_.get(), &registry_, &counters_,
                                               config.max_group_commit);
  scheduler_ = std::make_unique<Scheduler>();
  scheduler_->RunAt(Scheduler::Now() + retention_sweep_, [this] { Sweep(); });
  scraper_ = std::make_unique<TargetScraper>();
  CollectorServiceImpl::Options options;
  options.scraper = scraper_.get();
  options.max_in_flight = config.max_in_flight_per_stream;
  options.store = store_.get();
  options.auth = config.auth;
  service_ = std::make_unique<CollectorServiceImpl>(pipeline_.get(), &registry_,
                                                    scheduler_.get(), options);

  if (!config.metrics_address.empty()) {
    MetricsExposition::Options exposition_options;
    exposition_options.worker_label = config.metrics_worker_label;
    exposition_ = std::make_shared<MetricsExposition>(&registry_, &counters_, exposition_options);
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(config.metrics_address);
    } catch (const std::exception& e) {
      Shutdown(absl::ZeroDuration());
      return absl::UnavailableError("cannot serve metrics on " + config.metrics_address + ": " +
                                    e.what());
    }
    exposer_->RegisterCollectable(exposition_);
    const std::vector<int> ports = exposer_->GetListeningPorts();
    metrics_port_ = ports.empty() ? 0 : ports.front();
  }

  auto credentials = MakeServerCredentials(config.tls);
  if (!credentials.ok()) {
    Shutdown(absl::ZeroDuration());
    return credentials.status();
  }
  EnableHealthAndReflectionOnce();
  server_ = StartGrpcServer(config.grpc_address, {service_.get()}, &grpc_port_,
                            *std::move(credentials));
  if (server_ == nullptr || grpc_port_ == 0) {
    Shutdown(absl::ZeroDuration());
    return absl::UnavailableError("cannot serve gRPC on " + config.grpc_address);
  }
  return absl::OkStatus();
}

void CollectorServer::Sweep() {
  // Scheduler thread: the registry's writer lock is held only while dense
  // histograms are freed.
  if (const size_t n = registry_.ArchiveFinished(absl::Now(), run_retention_); n > 0) {
    LLMLOAD_LOG(kInfo, "Archived finished runs; they left /metrics.")
        .Kv("runs", n)
        .Kv("retention_s", absl::ToInt64Seconds(run_retention_));
  }
  scheduler_->RunAt(Scheduler::Now() + retention_sweep_, [this] { Sweep(); });
}

CollectorServer::~CollectorServer() { Shutdown(absl::ZeroDuration()); }

std::shared_ptr<grpc::Channel> CollectorServer::InProcessChannel() {
  return server_->InProcessChannel(grpc::ChannelArguments());
}

void CollectorServer::Shutdown(absl::Duration grace) {
  if (shut_down_) {
    return;
  }
  shut_down_ = true;
  if (server_ != nullptr) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    // Ingest streams stop taking batches, ack the ones they took and end
    // (workers resend the rest to the next collector), so the shutdown does
    // not wait out the grace for streams that never end on their own.
    service_->DrainIngest();
    // Drains in-flight calls until the deadline, then cancels them; returns
    // once every reactor has finished (the pipeline and the scheduler keep
    // running meanwhile, so they can).
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }
  if (pipeline_ != nullptr) {
    pipeline_->Stop();  // commits and acks what is queued
  }
  if (scraper_ != nullptr) {
    scraper_->Shutdown();
  }
  if (scheduler_ != nullptr) {
    scheduler_->Stop();
  }
  exposer_.reset();
  // Closes the database (checkpointing the WAL).
  store_.reset();
}

}  // namespace llmload::collector
