#include "tools/llmload/report.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "lib/metrics/metrics.h"

namespace llmload::cli {
namespace {

const v1::MetricStats* FindMetric(const v1::RunStats& stats, v1::Metric m) {
  const std::string name(metrics::MetricName(m));
  for (const auto& s : stats.metrics()) {
    if (s.metric() == name) {
      return &s;
    }
  }
  return nullptr;
}

uint64_t CounterValue(const v1::RunStats& stats, v1::Counter c) {
  auto it = stats.counters().find(std::string(metrics::CounterName(c)));
  return it == stats.counters().end() ? 0 : it->second;
}

std::string Ms(double v) { return absl::StrFormat("%.2f", v); }

std::string LatencyLine(const v1::RunStats& stats, v1::Metric m, bool with_max) {
  const v1::MetricStats* s = FindMetric(stats, m);
  if (s == nullptr || s->count() == 0) {
    return "  [no samples]\n";
  }
  std::string out = absl::StrCat("  [p50=", Ms(s->p50_ms()), ", p95=", Ms(s->p95_ms()),
                                 ", p99=", Ms(s->p99_ms()));
  if (with_max) {
    absl::StrAppend(&out, ", max=", Ms(s->max_ms()));
  }
  absl::StrAppend(&out, "]\n");
  return out;
}

std::string Timestamp(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0) {
    return "-";
  }
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

}  // namespace

std::string FormatProgress(const v1::Run& run, double elapsed_seconds) {
  const v1::ShardProgress& p = run.progress();
  return absl::StrCat("Test progress. [state=", v1::RunState_Name(run.state()),
                      ", elapsed=", absl::StrFormat("%.1fs", elapsed_seconds),
                      ", cycles=", p.cycles_done(), "/", p.cycles_total(),
                      ", requests_ok=", p.requests_ok(), ", errors=", p.requests_failed(),
                      ", tokens=", p.tokens(), ", active_sessions=", p.active_sessions(), "]");
}

std::string FormatReport(const v1::Run& run) {
  const v1::RunStats& st = run.stats();
  const std::string rule(79, '=');
  std::string out;
  absl::StrAppend(&out, "\nLOAD TEST RESULTS\n", rule, "\n");
  int64_t clients = 0;
  int64_t cycles_total = run.progress().cycles_total();
  if (run.spec().load().has_closed()) {
    clients = run.spec().load().closed().clients();
  }
  const char* verb = run.state() == v1::COMPLETED ? "Test completed." : "Test ended.";
  absl::StrAppend(&out, verb, " [run_id=", run.id(), ", state=", v1::RunState_Name(run.state()),
                  ", total_clients=", clients, ", total_cycles=", run.progress().cycles_done(),
                  "/", cycles_total, ", duration=", absl::StrFormat("%.2fs", st.duration_seconds()),
                  "]\n");
  if (!run.error().empty()) {
    absl::StrAppend(&out, "Error. [message=", run.error(), "]\n");
  }
  absl::StrAppend(&out, "\nTHROUGHPUT:\n  [requests_per_sec=",
                  absl::StrFormat("%.2f", st.throughput().requests_per_sec()),
                  ", tokens_per_sec=", absl::StrFormat("%.2f", st.throughput().tokens_per_sec()),
                  ", cycles_per_sec=", absl::StrFormat("%.2f", st.throughput().cycles_per_sec()),
                  "]\n");
  absl::StrAppend(&out, "\nREQUEST LATENCY (ms):\n", LatencyLine(st, v1::REQUEST, true));
  absl::StrAppend(&out, "\nTOKEN LATENCY (ms):\n", LatencyLine(st, v1::TTFT, false));
  absl::StrAppend(&out, "\nEND-TO-END LATENCY (ms):\n", LatencyLine(st, v1::E2E, true));
  absl::StrAppend(&out, "\nINTER-TOKEN LATENCY (ms):\n", LatencyLine(st, v1::ITL, true));
  const uint64_t opened = CounterValue(st, v1::SESSIONS_OPENED);
  const uint64_t failed = CounterValue(st, v1::SESSIONS_FAILED);
  uint64_t errors = 0;
  std::string error_fields;
  for (v1::Counter c : metrics::AllCounters()) {
    if (metrics::IsRequestFailureCounter(c)) {
      const uint64_t n = CounterValue(st, c);
      errors += n;
      absl::StrAppend(&error_fields, error_fields.empty() ? "" : ", ", std::string(metrics::CounterName(c)),
                      "=", n);
    }
  }
  absl::StrAppend(&out, "\nCONNECTIONS:\n  [successful=", opened, ", failed=", failed,
                  ", total_errors=", errors, ", reconnects=", CounterValue(st, v1::RECONNECTS),
                  "]\n");
  absl::StrAppend(&out, "\nREQUESTS:\n  [ok=", CounterValue(st, v1::REQUESTS_OK), ", ",
                  error_fields, ", tokens=", CounterValue(st, v1::TOKENS), "]\n");
  absl::StrAppend(&out, "\nALL METRICS (ms):\n");
  absl::StrAppend(&out, absl::StrFormat("  %-14s %9s %9s %9s %9s %9s %9s %9s %9s\n", "metric",
                                        "count", "min", "mean", "p50", "p90", "p99", "p99.9",
                                        "max"));
  for (v1::Metric m : metrics::AllMetrics()) {
    const v1::MetricStats* s = FindMetric(st, m);
    if (s == nullptr || s->count() == 0) {
      continue;
    }
    absl::StrAppend(&out, absl::StrFormat("  %-14s %9d %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f\n",
                                          s->metric(), s->count(), s->min_ms(), s->mean_ms(),
                                          s->p50_ms(), s->p90_ms(), s->p99_ms(), s->p999_ms(),
                                          s->max_ms()));
  }
  if (!run.events().empty()) {
    absl::StrAppend(&out, "\nEVENTS:\n");
    for (const auto& e : run.events()) {
      absl::StrAppend(&out, "  ", Timestamp(e.time()), " ", e.message(), "\n");
    }
  }
  absl::StrAppend(&out, rule, "\n");
  return out;
}

std::string FormatRunLine(const v1::Run& run) {
  return absl::StrFormat("%-18s %-10s %-20s %s  cycles=%d/%d", run.id(),
                         v1::RunState_Name(run.state()), Timestamp(run.created_at()),
                         run.spec().name().empty() ? "-" : run.spec().name(),
                         run.progress().cycles_done(), run.progress().cycles_total());
}

}  // namespace llmload::cli
