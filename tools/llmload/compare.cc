#include "tools/llmload/compare.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/histogram/histogram.h"
#include "lib/metrics/metrics.h"
#include "tools/llmload/json_writer.h"

namespace llmload::cli {
namespace {

using histogram::Histogram;

// One window's histogram of one metric as its non-empty buckets.
using SparseBuckets = std::vector<std::pair<uint32_t, uint64_t>>;

SparseBuckets ToSparse(const std::string& encoded) {
  SparseBuckets out;
  absl::StatusOr<Histogram> h = Histogram::Decode(encoded);
  if (!h.ok()) {
    return out;
  }
  for (size_t i = 0; i < Histogram::NumBuckets(); ++i) {
    if (const uint64_t n = h->CountAt(i); n > 0) {
      out.emplace_back(static_cast<uint32_t>(i), n);
    }
  }
  return out;
}

uint64_t CounterOf(const google::protobuf::Map<std::string, uint64_t>& m, v1::Counter c) {
  auto it = m.find(std::string(metrics::CounterName(c)));
  return it == m.end() ? 0 : it->second;
}

uint64_t FailuresOf(const google::protobuf::Map<std::string, uint64_t>& m) {
  uint64_t n = 0;
  for (v1::Counter c : metrics::AllCounters()) {
    if (metrics::IsRequestFailureCounter(c)) {
      n += CounterOf(m, c);
    }
  }
  return n;
}

double StdDev(const std::vector<double>& xs) {
  if (xs.size() < 2) {
    return 0;
  }
  double mean = 0;
  for (double x : xs) {
    mean += x;
  }
  mean /= static_cast<double>(xs.size());
  double var = 0;
  for (double x : xs) {
    var += (x - mean) * (x - mean);
  }
  return std::sqrt(var / static_cast<double>(xs.size() - 1));
}

constexpr double kPercentiles[] = {50, 90, 99};
constexpr const char* kPercentileNames[] = {"p50", "p90", "p99"};

// Bootstrap standard errors of a metric's p50/p90/p99 over the windows.
std::array<double, 3> PercentileErrors(const std::vector<SparseBuckets>& windows,
                                       const CompareOptions& o, uint64_t salt) {
  std::array<double, 3> out{};
  if (windows.size() < 2) {
    return out;
  }
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ULL + salt);
  std::uniform_int_distribution<size_t> pick(0, windows.size() - 1);
  Histogram scratch;
  std::array<std::vector<double>, 3> samples;
  for (int it = 0; it < o.iterations; ++it) {
    scratch.Reset();
    for (size_t k = 0; k < windows.size(); ++k) {
      for (const auto& [idx, n] : windows[pick(rng)]) {
        scratch.Record(Histogram::BucketValue(idx), n);
      }
    }
    if (scratch.Empty()) {
      continue;
    }
    for (size_t p = 0; p < 3; ++p) {
      samples[p].push_back(static_cast<double>(scratch.Percentile(kPercentiles[p])) / 1000);
    }
  }
  for (size_t p = 0; p < 3; ++p) {
    out[p] = StdDev(samples[p]);
  }
  return out;
}

// Bootstrap standard error of sum(num) / sum(den) over windows.
double RatioError(const std::vector<std::pair<double, double>>& windows, const CompareOptions& o,
                  uint64_t salt) {
  if (windows.size() < 2) {
    return 0;
  }
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ULL + salt);
  std::uniform_int_distribution<size_t> pick(0, windows.size() - 1);
  std::vector<double> samples;
  for (int it = 0; it < o.iterations; ++it) {
    double num = 0;
    double den = 0;
    for (size_t k = 0; k < windows.size(); ++k) {
      const auto& [n, d] = windows[pick(rng)];
      num += n;
      den += d;
    }
    if (den > 0) {
      samples.push_back(num / den);
    }
  }
  return StdDev(samples);
}

