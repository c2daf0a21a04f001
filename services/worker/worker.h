// File: worker.h
//
// The worker process: attaches to the orchestrator (hello, heartbeats, shard
// progress up; assignments and stops down), runs each assigned shard on the
// event loops, cuts one sample batch per shard every batch interval and
// hands it to the BatchShipper. A shard is reported DONE only once the
// collector has acked every batch of it, so a COMPLETED run's statistics are
// whole.
//
// Shards are keyed by (run id, assignment epoch): a worker may run several
// shards of one run (work moved to it from a lost worker), each with its own
// batch stream. An assignment it already runs or ran (the orchestrator sends
// them again after a re-attach) is answered with the shard's state, never
// run twice. A shard the collector fences (its work moved on while this
// worker was away) is stopped at once.
//
// Threads: the event loops (data path), one attach thread (plus its reader),
// one setup thread (builds shard runners: target DNS resolution and TLS
// set-up never block the thread that reads the Attach stream), one control
// thread (batch cuts, progress, heartbeats), the shipper's.

#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/worker/batch_shipper.h"
#include "services/worker/event_loops.h"
#include "services/worker/shard.h"
#include "services/worker/worker_metrics.h"

namespace llmload::worker {

struct WorkerConfig {
  std::string orchestrator = "127.0.0.1:50051";
  std::string collector = "127.0.0.1:50052";
  std::string worker_id;
  int32_t capacity = 10000;
  int32_t threads = 1;
  absl::Duration batch_interval = absl::Seconds(1);
  size_t max_unacked_batches = 3600;
  // host:port of the worker's /metrics endpoint; empty disables it.
  std::string metrics_address;
};

class Worker {
 public:
  explicit Worker(WorkerConfig config);
  ~Worker();

  void Start();
  // SIGTERM: drains within `drain`: no new requests; requests in flight
  // finish; each shard's last batches are shipped and acked and the shard is
  // reported (SHARD_DRAINED when work was left, so the orchestrator moves it
  // at once); then the worker says it is leaving and detaches. Safe to call
  // once from the main thread.
  void Shutdown(absl::Duration drain);

 private:
  using ShardKey = std::pair<std::string, uint64_t>;  // run id, epoch
  struct RunState {
    std::unique_ptr<ShardRunner> runner;
    uint64_t last_sequence = 0;  // of the last batch cut
    int64_t last_batch_end_us = 0;
    int64_t interval_start_us = 0;
    metrics::MetricSet totals_counters;  // cumulative, counters only
    bool final_enqueued = false;
    bool reported_terminal = false;
    v1::ShardState final_state = v1::SHARD_DONE;
    std::string error;
    std::string protocol;  // the run's protocol enum name, for its batches
  };

  void AttachLoop();
  bool RunAttachStream();
  // Reader thread: queues the assignment for the setup thread (or answers a
  // known one at once).
  void OnAssignment(const v1::ShardAssignment& a);
  void SetupLoop();
  void StartShard(const v1::ShardAssignment& a);
  void OnStop(const v1::StopShard& stop);
  void ControlLoop();
  void Tick(bool interval_cut, bool heartbeat_due);
  void SendToOrchestrator(v1::WorkerMessage msg);
  v1::ShardUpdate MakeUpdate(const ShardKey& key, RunState& rs, v1::ShardState state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  WorkerConfig config_;
  EventLoops loops_;
  BatchShipper shipper_;

  absl::Mutex mu_;
  std::map<ShardKey, RunState> runs_ ABSL_GUARDED_BY(mu_);
  // Shards being set up, and the final update of shards that ended (the
  // newest kMaxFinished), so a re-sent assignment is never run twice.
  std::set<ShardKey> starting_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::ShardAssignment> setup_queue_ ABSL_GUARDED_BY(mu_);
  std::map<ShardKey, v1::ShardUpdate> finished_ ABSL_GUARDED_BY(mu_);
  std::deque<ShardKey> finished_order_ ABSL_GUARDED_BY(mu_);
  const std::string incarnation_;
  uint64_t heartbeat_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // The lease: the orchestrator answers each heartbeat with how long the
  // worker may keep its shards from when it sent it. While the stream is up
  // but silent past the lease (a network cut, a hung orchestrator), the
  // orchestrator may have declared this worker lost and moved its work, so
  // the worker stops its shards: a client never runs on two workers. A
  // broken stream (the orchestrator restarting) does not expire it: the
  // orchestrator gives workers time to re-attach.
  std::deque<std::pair<uint64_t, absl::Time>> heartbeats_sent_ ABSL_GUARDED_BY(mu_);
  absl::Duration lease_length_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();  // 0: none
  absl::Time lease_until_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::deque<v1::WorkerMessage> outbox_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool left_ ABSL_GUARDED_BY(mu_) = false;  // WorkerLeaving was written
  bool attached_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(1);

  grpc::ClientContext* attach_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread attach_thread_;
  std::thread setup_thread_;
  std::thread control_thread_;
  // CPU accounting for heartbeats.
  double last_cpu_seconds_ = 0;
  absl::Time last_cpu_at_ = absl::Now();
  double last_cpu_percent_ = 0;
  double last_lag_ms_ = 0;
  std::unique_ptr<WorkerMetrics> metrics_;  // /metrics; null when disabled
};

}  // namespace llmload::worker
