// File: metrics_exposition.h
//
// Prometheus exposition of the collector's in-memory state, built at scrape
// time (a prometheus::Collectable registered with a prometheus::Exposer), so
// the numbers are exactly those of GetRunStats at that moment:
//
//   llmload_<metric>_seconds{run_id,quantile}  summary per run and latency
//       metric with samples (ttft, itl, e2e, connect, session_setup, tpot,
//       request, and any metric metrics::AllMetrics() adds): quantiles 0.5 0.9 0.95 0.99 0.999 of the merged
//       histogram, _sum and _count; seconds.
//   llmload_requests_total{run_id,outcome}     outcome = ok or a failure class
//   llmload_tokens_total, llmload_bytes_received_total,
//   llmload_bytes_sent_total, llmload_sessions_opened_total,
//   llmload_sessions_failed_total, llmload_reconnects_total,
//   llmload_cycles_total                       counters per run_id; any other
//                                              counter as llmload_<name>_total
//   llmload_active_sessions{run_id}            gauge
//   llmload_collector_batches_total{result}    applied | duplicate | rejected
//
// Label values are run ids (bounded by the runs ingested) and fixed words.
//
// Thread-safe: Collect() takes the registry's reader lock.

#pragma once

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "services/collector/ingest_pipeline.h"
#include "services/collector/run_registry.h"

namespace llmload::collector {

class MetricsExposition final : public prometheus::Collectable {
 public:
  // Both must outlive this object (and its registration with an Exposer).
  MetricsExposition(const RunRegistry* registry, const IngestCounters* counters)
      : registry_(registry), counters_(counters) {}

  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const RunRegistry* const registry_;
  const IngestCounters* const counters_;
};

}  // namespace llmload::collector