// The standard error of the run's p50/p90/p99 of `m` from order statistics
// (distribution-free, i.i.d. samples): the ranks n*q -/+ z*sqrt(n*q*(1-q))
// bound a z-sigma interval of the q-quantile; half its width over z.
std::array<double, 3> OrderStatisticErrors(const v1::RunStats& s, v1::Metric m, double z) {
  std::array<double, 3> out{};
  for (const v1::HistogramDelta& d : s.histograms()) {
    if (d.metric() != m) {
      continue;
    }
    absl::StatusOr<Histogram> h = Histogram::Decode(d.encoded());
    if (!h.ok() || h->Empty() || z <= 0) {
      return out;
    }
    const auto n = static_cast<double>(h->Count());
    for (size_t p = 0; p < 3; ++p) {
      const double q = kPercentiles[p] / 100;
      const double spread = z * std::sqrt(n * q * (1 - q)) / n;
      const double lo = std::clamp(q - spread, 0.0, 1.0) * 100;
      const double hi = std::clamp(q + spread, 0.0, 1.0) * 100;
      out[p] = static_cast<double>(h->Percentile(hi) - h->Percentile(lo)) / 1000 / 2 / z;
    }
  }
  return out;
}

const v1::MetricStats* FindMetric(const v1::RunStats& s, std::string_view name) {
  for (const v1::MetricStats& m : s.metrics()) {
    if (m.metric() == name) {
      return &m;
    }
  }
  return nullptr;
}

double PercentileOf(const v1::MetricStats& m, size_t p) {
  return p == 0 ? m.p50_ms() : (p == 1 ? m.p90_ms() : m.p99_ms());
}

// Every window of `s` with data for `m`, as sparse buckets.
std::vector<SparseBuckets> MetricWindows(const v1::RunStats& s, v1::Metric m) {
  std::vector<SparseBuckets> out;
  for (const v1::WindowStats& w : s.windows()) {
    for (const v1::HistogramDelta& d : w.histograms()) {
      if (d.metric() == m) {
        SparseBuckets b = ToSparse(d.encoded());
        if (!b.empty()) {
          out.push_back(std::move(b));
        }
      }
    }
  }
  return out;
}

bool Wanted(const CompareOptions& o, const std::string& metric, const std::string& stat) {
  if (o.only.empty()) {
    return true;
  }
  for (const std::string& w : o.only) {
    if (w == metric || (!stat.empty() && w == metric + ":" + stat)) {
      return true;
    }
  }
  return false;
}

// The workers' event-loop lag over a run's windows (the largest a worker
// reported in each window): its smallest, the host's baseline scheduling
// jitter, and its median, how late the generator typically was.
struct LoopLag {
  double least_ms = 0;
  double median_ms = 0;
  double most_ms = 0;
};

LoopLag TypicalLoopLag(const v1::RunStats& s) {
  std::vector<double> lags;
  for (const v1::WindowStats& w : s.windows()) {
    if (w.workers_size() > 0) {
      lags.push_back(w.max_loop_lag_ms());
    }
  }
  LoopLag out;
  if (lags.empty()) {
    return out;
  }
  std::sort(lags.begin(), lags.end());
  out.least_ms = lags.front();
  out.median_ms = lags[lags.size() / 2];
  out.most_ms = lags.back();
  return out;
}

void Judge(CompareRow& row, double se_a, double se_b, double floor_abs_min,
           const CompareOptions& o) {
  const double diff = row.b - row.a;
  if (row.a == 0 && row.b == 0) {
    row.change = 0;
  } else if (row.a == 0) {
    row.change = std::numeric_limits<double>::infinity();
  } else {
    row.change = diff / row.a;
  }
  const double noise = o.z * std::sqrt(se_a * se_a + se_b * se_b);
  const double floor_abs =
      std::max({noise, row.resolution * std::max(std::fabs(row.a), std::fabs(row.b)),
                floor_abs_min});
  row.threshold = row.a != 0 ? floor_abs / std::fabs(row.a) : 0;
  if (!row.noise_known || diff == 0 || std::fabs(diff) <= floor_abs) {
    return;
  }
  const bool worse = row.higher_is_worse ? diff > 0 : diff < 0;
  row.mark = worse ? CompareRow::Mark::kRegression : CompareRow::Mark::kImprovement;
  if (worse && o.max_regression_pct.has_value() &&
      std::fabs(row.change) * 100 > *o.max_regression_pct) {
    row.over_bound = true;
  }
}

