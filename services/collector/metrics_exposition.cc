#include "services/collector/metrics_exposition.h"

#include <algorithm>
#include <array>
#include <limits>
#include <string>
#include <utility>

#include "lib/histogram/histogram.h"
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

// Upper bounds (seconds) of the classic histograms' `le` buckets, the same in
// every collector so histogram_quantile can aggregate across them.
constexpr std::array<double, 17> kLeSeconds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                               0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                               5,      10,    30,     60,    120};

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

// run_id, and protocol when the run has one (an empty label value is the
// same as no label to Prometheus).
std::vector<ClientMetric::Label> RunLabels(const std::string& run_id, const RunState& run) {
  std::vector<ClientMetric::Label> labels{{"run_id", run_id}};
  if (!run.protocol.empty()) {
    labels.push_back({"protocol", run.protocol});
  }
  return labels;
}

std::vector<ClientMetric::Label> With(std::vector<ClientMetric::Label> labels, std::string name,
                                      std::string value) {
  labels.push_back({std::move(name), std::move(value)});
  return labels;
}

ClientMetric CounterMetric(std::vector<ClientMetric::Label> labels, uint64_t value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = static_cast<double>(value);
  return m;
}

ClientMetric GaugeMetric(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

}  // namespace

namespace {

// Counts of each `le` bucket (not yet cumulative) of one histogram whose
// exact min and max are known: a sample counts in the first bucket whose
// bound is >= the value Percentile reports for it (its bucket's midpoint
// clamped to [min, max]).
class LeBinner {
 public:
  LeBinner(uint64_t min, uint64_t max) : min_(min), max_(max) {}
  void Add(size_t index, uint64_t count) {
    const uint64_t value = std::clamp(histogram::Histogram::BucketValue(index), min_, max_);
    size_t le = 0;
    while (le < kLeSeconds.size() &&
           static_cast<double>(value) > kLeSeconds[le] * kMicrosPerSecond) {
      ++le;
    }
    if (le < kLeSeconds.size()) {
      per_le_[le] += count;
    }
  }
  ClientMetric::Histogram Finish(uint64_t count, uint64_t sum) const {
    ClientMetric::Histogram out;
    out.sample_count = count;
    out.sample_sum = static_cast<double>(sum) / kMicrosPerSecond;
    uint64_t cumulative = 0;
    for (size_t k = 0; k < kLeSeconds.size(); ++k) {
      cumulative += per_le_[k];
      out.bucket.push_back({cumulative, kLeSeconds[k]});
    }
    out.bucket.push_back({count, std::numeric_limits<double>::infinity()});
    return out;
  }

 private:
  uint64_t min_;
  uint64_t max_;
  std::array<uint64_t, kLeSeconds.size()> per_le_{};
};

}  // namespace

ClientMetric::Histogram ClassicHistogram(const histogram::Histogram& h) {
  using histogram::Histogram;
  LeBinner binner(h.Min(), h.Max());
  if (!h.Empty()) {
    const size_t last = Histogram::BucketIndex(h.Max());
    for (size_t i = Histogram::BucketIndex(h.Min()); i <= last; ++i) {
      if (const uint64_t count = h.CountAt(i); count != 0) {
        binner.Add(i, count);
      }
    }
  }
  return binner.Finish(h.Count(), h.Sum());
}

ClientMetric::Histogram ClassicHistogram(const SparseHistogram& h) {
  // Straight from the encoded parts: no dense array to clear and scan, so a
  // scrape costs what the workers' non-empty buckets cost.
  thread_local std::vector<histogram::SparseDecoded> parts;
  parts.resize(h.parts().size());
  uint64_t min = std::numeric_limits<uint64_t>::max();
  uint64_t max = 0;
  uint64_t count = 0;
  uint64_t sum = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    // Every part was validated on the way in (or produced by Encode).
    if (!histogram::Histogram::DecodeSparse(h.parts()[i], &parts[i]).ok() ||
        parts[i].count == 0) {
      parts[i].entries.clear();
      continue;
    }
    min = std::min(min, parts[i].min);
    max = std::max(max, parts[i].max);
    count += parts[i].count;
    sum += parts[i].sum;
  }
  LeBinner binner(count == 0 ? 0 : min, max);
  for (const histogram::SparseDecoded& part : parts) {
    for (const auto& [index, n] : part.entries) {
      binner.Add(index, n);
    }
  }
  return binner.Finish(count, sum);
}


