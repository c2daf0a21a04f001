// File: collector_service.h
//
// The gRPC edge of the collector (llmload.v1.Collector, callback API). It
// translates between the wire and the ingest pipeline / run registry and
// never blocks a reaction:
//
//  - Ingest: each batch read is handed to the IngestPipeline's writer thread;
//    its ack is written back only once the pipeline reports it durable and
//    applied (or a duplicate, or rejected). One write in flight per stream,
//    at most `max_in_flight` batches between read and acked per stream (reads
//    pause beyond that).
//  - GetRunStats: a snapshot from the RunRegistry, with the run's target
//    series from the TargetScraper.
//  - ScrapeTarget: starts or stops a run's target scrape loop; a stop is
//    answered after its last scrape.
//  - SealShard: queued on the IngestPipeline between the batches around it;
//    answered once the seal is durable and applied.
//  - WatchRunStats: a snapshot every interval (the first at once) until the
//    client cancels or the run is complete; the Scheduler thread wakes the
//    stream up. A run that does not exist yet is polled for, silently.
//  - GetRunRecords: the run's per-request records, read from the store a
//    page of batches at a time (one page per write, so a large run never
//    sits in memory whole; each read holds the store only briefly).
//
// Thread-safe. The pipeline, registry and scheduler must outlive the gRPC
// server that serves this service.

#pragma once

#include <cstddef>
#include <cstdint>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "services/collector/ingest_pipeline.h"
#include "services/collector/run_registry.h"
#include "services/collector/scheduler.h"
#include "services/collector/store.h"
#include "services/collector/target_scraper.h"
#include "services/common/auth.h"

namespace llmload::collector {

// WatchRunStats interval: 1000 ms when 0, else clamped to [100, 60000] ms.
absl::Duration WatchInterval(uint32_t interval_ms);

class IngestReactor;

// The Ingest streams alive, so a shutdown can drain them.
class IngestStreams {
 public:
  void Add(IngestReactor* r) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(IngestReactor* r) ABSL_LOCKS_EXCLUDED(mu_);
  // Every stream stops taking batches, acks those it took, and ends; new
  // streams are refused.
  void DrainAll() ABSL_LOCKS_EXCLUDED(mu_);
  bool draining() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  std::set<IngestReactor*> live_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

class CollectorServiceImpl final : public v1::Collector::CallbackService {
 public:
  struct Options {
    // Batches per Ingest stream read but not yet acked.
    size_t max_in_flight = 64;
    // How often a watcher checks for a run that has no batch yet.
    absl::Duration watch_poll = absl::Milliseconds(100);
    // Where GetRunRecords reads stored batches; null: UNIMPLEMENTED.
    BatchStore* store = nullptr;
    // GetRunRecords: stored batches read per page, and records per message.
    int records_page_batches = 64;
    int records_per_message = 4096;
    // Scrapes runs' target metrics (ScrapeTarget) and adds them to the
    // statistics served; null: ScrapeTarget is UNIMPLEMENTED.
    TargetScraper* scraper = nullptr;
    // Who may call what (auth.h); open by default.
    std::shared_ptr<const ServerAuth> auth = ServerAuth::Open();
  };

  CollectorServiceImpl(IngestPipeline* pipeline, const RunRegistry* registry,
                       Scheduler* scheduler, Options options);
  CollectorServiceImpl(IngestPipeline* pipeline, const RunRegistry* registry,
                       Scheduler* scheduler)
      : CollectorServiceImpl(pipeline, registry, scheduler, Options()) {}

  // v1::Collector::CallbackService
  grpc::ServerBidiReactor<v1::SampleBatch, v1::IngestAck>* Ingest(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetRunStats(grpc::CallbackServerContext* context,
                                        const v1::GetRunStatsRequest* request,
                                        v1::RunStats* response) override;
  grpc::ServerWriteReactor<v1::RunStats>* WatchRunStats(
      grpc::CallbackServerContext* context, const v1::WatchRunStatsRequest* request) override;
  grpc::ServerWriteReactor<v1::RequestRecords>* GetRunRecords(
      grpc::CallbackServerContext* context, const v1::GetRunRecordsRequest* request) override;
  grpc::ServerUnaryReactor* SealShard(grpc::CallbackServerContext* context,
                                      const v1::SealShardRequest* request,
                                      v1::SealedShard* response) override;
  grpc::ServerUnaryReactor* ScrapeTarget(grpc::CallbackServerContext* context,
                                         const v1::TargetScrapeRequest* request,
                                         v1::TargetScrapeReply* response) override;

  // Shutdown: Ingest streams stop taking batches, ack what they took and end.
  void DrainIngest();

 private:
  IngestPipeline* const pipeline_;
  const RunRegistry* const registry_;
  Scheduler* const scheduler_;
  const Options options_;
  IngestStreams streams_;
};

}  // namespace llmload::collector