std::string Pct(double change) {
  if (std::isinf(change)) {
    return change > 0 ? "new" : "-inf";
  }
  return absl::StrFormat("%+.1f%%", 100 * change);
}

std::string Val(double v, const std::string& unit) {
  if (unit == "ratio") {
    return absl::StrFormat("%.4f", v);
  }
  return absl::StrFormat("%.2f", v);
}

const char* MarkName(CompareRow::Mark m) {
  switch (m) {
    case CompareRow::Mark::kRegression:
      return "regression";
    case CompareRow::Mark::kImprovement:
      return "improvement";
    case CompareRow::Mark::kNone:
      break;
  }
  return "";
}

}  // namespace

CompareResult Compare(const v1::RunStats& a, const v1::RunStats& b, const CompareOptions& o) {
  CompareResult r;
  r.run_a = a.run_id();
  r.run_b = b.run_id();
  r.max_regression_pct = o.max_regression_pct;
  uint64_t salt = 0;
  const double resolution = 2 * Histogram::kRelativeError;
  // A latency change smaller than the delay the generator's own event loops
  // add cannot be told apart from it: its lag spikes land in the tails, its
  // baseline jitter anywhere.
  const LoopLag lag_a = TypicalLoopLag(a);
  const LoopLag lag_b = TypicalLoopLag(b);
  r.loop_lag_floor_ms = std::max(lag_a.least_ms, lag_b.least_ms);
  r.tail_loop_lag_floor_ms = std::max(lag_a.median_ms, lag_b.median_ms);
  r.p99_loop_lag_floor_ms = std::max(lag_a.most_ms, lag_b.most_ms);
  for (v1::Metric m : metrics::AllMetrics()) {
    const std::string name(metrics::MetricName(m));
    const v1::MetricStats* ma = FindMetric(a, name);
    const v1::MetricStats* mb = FindMetric(b, name);
    ++salt;
    if (ma == nullptr || mb == nullptr || ma->count() == 0 || mb->count() == 0) {
      continue;
    }
    bool any = false;
    for (const char* p : kPercentileNames) {
      any = any || Wanted(o, name, p);
    }
    if (!any) {
      continue;
    }
    const std::vector<SparseBuckets> wa = MetricWindows(a, m);
    const std::vector<SparseBuckets> wb = MetricWindows(b, m);
    const bool known = static_cast<int>(wa.size()) >= o.min_windows &&
                       static_cast<int>(wb.size()) >= o.min_windows;
    std::array<double, 3> ea = PercentileErrors(wa, o, salt * 2);
    std::array<double, 3> eb = PercentileErrors(wb, o, salt * 2 + 1);
    // The windows' spread misses how few samples a tail rests on: take the
    // larger of it and the order-statistic error of the whole run.
    const std::array<double, 3> oa = OrderStatisticErrors(a, m, o.z);
    const std::array<double, 3> ob = OrderStatisticErrors(b, m, o.z);
    for (size_t p = 0; p < 3; ++p) {
      ea[p] = std::max(ea[p], oa[p]);
      eb[p] = std::max(eb[p], ob[p]);
    }
    for (size_t p = 0; p < 3; ++p) {
      if (!Wanted(o, name, kPercentileNames[p])) {
        continue;
      }
      CompareRow row;
      row.metric = name;
      row.stat = kPercentileNames[p];
      row.unit = "ms";
      row.a = PercentileOf(*ma, p);
      row.b = PercentileOf(*mb, p);
      row.resolution = resolution;
      row.noise_known = known;
      const double floor = p == 0 ? r.loop_lag_floor_ms
                                  : (p == 1 ? r.tail_loop_lag_floor_ms : r.p99_loop_lag_floor_ms);
      Judge(row, ea[p], eb[p], floor, o);
      r.rows.push_back(row);
    }
  }
  // Rates and error ratios: per-window samples (numerator, denominator).
  struct RateDef {
    std::string metric;
    std::string unit;
    bool higher_is_worse;
    std::function<std::pair<double, double>(const google::protobuf::Map<std::string, uint64_t>&,
                                            double width)>
        sample;
    std::function<double(const v1::RunStats&)> whole;
  };
  std::vector<RateDef> rates = {
      {"requests_per_sec", "/s", false,
       [](const auto& c, double w) {
         return std::make_pair(static_cast<double>(CounterOf(c, v1::REQUESTS_OK)), w);
       },
       [](const v1::RunStats& s) { return s.throughput().requests_per_sec(); }},
      {"tokens_per_sec", "/s", false,
       [](const auto& c, double w) {
         return std::make_pair(static_cast<double>(CounterOf(c, v1::TOKENS)), w);
       },
       [](const v1::RunStats& s) { return s.throughput().tokens_per_sec(); }},
      {"error_rate", "ratio", true,
       [](const auto& c, double) {
         const double failed = static_cast<double>(FailuresOf(c));
         return std::make_pair(failed,
                               failed + static_cast<double>(CounterOf(c, v1::REQUESTS_OK)));
       },
       [](const v1::RunStats& s) {
         const double failed = static_cast<double>(FailuresOf(s.counters()));
         const double total = failed + static_cast<double>(CounterOf(s.counters(), v1::REQUESTS_OK));
         return total > 0 ? failed / total : 0.0;
       }},
  };
  for (v1::Counter c : metrics::AllCounters()) {
    if (!metrics::IsRequestFailureCounter(c)) {
      continue;
    }
    if (CounterOf(a.counters(), c) == 0 && CounterOf(b.counters(), c) == 0) {
      continue;
    }
    rates.push_back(RateDef{
        absl::StrCat("errors:", std::string(metrics::CounterName(c))), "ratio", true,
        [c](const auto& m, double) {
          return std::make_pair(static_cast<double>(CounterOf(m, c)),
                                static_cast<double>(FailuresOf(m) + CounterOf(m, v1::REQUESTS_OK)));
        },
        [c](const v1::RunStats& s) {
          const double total =
              static_cast<double>(FailuresOf(s.counters()) + CounterOf(s.counters(), v1::REQUESTS_OK));
          return total > 0 ? static_cast<double>(CounterOf(s.counters(), c)) / total : 0.0;
        }});
  }
  for (const RateDef& def : rates) {
    ++salt;
    if (!Wanted(o, def.metric, "")) {
      continue;
    }
    const auto windows = [&](const v1::RunStats& s) {
      std::vector<std::pair<double, double>> out;
      for (const v1::WindowStats& w : s.windows()) {
        out.push_back(def.sample(w.counters(), w.width_seconds()));
      }
      return out;
    };
    const auto wa = windows(a);
    const auto wb = windows(b);
    CompareRow row;
    row.metric = def.metric;
    row.unit = def.unit;
    row.higher_is_worse = def.higher_is_worse;
    row.a = def.whole(a);
    row.b = def.whole(b);
    row.resolution = 0;  // counts are exact
    row.noise_known = static_cast<int>(wa.size()) >= o.min_windows &&
                      static_cast<int>(wb.size()) >= o.min_windows;
    Judge(row, RatioError(wa, o, salt * 2), RatioError(wb, o, salt * 2 + 1), 0, o);
    r.rows.push_back(row);
  }
  for (const CompareRow& row : r.rows) {
    r.regressions += row.mark == CompareRow::Mark::kRegression ? 1 : 0;
    r.improvements += row.mark == CompareRow::Mark::kImprovement ? 1 : 0;
    r.failed = r.failed || row.over_bound;
    if (!row.noise_known) {
      r.notes.push_back(absl::StrCat(row.Name(), ": fewer than ", o.min_windows,
                                     " time windows with data in a run; its noise is unknown, "
                                     "so it is not marked"));
    }
  }
  return r;
}

