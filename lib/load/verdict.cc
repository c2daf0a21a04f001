#include "lib/load/verdict.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/metrics/metrics.h"

namespace llmload::load {
namespace {

double DurationMs(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) * 1e3 + static_cast<double>(d.nanos()) / 1e6;
}

uint64_t DurationUs(const google::protobuf::Duration& d) {
  const int64_t us = d.seconds() * 1000000 + d.nanos() / 1000;
  return us > 0 ? static_cast<uint64_t>(us) : 0;
}

bool IsThroughputMetric(std::string_view name) {
  return std::find(std::begin(kThroughputMetrics), std::end(kThroughputMetrics), name) !=
         std::end(kThroughputMetrics);
}

// The value at percentile p from the summary points the collector reports,
// interpolating between them; *exact is false when interpolated.
double PercentileMs(const v1::MetricStats& s, double p, bool* exact) {
  const std::array<std::pair<double, double>, 7> points = {{{0, s.min_ms()},
                                                            {50, s.p50_ms()},
                                                            {90, s.p90_ms()},
                                                            {95, s.p95_ms()},
                                                            {99, s.p99_ms()},
                                                            {99.9, s.p999_ms()},
                                                            {100, s.max_ms()}}};
  *exact = false;
  for (size_t i = 0; i < points.size(); ++i) {
    if (std::abs(points[i].first - p) < 1e-9) {
      *exact = true;
      return points[i].second;
    }
    if (i + 1 < points.size() && p > points[i].first && p < points[i + 1].first) {
      const auto [p0, v0] = points[i];
      const auto [p1, v1] = points[i + 1];
      return v0 + (v1 - v0) * (p - p0) / (p1 - p0);
    }
  }
  return s.max_ms();
}

std::string PercentileName(double p) {
  std::string s = absl::StrFormat("%g", p);
  return absl::StrCat("p", s);
}

}  // namespace

const v1::MetricStats* FindMetric(const v1::RunStats& stats, std::string_view metric) {
  for (const v1::MetricStats& m : stats.metrics()) {
    if (m.metric() == metric) {
      return &m;
    }
  }
  return nullptr;
}

uint64_t CounterValue(const v1::RunStats& stats, v1::Counter counter) {
  const std::string_view name = metrics::CounterName(counter);
  auto it = stats.counters().find(std::string(name));
  return it == stats.counters().end() ? 0 : it->second;
}

v1::ThresholdKind KindOf(const v1::Threshold& threshold) {
  if (threshold.kind() != v1::THRESHOLD_KIND_UNSPECIFIED) {
    return threshold.kind();
  }
  if (threshold.metric() == kErrorRateMetric) {
    return v1::ERROR_RATE;
  }
  if (IsThroughputMetric(threshold.metric())) {
    return v1::THROUGHPUT;
  }
  return v1::PERCENTILE;
}

LoadAccounting Account(const v1::RunStats& stats) {
  LoadAccounting a;
  a.offered = CounterValue(stats, v1::OFFERED);
  a.dropped = CounterValue(stats, v1::DROPPED);
  a.ok = CounterValue(stats, v1::REQUESTS_OK);
  a.unfinished = CounterValue(stats, v1::UNFINISHED);
  a.lost = CounterValue(stats, v1::LOST);
  for (v1::Counter c : metrics::AllCounters()) {
    if (metrics::IsRequestFailureCounter(c)) {
      a.failed += CounterValue(stats, c);
    }
  }
  a.refused = CounterValue(stats, v1::RATE_LIMITED) + CounterValue(stats, v1::HTTP_5XX);
  a.admitted = a.ok + (a.failed - std::min(a.failed, a.refused));
  a.good = CounterValue(stats, v1::GOOD);
  const uint64_t completed = a.ok + a.failed;
  const uint64_t base = a.offered > 0 ? a.offered : completed;
  a.goodput_ratio = base > 0 ? static_cast<double>(a.good) / static_cast<double>(base) : 0;
  a.goodput_per_sec =
      stats.duration_seconds() > 0 ? static_cast<double>(a.good) / stats.duration_seconds() : 0;
  a.error_rate =
      completed > 0 ? static_cast<double>(a.failed) / static_cast<double>(completed) : 0;
  return a;
}

v1::ThresholdResult Evaluate(const v1::Threshold& threshold, const v1::RunStats& stats,
                             bool final_stats) {
  v1::ThresholdResult r;
  *r.mutable_threshold() = threshold;
  r.set_passed(true);
  const LoadAccounting acc = Account(stats);
  switch (KindOf(threshold)) {
    case v1::ERROR_RATE: {
      const uint64_t completed = acc.ok + acc.failed;
      r.set_measured(acc.error_rate);
      const bool judged = final_stats || completed >= kMinSamplesToAbort;
      r.set_passed(!judged || acc.error_rate < threshold.below_value() ||
                   (completed == 0 && threshold.below_value() > 0));
      r.set_description(absl::StrFormat("error_rate = %.4f (%d of %d failed; limit < %.4f)",
                                        acc.error_rate, acc.failed, completed,
                                        threshold.below_value()));
      break;
    }
    case v1::THROUGHPUT: {
      const std::string& m = threshold.metric();
      double value = 0;
      if (m == "requests_per_sec") {
        value = stats.throughput().requests_per_sec();
      } else if (m == "tokens_per_sec") {
        value = stats.throughput().tokens_per_sec();
      } else if (m == "goodput_per_sec") {
        value = acc.goodput_per_sec;
      } else if (m == "goodput_ratio") {
        value = acc.goodput_ratio;
      }
      r.set_measured(value);
      // A rate is judged on the whole run only (it ramps up).
      r.set_passed(!final_stats || value > threshold.above());
      r.set_description(absl::StrFormat("%s = %.2f (limit > %.2f)", m, value, threshold.above()));
      break;
    }
    case v1::PERCENTILE:
    default: {
      const double limit_ms = DurationMs(threshold.below());
      const std::string name = absl::StrCat(threshold.metric(), " ",
                                            PercentileName(threshold.percentile()));
      const v1::MetricStats* s = FindMetric(stats, threshold.metric());
      if (s == nullptr || s->count() == 0) {
        // Nothing measured cannot pass a latency bound at the end.
        r.set_passed(!final_stats);
        r.set_description(absl::StrFormat("%s: no samples (limit < %.2f ms)", name, limit_ms));
        break;
      }
      bool exact = true;
      const double value = PercentileMs(*s, threshold.percentile(), &exact);
      r.set_measured(value);
      const bool judged = final_stats || s->count() >= kMinSamplesToAbort;
      r.set_passed(!judged || value < limit_ms);
      r.set_description(absl::StrFormat("%s = %.2f ms%s (limit < %.2f ms, %d samples)", name,
                                        value, exact ? "" : " (interpolated)", limit_ms,
                                        s->count()));
      break;
    }
  }
  return r;
}

