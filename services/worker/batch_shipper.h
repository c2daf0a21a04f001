// File: batch_shipper.h
//
// Ships sample batches to the collector over the Ingest stream, exactly once
// from the collector's point of view: every batch gets the next sequence
// number of its run, stays in the unacked queue until the collector acks it
// (the ack comes only once the batch is durable), and after a broken stream
// every unacked batch is sent again, in order, on the next one. The collector
// ignores the ones it already applied.
//
// The queue is bounded: past max_unacked, the oldest batch is dropped and
// counted (DroppedBatches), never silently.
//
// A batch the collector rejects (an ack carrying an error) is final too: it
// will never be applied, so it is not resent, but it is counted per run with
// what it held and the collector's reason (Rejected), for the shard to
// report.
//
// Batches are numbered per shard: (run_id, epoch) (epoch 0 when the batch
// has none). A batch acked as fenced belongs to a shard the orchestrator
// sealed (its worker was declared lost and the work moved on): it and every
// other queued batch of that shard are dropped, and Fenced() says so, so the
// worker stops the shard.
//
// Thread-safe. Owns a sender thread and, per stream, a reader thread.

#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "llmload/v1/collector.grpc.pb.h"

namespace llmload::worker {

class BatchShipper {
 public:
  BatchShipper(std::string collector_address, size_t max_unacked);
  ~BatchShipper();
  BatchShipper(const BatchShipper&) = delete;
  BatchShipper& operator=(const BatchShipper&) = delete;

  // Assigns the shard's next sequence number and queues the batch (of a
  // fenced shard: drops it). Returns the sequence.
  uint64_t Enqueue(v1::SampleBatch batch);
  // True when every batch queued for the shard has been acked (or dropped
  // because the shard was fenced).
  bool AllAcked(const std::string& run_id, uint64_t epoch = 0);
  uint64_t AckedSequence(const std::string& run_id, uint64_t epoch = 0);
  uint64_t DroppedBatches(const std::string& run_id, uint64_t epoch = 0);
  // The collector refused a batch of the shard as fenced.
  bool Fenced(const std::string& run_id, uint64_t epoch = 0);

  // What the collector rejected of one run's batches.
  struct Rejections {
    uint64_t batches = 0;
    uint64_t requests = 0;  // requests the batches counted, ok or failed
    uint64_t samples = 0;   // latency samples in their histograms
    // The collector's reasons, each once, in the order first seen, "; "
    // between them.
    std::string reason;
  };
  Rejections Rejected(const std::string& run_id, uint64_t epoch = 0);
  void ForgetRun(const std::string& run_id, uint64_t epoch = 0);
  size_t Unacked();
  bool Connected();
  // Waits up to `timeout` for every queued batch to be acked.
  bool Flush(absl::Duration timeout);
  void Stop();

 private:
  using Key = std::pair<std::string, uint64_t>;  // run id, epoch
  static Key KeyOf(const v1::SampleBatch& b) { return {b.run_id(), b.epoch()}; }
  struct RunSeq {
    uint64_t next = 1;
    uint64_t acked = 0;  // highest acked
    uint64_t outstanding = 0;
    uint64_t dropped = 0;
    bool fenced = false;
    Rejections rejected;
    std::vector<std::string> reasons;  // distinct, bounded: rejected.reason
  };
  void SenderLoop();
  bool RunStream();  // one stream's life; false when stopping

  std::string address_;
  size_t max_unacked_;
  absl::Mutex mu_;
  std::deque<v1::SampleBatch> unacked_ ABSL_GUARDED_BY(mu_);
  size_t sent_on_stream_ ABSL_GUARDED_BY(mu_) = 0;  // prefix of unacked_ already written
  std::map<Key, RunSeq> runs_ ABSL_GUARDED_BY(mu_);
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread sender_;
};

}  // namespace llmload::worker
