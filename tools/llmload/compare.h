// File: compare.h
//
// `llmload compare RUN_A RUN_B`: the two runs' percentiles, throughput and
// error rates side by side with the relative change, and which changes are
// real rather than noise. A change is marked only when it exceeds both
//
//  - the histograms' resolution (two values each within 0.05 % of the
//    truth: 0.1 % of the larger), and
//  - the runs' own noise: a bootstrap over each run's time windows (windows
//    drawn with replacement, their histograms or counters merged, the
//    statistic recomputed) gives each run's standard error, and for a
//    percentile at least its order-statistic error (how many samples a tail
//    rests on: the ranks n*q -/+ z*sqrt(n*q*(1-q)) of the merged histogram);
//    the change must exceed `z` times the two runs' errors combined, and
//  - for latencies, the generator's own event-loop lag: a change smaller
//    than the delay the generator's scheduling adds cannot be told apart
//    from it. Per window the workers report their largest lag; for p50 the
//    floor is the smallest of those (the host's baseline jitter), for p90
//    their median, for p99 (which the worst stall reaches) their largest; of
//    the two runs, the larger.
//
// A marked change in the worse direction (higher latency or error rate,
// lower throughput) is a regression. With `max_regression_pct` set, the
// result fails when a regression's relative change exceeds it (the CI
// question "did this release make ttft p99 worse by more than 10 %").
//
//   CompareOptions opts;
//   opts.max_regression_pct = 10;
//   CompareResult r = Compare(stats_a, stats_b, opts);   // GetRunStats with
//   std::cout << FormatCompare(r);                        // windows+histograms
//   return r.failed ? 1 : 0;
//
// Deterministic (the bootstrap is seeded). Pure. Thread-safe.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llmload/v1/stats.pb.h"

namespace llmload::cli {

struct CompareOptions {
  int iterations = 400;    // bootstrap resamples per run and statistic
  uint64_t seed = 1;
  double z = 3;            // standard errors a change must exceed
  int min_windows = 3;     // fewer windows with data: noise unknown, nothing marked
  std::optional<double> max_regression_pct;
  // Only these rows ("ttft", "ttft:p99", "requests_per_sec", ...); empty: all.
  std::vector<std::string> only;
};

struct CompareRow {
  std::string metric;  // "ttft", "requests_per_sec", "error_rate", "errors:timeout"
  std::string stat;    // "p50", "p90", "p99", or "" for rates
  std::string unit;    // "ms", "/s", "ratio"
  double a = 0;
  double b = 0;
  // (b - a) / a; +inf when a == 0 < b; 0 when both are 0.
  double change = 0;
  // The smallest relative change that would be marked: the largest of the
  // resolution, z combined standard errors and (latencies) the loop-lag
  // floor, relative to a.
  double threshold = 0;
  double resolution = 0;  // relative
  bool higher_is_worse = true;
  bool noise_known = true;  // enough windows in both runs
  enum class Mark { kNone, kRegression, kImprovement };
  Mark mark = Mark::kNone;
  // A regression whose change exceeds max_regression_pct.
  bool over_bound = false;
  std::string Name() const { return stat.empty() ? metric : metric + " " + stat; }
};

struct CompareResult {
  std::string run_a;
  std::string run_b;
  std::vector<CompareRow> rows;
  int regressions = 0;
  int improvements = 0;
  bool failed = false;  // a regression exceeded max_regression_pct
  double loop_lag_floor_ms = 0;       // p50 rows
  double tail_loop_lag_floor_ms = 0;  // p90 rows
  double p99_loop_lag_floor_ms = 0;   // p99 rows
  std::optional<double> max_regression_pct;
  std::vector<std::string> notes;
};

CompareResult Compare(const v1::RunStats& a, const v1::RunStats& b, const CompareOptions& options);

// A table for people, and JSON ("schema": "llmload.compare/v1").
std::string FormatCompare(const CompareResult& result);
std::string CompareJson(const CompareResult& result);

}  // namespace llmload::cli
