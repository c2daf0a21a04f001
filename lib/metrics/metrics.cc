#include "lib/metrics/metrics.h"

#include <limits>
#include <string>

namespace llmload::metrics {
namespace {

constexpr std::array<std::string_view, kNumMetrics> kMetricNames = {
    "",    "connect", "session_setup", "ttft",         "itl",        "tpot",
    "e2e", "request", "ttft_service",  "e2e_service", "chunk_gap",
    "time_to_tool_call", "time_to_tool_result"};

constexpr std::array<std::string_view, kNumCounters> kCounterNames = {
    "",         "requests_ok",     "connect_failed",  "http_4xx",   "http_5xx",   "rate_limited",
    "protocol_error", "timeout",   "disconnected",    "tokens",     "bytes_in",   "bytes_out",
    "sessions_opened", "sessions_failed", "reconnects", "cycles", "dropped",  "offered",
    "good",     "chunks",          "unfinished", "lost",
    "input_tokens", "input_tokens_estimated", "requests_cancelled",
    // 25-29: not assigned here (no name, never listed).
    "", "", "", "", "",
    "tool_calls", "tool_results"};

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

bool ValidMetric(int m) { return m > 0 && m < kNumMetrics; }
bool ValidCounter(int c) { return c > 0 && c < kNumCounters && !kCounterNames[c].empty(); }

}  // namespace

std::string_view MetricName(v1::Metric metric) {
  return ValidMetric(metric) ? kMetricNames[metric] : "unknown";
}

std::string_view CounterName(v1::Counter counter) {
  return ValidCounter(counter) ? kCounterNames[counter] : "unknown";
}

std::optional<v1::Metric> MetricFromName(std::string_view name) {
  for (int m = 1; m < kNumMetrics; ++m) {
    if (kMetricNames[m] == name) {
      return static_cast<v1::Metric>(m);
    }
  }
  return std::nullopt;
}

std::optional<v1::Counter> CounterFromName(std::string_view name) {
  for (int c = 1; c < kNumCounters; ++c) {
    if (ValidCounter(c) && kCounterNames[c] == name) {
      return static_cast<v1::Counter>(c);
    }
  }
  return std::nullopt;
}

const std::array<v1::Metric, kNumMetrics - 1>& AllMetrics() {
  static const std::array<v1::Metric, kNumMetrics - 1> kAll = {
      v1::CONNECT, v1::SESSION_SETUP, v1::REQUEST,     v1::TTFT,        v1::ITL,
      v1::TPOT,    v1::E2E,           v1::TTFT_SERVICE, v1::E2E_SERVICE, v1::CHUNK_GAP,
      v1::TIME_TO_TOOL_CALL, v1::TIME_TO_TOOL_RESULT};
  return kAll;
}

std::span<const v1::Counter> AllCounters() {
  struct Listed {
    std::array<v1::Counter, kNumCounters - 1> counters{};
    size_t size = 0;
  };
  static const Listed kAll = [] {
    Listed l;
    for (int c = 1; c < kNumCounters; ++c) {
      if (ValidCounter(c)) {
        l.counters[l.size++] = static_cast<v1::Counter>(c);
      }
    }
    return l;
  }();
  return {kAll.counters.data(), kAll.size};
}

bool IsRequestFailureCounter(v1::Counter counter) {
  switch (counter) {
    case v1::CONNECT_FAILED:
    case v1::HTTP_4XX:
    case v1::HTTP_5XX:
    case v1::RATE_LIMITED:
    case v1::PROTOCOL_ERROR:
    case v1::TIMEOUT:
    case v1::DISCONNECTED:
      return true;
    default:
      return false;
  }
}

void MetricSet::Merge(const MetricSet& other) {
  for (int m = 1; m < kNumMetrics; ++m) {
    hists_[m].Merge(other.hists_[m]);
  }
  for (int c = 1; c < kNumCounters; ++c) {
    counters_[c] += other.counters_[c];
  }
}

void MetricSet::Reset() {
  for (auto& h : hists_) {
    h.Reset();
  }
  counters_.fill(0);
}

bool MetricSet::Empty() const {
  for (const auto& h : hists_) {
    if (!h.Empty()) {
      return false;
    }
  }
  for (uint64_t c : counters_) {
    if (c != 0) {
      return false;
    }
  }
  return true;
}

void MetricSet::AppendTo(v1::SampleBatch& batch) const {
  for (int m = 1; m < kNumMetrics; ++m) {
    if (!hists_[m].Empty()) {
      auto* d = batch.add_histograms();
      d->set_metric(static_cast<v1::Metric>(m));
      d->set_encoded(hists_[m].Encode());
    }
  }
  for (int c = 1; c < kNumCounters; ++c) {
    if (counters_[c] != 0) {
      auto* d = batch.add_counters();
      d->set_counter(static_cast<v1::Counter>(c));
      d->set_value(counters_[c]);
    }
  }
}

absl::Status MetricSet::MergeBatch(const v1::SampleBatch& batch) {
  // Decode into a scratch set first so a bad batch changes nothing.
  MetricSet delta;
  for (const auto& d : batch.histograms()) {
    if (!ValidMetric(d.metric())) {
      return absl::InvalidArgumentError("batch names an unknown metric");
    }
    if (absl::Status s = delta.hists_[d.metric()].MergeEncoded(d.encoded()); !s.ok()) {
      return absl::Status(s.code(), std::string(MetricName(d.metric())) + ": " +
                                        std::string(s.message()));
    }
  }
  for (const auto& d : batch.counters()) {
    if (!ValidCounter(d.counter())) {
      return absl::InvalidArgumentError("batch names an unknown counter");
    }
    if (delta.counters_[d.counter()] > kU64Max - d.value()) {
      return absl::DataLossError("batch counter overflows");
    }
    delta.counters_[d.counter()] += d.value();
  }
  // A batch that would wrap a running total is refused whole.
  for (int m = 1; m < kNumMetrics; ++m) {
    const histogram::Histogram& a = hists_[m];
    const histogram::Histogram& b = delta.hists_[m];
    if (a.Count() > kU64Max - b.Count() || a.Sum() > kU64Max - b.Sum() ||
        a.Saturated() > kU64Max - b.Saturated()) {
      return absl::DataLossError(
          std::string(MetricName(static_cast<v1::Metric>(m))) + ": merging would overflow");
    }
  }
  for (int c = 1; c < kNumCounters; ++c) {
    if (counters_[c] > kU64Max - delta.counters_[c]) {
      return absl::DataLossError(
          std::string(CounterName(static_cast<v1::Counter>(c))) + ": merging would overflow");
    }
  }
  Merge(delta);
  return absl::OkStatus();
}

v1::MetricStats Summarize(v1::Metric metric, const histogram::Histogram& h) {
  constexpr double kMs = 1000.0;
  v1::MetricStats s;
  s.set_metric(std::string(MetricName(metric)));
  s.set_count(h.Count());
  if (h.Empty()) {
    return s;
  }
  s.set_min_ms(static_cast<double>(h.Min()) / kMs);
  s.set_mean_ms(h.Mean() / kMs);
  s.set_p50_ms(static_cast<double>(h.Percentile(50)) / kMs);
  s.set_p90_ms(static_cast<double>(h.Percentile(90)) / kMs);
  s.set_p95_ms(static_cast<double>(h.Percentile(95)) / kMs);
  s.set_p99_ms(static_cast<double>(h.Percentile(99)) / kMs);
  s.set_p999_ms(static_cast<double>(h.Percentile(99.9)) / kMs);
  s.set_max_ms(static_cast<double>(h.Max()) / kMs);
  return s;
}

uint64_t FailedRequests(const MetricSet& set) {
  uint64_t n = 0;
  for (v1::Counter c : AllCounters()) {
    if (IsRequestFailureCounter(c)) {
      n += set.Get(c);
    }
  }
  return n;
}

}  // namespace llmload::metrics
