// File: verdict.h
//
// Whether a run passed: thresholds evaluated on merged statistics, the
// per-request objectives behind goodput, and the warning signs a report
// prints. Pure: statistics come in as v1::RunStats.
//
// Threshold kinds (ThresholdKind, inferred from the metric when unset):
//   PERCENTILE  {"metric": "ttft", "percentile": 95, "below": "0.5s"}
//   ERROR_RATE  {"metric": "error_rate", "belowValue": 0.01}
//   THROUGHPUT  {"metric": "requests_per_sec", "above": 50}  (tokens_per_sec,
//               goodput_per_sec, goodput_ratio)
//
// Percentiles other than 50, 90, 95, 99 and 99.9 are interpolated linearly
// between the neighbouring ones the collector reports (min and max at 0 and
// 100); the description says so.
//
// Thread-safe (stateless).

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "google/protobuf/repeated_field.h"
#include "llmload/v1/run.pb.h"
#include "llmload/v1/stats.pb.h"

namespace llmload::load {

// Throughput metric names accepted by THROUGHPUT thresholds.
inline constexpr std::string_view kThroughputMetrics[] = {"requests_per_sec", "tokens_per_sec",
                                                          "goodput_per_sec", "goodput_ratio"};
inline constexpr std::string_view kErrorRateMetric = "error_rate";

// The kind a threshold has: its own, or inferred from the metric name
// (error_rate -> ERROR_RATE, a throughput name -> THROUGHPUT, else PERCENTILE).
v1::ThresholdKind KindOf(const v1::Threshold& threshold);

// Below this many samples a threshold is not judged mid-run (abort on fail).
inline constexpr uint64_t kMinSamplesToAbort = 20;

// Evaluates one threshold. `final_stats`: the run is over; otherwise the
// result is provisional and a threshold that cannot be judged yet (too few
// samples, or a throughput) passes.
v1::ThresholdResult Evaluate(const v1::Threshold& threshold, const v1::RunStats& stats,
                             bool final_stats);

// All of them; `passed` is true when every one passed (or there are none).
std::vector<v1::ThresholdResult> EvaluateAll(
    const google::protobuf::RepeatedPtrField<v1::Threshold>& thresholds, const v1::RunStats& stats,
    bool final_stats, bool* passed);

// Per-request objectives in microseconds (0: not checked).
struct ObjectiveLimits {
  uint64_t ttft_us = 0;
  uint64_t mean_itl_us = 0;
  uint64_t e2e_us = 0;
  static ObjectiveLimits FromProto(const v1::Objectives& objectives);
  // An ok request that met every objective. A single-token response has no
  // inter-token gap, so mean_itl does not apply to it.
  bool Good(bool ok, uint64_t ttft_us_measured, uint64_t mean_itl_us_measured,
            uint64_t e2e_us_measured, uint64_t tokens) const {
    return ok && (ttft_us == 0 || ttft_us_measured <= ttft_us) &&
           (mean_itl_us == 0 || tokens < 2 || mean_itl_us_measured <= mean_itl_us) &&
           (e2e_us == 0 || e2e_us_measured <= e2e_us);
  }
};

// Offered / admitted / failed / good, from the counters.
struct LoadAccounting {
  uint64_t offered = 0;   // requests scheduled (open model: arrivals)
  uint64_t dropped = 0;   // arrivals refused by the in-flight cap
  uint64_t ok = 0;
  uint64_t failed = 0;    // every failure class
  uint64_t unfinished = 0;  // offered, then cut off before an answer (stop, drain)
  uint64_t lost = 0;      // in flight on a lost worker, or answered in samples never received
  uint64_t refused = 0;   // rate_limited + http_5xx: the target refused the load
  uint64_t admitted = 0;  // ok + failures that were not refusals
  uint64_t good = 0;      // met every objective
  double goodput_ratio = 0;     // good / offered (or / completed without offered)
  double goodput_per_sec = 0;
  double error_rate = 0;        // failed / (ok + failed)
};
LoadAccounting Account(const v1::RunStats& stats);

// (count, mean in ms) of a metric's cumulative histogram at successive
// moments of a run, oldest first.
using CumulativeMeans = std::vector<std::pair<uint64_t, double>>;

struct WarningInputs {
  double max_loop_lag_ms = 0;
  double max_cpu_percent_per_loop = 0;
  CumulativeMeans e2e_over_time;
};

// Warning-sign defaults from common practice.
inline constexpr double kWarnErrorRate = 0.01;
inline constexpr double kWarnP99Ms = 3000;
inline constexpr double kWarnTtftMs = 1000;  // p50 ttft
inline constexpr double kWarnLoopLagMs = 50;
inline constexpr double kWarnCpuPercentPerLoop = 90;
inline constexpr double kWarnRisingFactor = 1.5;

std::vector<std::string> WarningSigns(const v1::RunStats& stats, const WarningInputs& inputs);

// Mean latency of the first and last third of the run from cumulative
// snapshots; nullopt when either third has fewer than 10 samples.
std::optional<std::pair<double, double>> FirstAndLastThirdMeans(const CumulativeMeans& series);

// The MetricStats of `metric` in `stats`, or null.
const v1::MetricStats* FindMetric(const v1::RunStats& stats, std::string_view metric);
uint64_t CounterValue(const v1::RunStats& stats, v1::Counter counter);

}  // namespace llmload::load
