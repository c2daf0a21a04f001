#include "services/worker/worker_metrics.h"

#include <sys/resource.h>

#include <exception>
#include <utility>

#include "prometheus/exposer.h"

namespace llmload::worker {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Gauge(const std::string& name, const std::string& help, const std::string& worker_id,
                   double value, MetricType type = MetricType::Gauge) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  ClientMetric m;
  m.label.push_back({"worker_id", worker_id});
  if (type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

}  // namespace

double ProcessCpuSecondsNow() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::vector<MetricFamily> WorkerHealthFamilies(const std::string& worker_id,
                                               const WorkerHealth& h, double cpu_seconds) {
  return {
      Gauge("llmload_worker_active_sessions", "Sessions this worker has open.", worker_id,
            static_cast<double>(h.active_sessions)),
      Gauge("llmload_worker_runs", "Shards (runs) this worker is running.", worker_id,
            static_cast<double>(h.runs)),
      Gauge("llmload_worker_cpu_ratio",
            "CPU use over the latest heartbeat interval (1 = one core).", worker_id,
            h.cpu_percent / 100),
      Gauge("llmload_worker_cpu_seconds_total", "CPU time (user + system) of the worker process.",
            worker_id, cpu_seconds, MetricType::Counter),
      Gauge("llmload_worker_loop_lag_seconds",
            "Largest event-loop timer drift in the latest heartbeat interval.", worker_id,
            h.loop_lag_ms / 1000),
      Gauge("llmload_worker_event_loops", "Event-loop threads of the worker.", worker_id,
            static_cast<double>(h.event_loops)),
      Gauge("llmload_worker_batches_unacked",
            "Sample batches waiting for the collector's ack (kept for resending).", worker_id,
            static_cast<double>(h.batches_unacked)),
  };
}

class WorkerMetrics::Collector final : public prometheus::Collectable {
 public:
  Collector(std::string worker_id, SnapshotFn snapshot)
      : worker_id_(std::move(worker_id)), snapshot_(std::move(snapshot)) {}
  std::vector<MetricFamily> Collect() const override {
    return WorkerHealthFamilies(worker_id_, snapshot_(), ProcessCpuSecondsNow());
  }

 private:
  const std::string worker_id_;
  const SnapshotFn snapshot_;
};

absl::StatusOr<std::unique_ptr<WorkerMetrics>> WorkerMetrics::Serve(const std::string& address,
                                                                    std::string worker_id,
                                                                    SnapshotFn snapshot) {
  std::unique_ptr<WorkerMetrics> m(new WorkerMetrics());
  m->collector_ = std::make_shared<Collector>(std::move(worker_id), std::move(snapshot));
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError("cannot serve worker metrics on " + address + ": " + e.what());
  }
  m->exposer_->RegisterCollectable(m->collector_);
  const std::vector<int> ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? 0 : ports.front();
  return m;
}

WorkerMetrics::~WorkerMetrics() {
  // Stop serving before the collectable (and the worker it reads) goes.
  exposer_.reset();
}

}  // namespace llmload::worker
