// File: worker.h
//
// The worker process: attaches to the orchestrator (hello, heartbeats, shard
// progress up; assignments and stops down), runs each assigned shard on the
// event loops, cuts one sample batch per run every batch interval and hands
// it to the BatchShipper. A shard is reported DONE only once the collector
// has acked every batch of it, so a COMPLETED run's statistics are whole.
//
// Threads: the event loops (data path), one attach thread (plus its reader),
// one control thread (batch cuts, progress, heartbeats), the shipper's.

#pragma once

#include <atomic>
#include <cstdint>
#include <map>
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
  // Stops starting sessions, cancels running shards, flushes batches (up to
  // `drain`), detaches. Safe to call once from the main thread.
  void Shutdown(absl::Duration drain);

 private:
  struct RunState {
    std::unique_ptr<ShardRunner> runner;
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
  void OnAssignment(const v1::ShardAssignment& a);
  void OnStop(const std::string& run_id);
  void ControlLoop();
  void Tick(bool interval_cut, bool heartbeat_due);
  void SendToOrchestrator(v1::WorkerMessage msg);
  v1::ShardUpdate MakeUpdate(const std::string& run_id, RunState& rs, v1::ShardState state);

  WorkerConfig config_;
  EventLoops loops_;
  BatchShipper shipper_;

  absl::Mutex mu_;
  std::map<std::string, RunState> runs_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::WorkerMessage> outbox_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool attached_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(1);

  grpc::ClientContext* attach_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread attach_thread_;
  std::thread control_thread_;
  // CPU accounting for heartbeats.
  double last_cpu_seconds_ = 0;
  absl::Time last_cpu_at_ = absl::Now();
  double last_cpu_percent_ = 0;
  double last_lag_ms_ = 0;
  std::unique_ptr<WorkerMetrics> metrics_;  // /metrics; null when disabled
};

}  // namespace llmload::worker
