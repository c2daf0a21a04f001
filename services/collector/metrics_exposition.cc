#include "services/collector/metrics_exposition.h"

#include <array>
#include <string>
#include <utility>

#include "lib/metrics/metrics.h"

namespace llmload::collector {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr double kMicrosPerSecond = 1e6;

// Prometheus quantile and the histogram percentile it reads (the same
// literals Summarize uses, so both report identical values).
constexpr std::array<std::pair<double, double>, 5> kQuantiles = {
    {{0.5, 50.0}, {0.9, 90.0}, {0.95, 95.0}, {0.99, 99.0}, {0.999, 99.9}}};

// Family name of a counter that is not a request outcome:
// llmload_<name>_total, but bytes get the direction in their name.
std::string CounterFamilyName(v1::Counter counter) {
  switch (counter) {
    case v1::BYTES_IN:
      return "llmload_bytes_received_total";
    case v1::BYTES_OUT:
      return "llmload_bytes_sent_total";
    default:
      return "llmload_" + std::string(metrics::CounterName(counter)) + "_total";
  }
}

// Counters that are requests by outcome (llmload_requests_total).
bool IsOutcome(v1::Counter counter) {
  return counter == v1::REQUESTS_OK || metrics::IsRequestFailureCounter(counter);
}

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric RunMetric(const std::string& run_id) {
  ClientMetric m;
  m.label.push_back({"run_id", run_id});
  return m;
}

ClientMetric CounterMetric(std::vector<ClientMetric::Label> labels, uint64_t value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = static_cast<double>(value);
  return m;
}

}  // namespace

std::vector<MetricFamily> MetricsExposition::Collect() const {
  const auto& all_metrics = metrics::AllMetrics();
  std::vector<MetricFamily> latency;
  latency.reserve(all_metrics.size());
  for (v1::Metric m : all_metrics) {
    const std::string name(metrics::MetricName(m));
    latency.push_back(Family("llmload_" + name + "_seconds",
                             "Latency '" + name + "' of the run, merged over its workers (seconds).",
                             MetricType::Summary));
  }
  MetricFamily requests = Family("llmload_requests_total",
                                 "Requests of the run by outcome (ok or the failure class).",
                                 MetricType::Counter);
  // Every other counter gets a family of its own (tokens, bytes, sessions,
  // reconnects, cycles, and whatever the vocabulary grows).
  std::vector<v1::Counter> counter_ids;
  std::vector<MetricFamily> counters;
  for (v1::Counter c : metrics::AllCounters()) {
    if (IsOutcome(c)) {
      continue;
    }
    counter_ids.push_back(c);
    counters.push_back(Family(CounterFamilyName(c),
                              "Counter '" + std::string(metrics::CounterName(c)) +
                                  "' of the run, summed over its workers.",
                              MetricType::Counter));
  }
  MetricFamily active = Family("llmload_active_sessions",
                               "Sessions open at the end of each worker's latest interval, summed.",
                               MetricType::Gauge);

  registry_->ForEachRun([&](const std::string& run_id, const RunState& run) {
    if (run.archived()) {
      return;
    }
    for (size_t i = 0; i < all_metrics.size(); ++i) {
      const histogram::Histogram& h = run.merged->Hist(all_metrics[i]);
      if (h.Empty()) {
        continue;
      }
      ClientMetric cm = RunMetric(run_id);
      cm.summary.sample_count = h.Count();
      cm.summary.sample_sum = static_cast<double>(h.Sum()) / kMicrosPerSecond;
      for (const auto& [quantile, percentile] : kQuantiles) {
        cm.summary.quantile.push_back(
            {quantile, static_cast<double>(h.Percentile(percentile)) / kMicrosPerSecond});
      }
      latency[i].metric.push_back(std::move(cm));
    }
    requests.metric.push_back(
        CounterMetric({{"run_id", run_id}, {"outcome", "ok"}}, run.merged->Get(v1::REQUESTS_OK)));
    for (v1::Counter c : metrics::AllCounters()) {
      if (metrics::IsRequestFailureCounter(c)) {
        requests.metric.push_back(CounterMetric(
            {{"run_id", run_id}, {"outcome", std::string(metrics::CounterName(c))}},
            run.merged->Get(c)));
      }
    }
    for (size_t i = 0; i < counter_ids.size(); ++i) {
      counters[i].metric.push_back(
          CounterMetric({{"run_id", run_id}}, run.merged->Get(counter_ids[i])));
    }
    ClientMetric gauge = RunMetric(run_id);
    gauge.gauge.value = static_cast<double>(run.ActiveSessions());
    active.metric.push_back(std::move(gauge));
  });

  std::vector<MetricFamily> out;
  for (MetricFamily& f : latency) {
    if (!f.metric.empty()) {
      out.push_back(std::move(f));
    }
  }
  if (!requests.metric.empty()) {
    out.push_back(std::move(requests));
    for (MetricFamily& f : counters) {
      out.push_back(std::move(f));
    }
    out.push_back(std::move(active));
  }
  MetricFamily batches = Family("llmload_collector_batches_total",
                                "Sample batches this collector process received, by result.",
                                MetricType::Counter);
  batches.metric.push_back(CounterMetric(
      {{"result", "applied"}}, counters_->applied.load(std::memory_order_relaxed)));
  batches.metric.push_back(CounterMetric(
      {{"result", "duplicate"}}, counters_->duplicate.load(std::memory_order_relaxed)));
  batches.metric.push_back(CounterMetric(
      {{"result", "rejected"}}, counters_->rejected.load(std::memory_order_relaxed)));
  out.push_back(std::move(batches));
  return out;
}

}  // namespace llmload::collector
