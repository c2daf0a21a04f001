#include "lib/metrics/metrics.h"

#include <algorithm>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"

namespace llmload::metrics {
namespace {

constexpr std::array<std::string_view, kNumMetrics> kMetricNames = {
    "",    "connect", "session_setup", "ttft",         "itl",        "tpot",
    "e2e", "request", "ttft_service",  "e2e_service", "chunk_gap",
    "time_to_tool_call", "time_to_tool_result", "time_to_reconnect"};

constexpr std::array<std::string_view, kNumCounters> kCounterNames = {
    "",         "requests_ok",     "connect_failed",  "http_4xx",   "http_5xx",   "rate_limited",
    "protocol_error", "timeout",   "disconnected",    "tokens",     "bytes_in",   "bytes_out",
    "sessions_opened", "sessions_failed", "reconnects", "cycles", "dropped",  "offered",
    "good",     "chunks",          "unfinished", "lost",
    "input_tokens", "input_tokens_estimated", "requests_cancelled",
    "warmup_requests", "warmup_failed", "warmup_tokens", "cooldown_requests", "cooldown_tokens",
    "tool_calls", "tool_results", "publications_recovered", "publications_missed"};

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
      v1::TIME_TO_TOOL_CALL, v1::TIME_TO_TOOL_RESULT, v1::TIME_TO_RECONNECT};
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
  turns_.Merge(other.turns_);
}

void MetricSet::Reset() {
  for (auto& h : hists_) {
    h.Reset();
  }
  counters_.fill(0);
  turns_.Reset();
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
  return turns_.Empty();
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
  turns_.AppendTo(batch);
}

absl::Status MetricSet::MergeBatch(const v1::SampleBatch& batch) {
  // Decode into a scratch set first so a bad batch changes nothing.
  MetricSet delta;
  if (absl::Status s = delta.turns_.MergeBatch(batch); !s.ok()) {
    return s;
  }
  for (const auto& d : batch.histograms()) {
    if (d.has_turn()) {
      continue;  // per-turn: in delta.turns_
    }
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

void TurnMetrics::Merge(const TurnMetrics& other) {
  ttft.Merge(other.ttft);
  requests += other.requests;
  input_tokens += other.input_tokens;
  tokens += other.tokens;
}

TurnMetrics& TurnTable::At(int32_t turn) {
  const size_t i = static_cast<size_t>(std::clamp(turn, 1, kMaxTurns) - 1);
  if (turns_.size() <= i) {
    turns_.resize(i + 1);
  }
  return turns_[i];
}

void TurnTable::Complete(int32_t turn, uint64_t ttft_us, bool has_ttft, uint64_t input_tokens,
                         uint64_t tokens) {
  TurnMetrics& t = At(turn);
  if (has_ttft) {
    t.ttft.Record(ttft_us);
  }
  t.requests += 1;
  t.input_tokens += input_tokens;
  t.tokens += tokens;
}

void TurnTable::Merge(const TurnTable& other) {
  for (size_t i = 0; i < other.turns_.size(); ++i) {
    if (!other.turns_[i].Empty()) {
      At(static_cast<int32_t>(i + 1)).Merge(other.turns_[i]);
    }
  }
}

bool TurnTable::Empty() const {
  return std::all_of(turns_.begin(), turns_.end(),
                     [](const TurnMetrics& t) { return t.Empty(); });
}

void TurnTable::AppendTo(v1::SampleBatch& batch) const {
  for (size_t i = 0; i < turns_.size(); ++i) {
    const TurnMetrics& t = turns_[i];
    if (t.Empty()) {
      continue;
    }
    v1::HistogramDelta* d = batch.add_histograms();
    d->set_metric(v1::TTFT);
    d->set_encoded(t.ttft.Encode());
    v1::TurnTag* tag = d->mutable_turn();
    tag->set_turn(static_cast<int32_t>(i + 1));
    tag->set_requests(t.requests);
    tag->set_input_tokens(t.input_tokens);
    tag->set_tokens(t.tokens);
  }
}

absl::Status TurnTable::MergeBatch(const v1::SampleBatch& batch) {
  TurnTable delta;
  for (const v1::HistogramDelta& d : batch.histograms()) {
    if (!d.has_turn()) {
      continue;
    }
    const v1::TurnTag& tag = d.turn();
    if (tag.turn() < 1 || tag.turn() > kMaxTurns) {
      return absl::InvalidArgumentError("batch names a turn out of range");
    }
    if (d.metric() != v1::TTFT) {
      return absl::InvalidArgumentError("per-turn histogram of a metric other than ttft");
    }
    TurnMetrics& t = delta.At(tag.turn());
    if (absl::Status s = t.ttft.MergeEncoded(d.encoded()); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("turn ", tag.turn(), ": ", s.message()));
    }
    if (t.requests > kU64Max - tag.requests() || t.input_tokens > kU64Max - tag.input_tokens() ||
        t.tokens > kU64Max - tag.tokens()) {
      return absl::DataLossError("batch turn counters overflow");
    }
    t.requests += tag.requests();
    t.input_tokens += tag.input_tokens();
    t.tokens += tag.tokens();
  }
  for (size_t i = 0; i < delta.turns_.size() && i < turns_.size(); ++i) {
    const TurnMetrics& a = turns_[i];
    const TurnMetrics& b = delta.turns_[i];
    if (a.requests > kU64Max - b.requests || a.input_tokens > kU64Max - b.input_tokens ||
        a.tokens > kU64Max - b.tokens || a.ttft.Count() > kU64Max - b.ttft.Count() ||
        a.ttft.Sum() > kU64Max - b.ttft.Sum()) {
      return absl::DataLossError("per-turn metrics: merging would overflow");
    }
  }
  Merge(delta);
  return absl::OkStatus();
}

void TurnTable::Fill(google::protobuf::RepeatedPtrField<v1::TurnStats>& out) const {
  for (size_t i = 0; i < turns_.size(); ++i) {
    const TurnMetrics& t = turns_[i];
    if (t.Empty()) {
      continue;
    }
    v1::TurnStats* s = out.Add();
    s->set_turn(static_cast<int32_t>(i + 1));
    s->set_requests(t.requests);
    s->set_input_tokens(t.input_tokens);
    s->set_tokens(t.tokens);
    s->set_input_tokens_mean(t.requests == 0 ? 0.0
                                             : static_cast<double>(t.input_tokens) /
                                                   static_cast<double>(t.requests));
    *s->mutable_ttft() = Summarize(v1::TTFT, t.ttft);
  }
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
