// File: metrics_exposition.h
//
// Prometheus exposition of the collector's in-memory state, built at scrape
// time (a prometheus::Collectable registered with a prometheus::Exposer), so
// the numbers are exactly those of GetRunStats at that moment:
//
// Every per-run series carries run_id, and protocol when the workers named
// the run's protocol (an empty label is no label to Prometheus).
//
//   llmload_<metric>_seconds{quantile}     summary per run and latency metric
//       with samples (every metric of metrics::AllMetrics(): connect,
//       session_setup, ttft, itl, tpot, e2e, request, ttft_service,
//       e2e_service, chunk_gap): quantiles 0.5 0.9 0.95 0.99 0.999 of the
//       merged histogram, exactly GetRunStats' values, _sum and _count.
//   llmload_<metric>_histogram_seconds{worker_id,le} classic histogram of
//       the same samples in fixed buckets (0.5 ms .. 120 s, +Inf; a sample
//       counts in the first bucket whose bound is >= the value Percentile
//       reports for it, within the series' own min and max), for
//       histogram_quantile and heatmaps across collectors: one series per
//       worker of the run (sum by (le) is the run's), or with
//       Options::worker_label false one per run, without worker_id, for
//       fleets where per-worker series would be too many for Prometheus.
//   llmload_requests_total{outcome}        ok or a failure class
//   llmload_tokens_total, llmload_bytes_received_total,
//   llmload_bytes_sent_total, llmload_sessions_opened_total,
//   llmload_sessions_failed_total, llmload_reconnects_total,
//   llmload_cycles_total, llmload_dropped_total, llmload_offered_total,
//   llmload_good_total, llmload_chunks_total, llmload_unfinished_total
//   (llmload_<counter>_total)
//   llmload_active_sessions                gauge
//   llmload_run_workers                    gauge: workers not yet final
//   llmload_run_complete                   gauge 0/1
//   llmload_run_worker_cpu_ratio{worker_id}, llmload_run_worker_loop_lag_seconds{worker_id}
//                                          each worker's health, latest batch
//   llmload_collector_batches_total{result}  applied | duplicate | rejected
//   llmload_collector_commits_total        SQLite transactions that stored
//                                          batches (group commits)
//   llmload_collector_runs{state}          live | archived
//
// Archived runs (finished, past retention) are not exposed. Label values are
// run ids (bounded by the live runs), worker ids (bounded by the workers),
// protocol enum names and fixed words.
//
// Thread-safe: Collect() takes the registry's reader lock.

#pragma once

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "services/collector/ingest_pipeline.h"
#include "services/collector/run_registry.h"

namespace llmload::collector {

// The classic histogram of `h` (microseconds) in seconds (for tests).
prometheus::ClientMetric::Histogram ClassicHistogram(const histogram::Histogram& h);
// The same from a sparse histogram's encoded parts, without a dense array
// (equal to ClassicHistogram(h.ToDense())).
prometheus::ClientMetric::Histogram ClassicHistogram(const SparseHistogram& h);

class MetricsExposition final : public prometheus::Collectable {
 public:
  struct Options {
    // Classic histograms per worker (worker_id label) rather than per run
    // (llmload-collector --metrics-worker-label).
    bool worker_label = true;
  };

  // Both must outlive this object (and its registration with an Exposer).
  MetricsExposition(const RunRegistry* registry, const IngestCounters* counters)
      : MetricsExposition(registry, counters, Options()) {}
  MetricsExposition(const RunRegistry* registry, const IngestCounters* counters, Options options)
      : registry_(registry), counters_(counters), options_(options) {}

  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const RunRegistry* const registry_;
  const IngestCounters* const counters_;
  const Options options_;
};

}  // namespace llmload::collector
