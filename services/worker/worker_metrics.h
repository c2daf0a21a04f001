// File: worker_metrics.h
//
// The worker's own Prometheus endpoint (default :9103): process health, not
// run results (those come from the collector).
//
//   llmload_worker_active_sessions{worker_id}    sessions open now
//   llmload_worker_runs{worker_id}               shards (runs) in progress
//   llmload_worker_cpu_ratio{worker_id}          CPU use over the latest
//                                                heartbeat interval (1 = one core)
//   llmload_worker_cpu_seconds_total{worker_id}  CPU time of the process
//   llmload_worker_loop_lag_seconds{worker_id}   largest event-loop lag in the
//                                                latest heartbeat interval
//   llmload_worker_event_loops{worker_id}        event-loop threads
//   llmload_worker_batches_unacked{worker_id}    sample batches not yet acked
//                                                by the collector
//
// Values are read at scrape time through a callback the worker supplies:
//
//   auto m = WorkerMetrics::Serve("0.0.0.0:9103", "w-1", [&] { return Snapshot(); });
//   if (!m.ok()) { log; }   // the worker runs on without the endpoint
//
// Thread-safe: the callback runs on the exposer's HTTP thread and must be
// quick; it may take the worker's locks (never held while blocking).

#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace prometheus {
class Exposer;
}

namespace llmload::worker {

struct WorkerHealth {
  int64_t active_sessions = 0;
  int64_t runs = 0;
  double cpu_percent = 0;  // of one core
  double loop_lag_ms = 0;
  int64_t event_loops = 0;
  uint64_t batches_unacked = 0;
};

// The families above for one snapshot (pure; unit-testable).
std::vector<prometheus::MetricFamily> WorkerHealthFamilies(const std::string& worker_id,
                                                           const WorkerHealth& health,
                                                           double cpu_seconds);

// CPU time (user + system) of this process in seconds.
double ProcessCpuSecondsNow();

class WorkerMetrics {
 public:
  using SnapshotFn = std::function<WorkerHealth()>;

  // Serves /metrics on `address` (host:port; port 0 picks one).
  // UNAVAILABLE when it cannot bind.
  static absl::StatusOr<std::unique_ptr<WorkerMetrics>> Serve(const std::string& address,
                                                              std::string worker_id,
                                                              SnapshotFn snapshot);
  ~WorkerMetrics();
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  int port() const { return port_; }

 private:
  class Collector;
  WorkerMetrics() = default;

  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace llmload::worker