std::string FormatCompare(const CompareResult& r) {
  std::string out = absl::StrCat("COMPARE ", r.run_a, " (A) -> ", r.run_b, " (B)\n");
  absl::StrAppend(&out, absl::StrFormat("  %-24s %12s %12s %9s %9s  %s\n", "metric", "A", "B",
                                        "change", "noise", "mark"));
  for (const CompareRow& row : r.rows) {
    std::string mark = MarkName(row.mark);
    if (row.over_bound) {
      mark += " (over the bound)";
    }
    if (!row.noise_known) {
      mark = "(noise unknown)";
    }
    absl::StrAppend(&out, absl::StrFormat("  %-24s %12s %12s %9s %8s%%  %s\n",
                                          row.Name() + (row.unit == "ms" ? " ms" : ""),
                                          Val(row.a, row.unit), Val(row.b, row.unit),
                                          Pct(row.change),
                                          absl::StrFormat("±%.1f", 100 * row.threshold), mark));
  }
  absl::StrAppend(&out, "\n", r.regressions, " regression(s), ", r.improvements,
                  " improvement(s) beyond the histograms' resolution, the runs' "
                  "window-to-window noise and the generator's loop lag (",
                  absl::StrFormat("%.2f ms for p50, %.2f ms for p90, %.2f ms for p99",
                                  r.loop_lag_floor_ms, r.tail_loop_lag_floor_ms,
                                  r.p99_loop_lag_floor_ms),
                  ").\n");
  if (r.max_regression_pct.has_value()) {
    absl::StrAppend(&out, r.failed ? "FAILED" : "PASSED", ": ",
                    r.failed ? "a regression exceeds " : "no regression exceeds ",
                    absl::StrFormat("%.1f%%", *r.max_regression_pct), ".\n");
  }
  for (const std::string& n : r.notes) {
    absl::StrAppend(&out, "Note: ", n, "\n");
  }
  return out;
}