std::vector<MetricFamily> MetricsExposition::Collect() const {
  const auto& all_metrics = metrics::AllMetrics();
  std::vector<MetricFamily> latency;
  std::vector<MetricFamily> classic;
  latency.reserve(all_metrics.size());
  classic.reserve(all_metrics.size());
  for (v1::Metric m : all_metrics) {
    const std::string name(metrics::MetricName(m));
    latency.push_back(Family("llmload_" + name + "_seconds",
                             "Latency '" + name +
                                 "' of the run, merged over its workers: exact quantiles of the "
                                 "merged histogram (seconds).",
                             MetricType::Summary));
    classic.push_back(Family("llmload_" + name + "_histogram_seconds",
                             "Latency '" + name +
                                 "' of the run in fixed le buckets, for histogram_quantile and "
                                 "heatmaps (seconds).",
                             MetricType::Histogram));
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
  MetricFamily workers = Family("llmload_run_workers",
                                "Workers sending the run's samples (not yet final).",
                                MetricType::Gauge);
  MetricFamily complete = Family("llmload_run_complete",
                                 "1 once every worker of the run sent its final batch.",
                                 MetricType::Gauge);
  MetricFamily cpu = Family("llmload_run_worker_cpu_ratio",
                            "CPU use of each worker of the run in its latest batch (1 = one core).",
                            MetricType::Gauge);
  MetricFamily lag = Family("llmload_run_worker_loop_lag_seconds",
                            "Largest event-loop lag of each worker of the run in its latest batch.",
                            MetricType::Gauge);
  size_t live_runs = 0;
  size_t archived_runs = 0;

  registry_->ForEachRun([&](const std::string& run_id, const RunState& run) {
    if (run.archived()) {
      ++archived_runs;
      return;
    }
    ++live_runs;
    const std::vector<ClientMetric::Label> labels = RunLabels(run_id, run);
    for (size_t i = 0; i < all_metrics.size(); ++i) {
      const histogram::Histogram& h = run.merged->Hist(all_metrics[i]);
      if (h.Empty()) {
        continue;
      }
      if (options_.worker_label) {
        // One series per worker; sum by (le) gives the run's.
        for (const auto& [worker_id, w] : run.workers) {
          const SparseHistogram& wh = w.metrics.Hist(all_metrics[i]);
          if (wh.Empty()) {
            continue;
          }
          ClientMetric hm;
          hm.label = With(labels, "worker_id", worker_id);
          hm.histogram = ClassicHistogram(wh);
          classic[i].metric.push_back(std::move(hm));
        }
      } else {
        ClientMetric hm;
        hm.label = labels;
        hm.histogram = ClassicHistogram(h);
        classic[i].metric.push_back(std::move(hm));
      }
      ClientMetric cm;
      cm.label = labels;
      cm.summary.sample_count = h.Count();
      cm.summary.sample_sum = static_cast<double>(h.Sum()) / kMicrosPerSecond;
      for (const auto& [quantile, percentile] : kQuantiles) {
        cm.summary.quantile.push_back(
            {quantile, static_cast<double>(h.Percentile(percentile)) / kMicrosPerSecond});
      }
      latency[i].metric.push_back(std::move(cm));
    }
    requests.metric.push_back(
        CounterMetric(With(labels, "outcome", "ok"), run.merged->Get(v1::REQUESTS_OK)));
    for (v1::Counter c : metrics::AllCounters()) {
      if (metrics::IsRequestFailureCounter(c)) {
        requests.metric.push_back(CounterMetric(
            With(labels, "outcome", std::string(metrics::CounterName(c))), run.merged->Get(c)));
      }
    }
    for (size_t i = 0; i < counter_ids.size(); ++i) {
      counters[i].metric.push_back(CounterMetric(labels, run.merged->Get(counter_ids[i])));
    }
    active.metric.push_back(GaugeMetric(labels, static_cast<double>(run.ActiveSessions())));
    workers.metric.push_back(GaugeMetric(labels, static_cast<double>(run.ActiveWorkers())));
    complete.metric.push_back(GaugeMetric(labels, run.Complete() ? 1.0 : 0.0));
    for (const auto& [worker_id, w] : run.workers) {
      cpu.metric.push_back(GaugeMetric(With(labels, "worker_id", worker_id), w.cpu_percent / 100));
      lag.metric.push_back(
          GaugeMetric(With(labels, "worker_id", worker_id), w.loop_lag_ms / 1000));
    }
  });

  std::vector<MetricFamily> out;
  for (std::vector<MetricFamily>* families : {&latency, &classic}) {
    for (MetricFamily& f : *families) {
      if (!f.metric.empty()) {
        out.push_back(std::move(f));
      }
    }
  }
  if (!requests.metric.empty()) {
    out.push_back(std::move(requests));
    for (MetricFamily& f : counters) {
      out.push_back(std::move(f));
    }
    out.push_back(std::move(active));
    out.push_back(std::move(workers));
    out.push_back(std::move(complete));
    out.push_back(std::move(cpu));
    out.push_back(std::move(lag));
  }
  MetricFamily runs = Family("llmload_collector_runs",
                             "Runs this collector holds: live (on /metrics) or archived "
                             "(finished, past retention, served over gRPC only).",
                             MetricType::Gauge);
  runs.metric.push_back(GaugeMetric({{"state", "live"}}, static_cast<double>(live_runs)));
  runs.metric.push_back(GaugeMetric({{"state", "archived"}}, static_cast<double>(archived_runs)));
  out.push_back(std::move(runs));
  MetricFamily batches = Family("llmload_collector_batches_total",
                                "Sample batches this collector process received, by result.",
                                MetricType::Counter);
  batches.metric.push_back(CounterMetric(
      {{"result", "applied"}}, counters_->applied.load(std::memory_order_relaxed)));
  batches.metric.push_back(CounterMetric(
      {{"result", "duplicate"}}, counters_->duplicate.load(std::memory_order_relaxed)));
  batches.metric.push_back(CounterMetric(
      {{"result", "rejected"}}, counters_->rejected.load(std::memory_order_relaxed)));
  batches.metric.push_back(CounterMetric(
      {{"result", "fenced"}}, counters_->fenced.load(std::memory_order_relaxed)));
  out.push_back(std::move(batches));
  MetricFamily commits = Family("llmload_collector_commits_total",
                                "SQLite transactions that stored batches (one per group commit).",
                                MetricType::Counter);
  commits.metric.push_back(
      CounterMetric({}, counters_->commits.load(std::memory_order_relaxed)));
  out.push_back(std::move(commits));
  return out;
}

}  // namespace llmload::collector