std::vector<v1::ThresholdResult> EvaluateAll(
    const google::protobuf::RepeatedPtrField<v1::Threshold>& thresholds, const v1::RunStats& stats,
    bool final_stats, bool* passed) {
  std::vector<v1::ThresholdResult> out;
  *passed = true;
  for (const v1::Threshold& t : thresholds) {
    out.push_back(Evaluate(t, stats, final_stats));
    *passed = *passed && out.back().passed();
  }
  return out;
}

ObjectiveLimits ObjectiveLimits::FromProto(const v1::Objectives& objectives) {
  ObjectiveLimits l;
  l.ttft_us = objectives.has_ttft() ? DurationUs(objectives.ttft()) : 0;
  l.mean_itl_us = objectives.has_mean_itl() ? DurationUs(objectives.mean_itl()) : 0;
  l.e2e_us = objectives.has_e2e() ? DurationUs(objectives.e2e()) : 0;
  return l;
}

std::optional<std::pair<double, double>> FirstAndLastThirdMeans(const CumulativeMeans& series) {
  if (series.size() < 3) {
    return std::nullopt;
  }
  const uint64_t total = series.back().first;
  // Sum of the values so far = count * mean, so the mean between two
  // snapshots is exact.
  auto sum_at = [&](size_t i) { return static_cast<double>(series[i].first) * series[i].second; };
  size_t a = 0;  // first snapshot holding at least a third of the samples
  while (a + 1 < series.size() && series[a].first * 3 < total) {
    ++a;
  }
  size_t b = 0;  // last snapshot holding at most two thirds of them
  for (size_t i = 0; i < series.size(); ++i) {
    if (series[i].first * 3 <= total * 2) {
      b = i;
    }
  }
  const uint64_t first_n = series[a].first;
  const uint64_t last_n = total - series[b].first;
  if (first_n < 10 || last_n < 10) {
    return std::nullopt;
  }
  const double first = sum_at(a) / static_cast<double>(first_n);
  const double last = (sum_at(series.size() - 1) - sum_at(b)) / static_cast<double>(last_n);
  return std::make_pair(first, last);
}

std::vector<std::string> WarningSigns(const v1::RunStats& stats, const WarningInputs& inputs) {
  std::vector<std::string> out;
  const LoadAccounting acc = Account(stats);
  if (acc.ok + acc.failed > 0 && acc.error_rate > kWarnErrorRate) {
    out.push_back(absl::StrFormat("failed requests at %.2f %% (over %.0f %%): %d of %d",
                                  acc.error_rate * 100, kWarnErrorRate * 100, acc.failed,
                                  acc.ok + acc.failed));
  }
  for (const char* m : {"e2e", "request"}) {
    const v1::MetricStats* s = FindMetric(stats, m);
    if (s != nullptr && s->count() > 0 && s->p99_ms() > kWarnP99Ms) {
      out.push_back(absl::StrFormat("%s p99 at %.0f ms (over %.0f ms)", m, s->p99_ms(),
                                    kWarnP99Ms));
      break;
    }
  }
  if (const v1::MetricStats* s = FindMetric(stats, "ttft");
      s != nullptr && s->count() > 0 && s->p50_ms() > kWarnTtftMs) {
    out.push_back(absl::StrFormat("ttft p50 at %.0f ms (over %.0f ms)", s->p50_ms(), kWarnTtftMs));
  }
  if (auto means = FirstAndLastThirdMeans(inputs.e2e_over_time);
      means.has_value() && means->second > kWarnRisingFactor * means->first) {
    out.push_back(absl::StrFormat(
        "latency rising over the run: e2e mean %.1f ms in the first third, %.1f ms in the last",
        means->first, means->second));
  }
  if (inputs.max_loop_lag_ms > kWarnLoopLagMs) {
    out.push_back(absl::StrFormat(
        "worker event-loop lag reached %.0f ms (over %.0f ms): the load generator, not the "
        "target, may be the limit",
        inputs.max_loop_lag_ms, kWarnLoopLagMs));
  }
  if (inputs.max_cpu_percent_per_loop > kWarnCpuPercentPerLoop) {
    out.push_back(absl::StrFormat(
        "worker CPU reached %.0f %% of its event loops (over %.0f %%): the load generator, not "
        "the target, may be the limit",
        inputs.max_cpu_percent_per_loop, kWarnCpuPercentPerLoop));
  }
  if (acc.dropped > 0) {
    out.push_back(absl::StrFormat(
        "%d arrivals dropped by the in-flight cap: the target could not keep up with the offered "
        "rate",
        acc.dropped));
  }
  return out;
}

}  // namespace llmload::load