std::string CompareJson(const CompareResult& r) {
  JsonWriter j;
  j.BeginObject();
  j.Key("schema");
  j.String("llmload.compare/v1");
  j.Key("run_a");
  j.String(r.run_a);
  j.Key("run_b");
  j.String(r.run_b);
  j.Key("max_regression_pct");
  r.max_regression_pct.has_value() ? j.Number(*r.max_regression_pct) : j.Null();
  j.Key("failed");
  j.Bool(r.failed);
  j.Key("regressions");
  j.Int(r.regressions);
  j.Key("improvements");
  j.Int(r.improvements);
  j.Key("loop_lag_floor_ms");
  j.Number(r.loop_lag_floor_ms);
  j.Key("tail_loop_lag_floor_ms");
  j.Number(r.tail_loop_lag_floor_ms);
  j.Key("p99_loop_lag_floor_ms");
  j.Number(r.p99_loop_lag_floor_ms);
  j.Key("rows");
  j.BeginArray();
  for (const CompareRow& row : r.rows) {
    j.BeginObject();
    j.Key("metric");
    j.String(row.metric);
    j.Key("stat");
    j.String(row.stat);
    j.Key("unit");
    j.String(row.unit);
    j.Key("a");
    j.Number(row.a);
    j.Key("b");
    j.Number(row.b);
    j.Key("change");
    j.Number(row.change);  // +inf becomes null
    j.Key("threshold");
    j.Number(row.threshold);
    j.Key("noise_known");
    j.Bool(row.noise_known);
    j.Key("mark");
    row.mark == CompareRow::Mark::kNone ? j.Null() : j.String(MarkName(row.mark));
    j.Key("over_bound");
    j.Bool(row.over_bound);
    j.EndObject();
  }
  j.EndArray();
  j.Key("notes");
  j.BeginArray();
  for (const std::string& n : r.notes) {
    j.String(n);
  }
  j.EndArray();
  j.EndObject();
  return j.Take();
}

}  // namespace llmload::cli
