// File: ingest_pipeline.h
//
// The collector's write path, off the gRPC threads: Ingest reactors Submit
// each batch they read; one writer thread takes what is queued (a group),
// decodes and validates each batch once (RunRegistry::Decode), answers
// duplicates and invalid batches, stores the rest in one transaction (group
// commit), merges what was decoded into the RunRegistry, and only then
// calls each batch's callback with its ack. An ack therefore always means
// "durable and applied" (or "already applied", or "rejected").
//
//   IngestPipeline pipeline(&store, &registry, &counters);
//   pipeline.Submit(std::move(batch), [](absl::StatusOr<v1::IngestAck> ack) { ... });
//
// A storage failure fails the callbacks of the batches it concerns with
// UNAVAILABLE (nothing was applied; the worker resends them later).
//
// Seals (SubmitSeal) go through the same queue, so a seal takes effect
// exactly between the batches queued before it (applied) and after it
// (refused as fenced): it is stored, applied to the registry, and answered.
//
// Thread-safe. Callbacks run on the writer thread, in submission order; they
// must be quick and must not block or Submit.

#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "llmload/v1/collector.pb.h"
#include "llmload/v1/stats.pb.h"
#include "services/collector/run_registry.h"
#include "services/collector/store.h"

namespace llmload::collector {

// The collector's own counters (llmload_collector_batches_total).
struct IngestCounters {
  std::atomic<uint64_t> applied{0};
  std::atomic<uint64_t> duplicate{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> fenced{0};
  // SQLite transactions that stored batches (group commits).
  std::atomic<uint64_t> commits{0};
};

class IngestPipeline {
 public:
  using Callback = absl::AnyInvocable<void(absl::StatusOr<v1::IngestAck>)>;
  using SealCallback = absl::AnyInvocable<void(absl::StatusOr<v1::SealedShard>)>;

  // Most batches per transaction.
  static constexpr size_t kDefaultMaxGroup = 128;

  // `store`, `registry` and `counters` must outlive the pipeline. Starts the
  // writer thread.
  IngestPipeline(BatchStore* store, RunRegistry* registry, IngestCounters* counters,
                 size_t max_group = kDefaultMaxGroup);
  ~IngestPipeline();  // Stop()
  IngestPipeline(const IngestPipeline&) = delete;
  IngestPipeline& operator=(const IngestPipeline&) = delete;

  // Queues a batch; `done` runs once on the writer thread. After Stop(),
  // `done` runs at once (on the caller's thread) with UNAVAILABLE.
  void Submit(v1::SampleBatch batch, Callback done) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues a seal (already validated); `done` runs once on the writer thread
  // (at once with UNAVAILABLE after Stop()).
  void SubmitSeal(v1::SealShardRequest seal, SealCallback done) ABSL_LOCKS_EXCLUDED(mu_);

  // Processes everything already queued, then joins the writer thread.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Item {
    v1::SampleBatch batch;
    Callback done;
    // A seal instead of a batch.
    bool is_seal = false;
    v1::SealShardRequest seal;
    SealCallback seal_done;
  };

  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  void Process(std::vector<Item>& group);
  // Drops the per-request records that would take the batch's run past
  // RunRegistry::kMaxRecordsPerRun (`room`: what is left per run, counting
  // the batches of this group already planned), counting them as dropped.
  void CapRecords(v1::SampleBatch& batch, absl::flat_hash_map<std::string, uint64_t>& room);
  void ProcessSeal(Item& item);

  BatchStore* const store_;
  RunRegistry* const registry_;
  IngestCounters* const counters_;
  const size_t max_group_;

  absl::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace llmload::collector
