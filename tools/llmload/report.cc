#include "tools/llmload/report.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "lib/load/verdict.h"
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

double LoadSeconds(const v1::Run& run) {
  auto secs = [](const google::protobuf::Duration& d) {
    return static_cast<double>(d.seconds()) + static_cast<double>(d.nanos()) / 1e9;
  };
  const v1::Load& load = run.spec().load();
  if (load.has_duration()) {
    return secs(load.duration().duration());
  }
  if (load.has_open()) {
    double staged = 0;
    for (const auto& st : load.open().stages()) {
      staged += secs(st.duration());
    }
    return std::max(staged, secs(load.open().duration()));
  }
  return 0;
}

std::string ModelName(const v1::Run& run) {
  const v1::Load& load = run.spec().load();
  if (load.has_open()) {
    return absl::StrFormat("open(%.2f req/s, %s)", load.open().rate_per_second(),
                           load.open().distribution() == v1::UNIFORM ? "uniform" : "poisson");
  }
  if (load.has_duration()) {
    return absl::StrCat("duration(", load.duration().connections(), " connections)");
  }
  return "closed";
}

std::string Timestamp(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0) {
    return "-";
  }
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

// Offered / admitted / failed / goodput, the coordinated-omission gap,
// thresholds and warning signs.
std::string FormatLoadSections(const v1::Run& run) {
  const v1::RunStats& st = run.stats();
  const load::LoadAccounting a = load::Account(st);
  std::string out;
  absl::StrAppend(&out, "\nLOAD:\n  [model=", ModelName(run), ", offered=", a.offered,
                  ", dropped=", a.dropped, ", admitted=", a.admitted, ", refused=", a.refused,
                  ", ok=", a.ok, ", failed=", a.failed);
  // Workers count unfinished requests themselves; a remainder beyond them
  // (e.g. a lost worker's requests in flight) is shown, never hidden.
  if (a.unfinished > 0) {
    absl::StrAppend(&out, ", unfinished=", a.unfinished);
  }
  // Requests the spec's cancellation abandoned mid-response on purpose.
  if (a.cancelled > 0) {
    absl::StrAppend(&out, ", cancelled=", a.cancelled);
  }
  // Requests in flight on workers that were lost (offered = ok + failed +
  // cancelled + lost + dropped + unfinished).
  if (a.lost > 0) {
    absl::StrAppend(&out, ", lost=", a.lost);
  }
  const uint64_t accounted = a.ok + a.failed + a.cancelled + a.dropped + a.unfinished + a.lost;
  if (a.offered > accounted) {
    absl::StrAppend(&out, ", unaccounted=", a.offered - accounted);
  }
  absl::StrAppend(&out, "]\n");
  const bool has_objectives = run.spec().objectives().has_ttft() ||
                              run.spec().objectives().has_mean_itl() ||
                              run.spec().objectives().has_e2e();
  absl::StrAppend(&out, "\nGOODPUT:\n  [good=", a.good,
                  absl::StrFormat(", goodput_ratio=%.4f, goodput_per_sec=%.2f", a.goodput_ratio,
                                  a.goodput_per_sec),
                  has_objectives ? "" : ", objectives=none (every ok request counts)", "]\n");
  const v1::MetricStats* ttft = load::FindMetric(st, "ttft");
  const v1::MetricStats* ttft_service = load::FindMetric(st, "ttft_service");
  const v1::MetricStats* e2e = load::FindMetric(st, "e2e");
  const v1::MetricStats* e2e_service = load::FindMetric(st, "e2e_service");
  if (ttft != nullptr && ttft_service != nullptr && ttft_service->count() > 0) {
    absl::StrAppend(
        &out, "\nCOORDINATED OMISSION (latency from intended start minus service time, ms):\n",
        absl::StrFormat("  [ttft_p50_gap=%.2f, ttft_p99_gap=%.2f, ttft_max_gap=%.2f",
                        ttft->p50_ms() - ttft_service->p50_ms(),
                        ttft->p99_ms() - ttft_service->p99_ms(),
                        ttft->max_ms() - ttft_service->max_ms()));
    if (e2e != nullptr && e2e_service != nullptr && e2e_service->count() > 0) {
      absl::StrAppend(&out, absl::StrFormat(", e2e_p50_gap=%.2f, e2e_p99_gap=%.2f",
                                            e2e->p50_ms() - e2e_service->p50_ms(),
                                            e2e->p99_ms() - e2e_service->p99_ms()));
    }
    absl::StrAppend(&out, "]\n");
  }
  if (run.threshold_results_size() > 0 || run.has_passed()) {
    absl::StrAppend(&out, "\nTHRESHOLDS: ",
                    !run.has_passed() ? "not evaluated" : (run.passed() ? "PASSED" : "FAILED"),
                    "\n");
    for (const v1::ThresholdResult& r : run.threshold_results()) {
      absl::StrAppend(&out, "  [", r.passed() ? "pass" : "FAIL", "] ", r.description(), "\n");
    }
  }
  if (run.warnings_size() > 0) {
    absl::StrAppend(&out, "\nWARNINGS:\n");
    for (const std::string& w : run.warnings()) {
      absl::StrAppend(&out, "  ! ", w, "\n");
    }
  }
  return out;
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

std::string FormatProgress(const v1::RunUpdate& update) {
  const v1::Run& run = update.run();
  const v1::LiveStats& l = update.live();
  std::string out = absl::StrCat("Test progress. [state=", v1::RunState_Name(run.state()),
                                 ", elapsed=", absl::StrFormat("%.1fs", l.elapsed_seconds()));
  if (l.cycles_total() > 0) {
    absl::StrAppend(&out, ", cycles=", l.cycles_done(), "/", l.cycles_total());
  } else if (LoadSeconds(run) > 0) {
    absl::StrAppend(&out, ", remaining=", absl::StrFormat("%.1fs", l.remaining_seconds()));
  }
  absl::StrAppend(&out, ", requests_ok=", l.requests_ok(), ", errors=", l.requests_failed(),
                  ", tokens=", l.tokens(), ", active_sessions=", l.active_sessions(),
                  absl::StrFormat(", requests_per_sec=%.1f, tokens_per_sec=%.1f",
                                  l.requests_per_sec(), l.tokens_per_sec()),
                  absl::StrFormat(", ttft_p50_ms=%.1f, ttft_p99_ms=%.1f, itl_p50_ms=%.1f, "
                                  "itl_p99_ms=%.1f]",
                                  l.ttft_p50_ms(), l.ttft_p99_ms(), l.itl_p50_ms(),
                                  l.itl_p99_ms()));
  return out;
}

std::string FormatProgressBar(const v1::RunUpdate& update, int width) {
  const v1::Run& run = update.run();
  const v1::LiveStats& l = update.live();
  double fraction = 0;
  std::string position;
  if (l.cycles_total() > 0) {
    fraction = static_cast<double>(l.cycles_done()) / static_cast<double>(l.cycles_total());
    position = absl::StrCat(l.cycles_done(), "/", l.cycles_total(), " cycles");
  } else if (const double length = LoadSeconds(run); length > 0) {
    fraction = (length - l.remaining_seconds()) / length;
    position = absl::StrFormat("%.1fs/%.1fs", length - l.remaining_seconds(), length);
  }
  fraction = std::clamp(fraction, 0.0, 1.0);
  width = std::max(width, 1);
  const int filled = static_cast<int>(fraction * width + 0.5);
  return absl::StrCat(
      "[", std::string(static_cast<size_t>(filled), '#'),
      std::string(static_cast<size_t>(width - filled), '.'), "] ",
      absl::StrFormat("%3d%%  %s  ok=%d fail=%d  %.1f req/s %.0f tok/s  ttft p50/p99 "
                      "%.0f/%.0f ms  itl p50/p99 %.1f/%.1f ms  sessions=%d",
                      static_cast<int>(fraction * 100), position, l.requests_ok(),
                      l.requests_failed(), l.requests_per_sec(), l.tokens_per_sec(),
                      l.ttft_p50_ms(), l.ttft_p99_ms(), l.itl_p50_ms(), l.itl_p99_ms(),
                      l.active_sessions()));
}

bool RunPassed(const v1::Run& run) {
  return run.state() == v1::COMPLETED && (!run.has_passed() || run.passed());
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
  } else if (run.spec().load().has_duration()) {
    clients = run.spec().load().duration().connections();
  }
  const char* verb = RunPassed(run) ? "Test completed." : "Test ended.";
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
  if (const uint64_t input = CounterValue(st, v1::INPUT_TOKENS); input > 0) {
    const uint64_t estimated = CounterValue(st, v1::INPUT_TOKENS_ESTIMATED);
    const double seconds = st.duration_seconds();
    absl::StrAppend(&out, "\nINPUT TOKENS:\n  [input_tokens=", input, ", input_tokens_per_sec=",
                    absl::StrFormat("%.2f", seconds > 0 ? static_cast<double>(input) / seconds : 0),
                    ", estimated=", estimated, "]\n");
    if (estimated > 0) {
      absl::StrAppend(&out, "  ", estimated == input ? "All" : absl::StrCat(estimated, " of them"),
                      " estimated as ceil(prompt bytes / 4): the target reported no prompt "
                      "usage for those requests.\n");
    }
  }
  if (const uint64_t warm = CounterValue(st, v1::WARMUP_REQUESTS),
      cool = CounterValue(st, v1::COOLDOWN_REQUESTS);
      warm > 0 || cool > 0) {
    // Run, but in none of the numbers above.
    absl::StrAppend(&out, "\nWARM-UP AND COOL-DOWN (not counted above):\n  [warmup_requests=", warm,
                    ", warmup_failed=", CounterValue(st, v1::WARMUP_FAILED),
                    ", warmup_tokens=", CounterValue(st, v1::WARMUP_TOKENS),
                    ", cooldown_requests=", cool,
                    ", cooldown_tokens=", CounterValue(st, v1::COOLDOWN_TOKENS), "]\n");
  }
  if (st.turns_size() > 0) {
    // Multi-turn runs: TTFT against the context each turn carries.
    absl::StrAppend(&out, "\nBY TURN:\n",
                    absl::StrFormat("  %6s %9s %12s %10s %10s\n", "turn", "requests",
                                    "input_mean", "ttft_p50", "ttft_p99"));
    for (const v1::TurnStats& t : st.turns()) {
      absl::StrAppend(&out, absl::StrFormat("  %6d %9d %12.1f %10.2f %10.2f\n", t.turn(),
                                            t.requests(), t.input_tokens_mean(),
                                            t.ttft().p50_ms(), t.ttft().p99_ms()));
    }
  }
  // WS_CHAT with tools (their times are in ALL METRICS).
  if (const uint64_t calls = CounterValue(st, v1::TOOL_CALLS),
      results = CounterValue(st, v1::TOOL_RESULTS);
      calls > 0 || results > 0) {
    absl::StrAppend(&out, "\nTOOLS:\n  [tool_calls=", calls, ", tool_results=", results, "]\n");
  }
  // A reconnect storm (its time_to_reconnect is in ALL METRICS).
  if (const uint64_t recovered = CounterValue(st, v1::PUBLICATIONS_RECOVERED),
      missed = CounterValue(st, v1::PUBLICATIONS_MISSED);
      recovered > 0 || missed > 0) {
    absl::StrAppend(&out, "\nRECOVERY:\n  [publications_recovered=", recovered,
                    ", publications_missed=", missed, "]\n");
  }
  if (st.target_series_size() > 0) {
    // spec.targetMetrics: the target's own view, scraped during the run.
    absl::StrAppend(&out, "\nTARGET METRICS (scraped from the target):\n");
    for (const v1::TargetSeries& t : st.target_series()) {
      std::string labels;
      for (const v1::TargetLabel& l : t.labels()) {
        absl::StrAppend(&labels, labels.empty() ? "{" : ",", l.name(), "=\"", l.value(), "\"");
      }
      if (!labels.empty()) {
        labels += "}";
      }
      absl::StrAppend(&out, "  ", t.name(), labels, "\n    [type=", t.type(),
                      ", last=", absl::StrFormat("%g", t.value()),
                      ", min=", absl::StrFormat("%g", t.min()),
                      ", max=", absl::StrFormat("%g", t.max()),
                      ", mean=", absl::StrFormat("%g", t.mean()),
                      ", increase=", absl::StrFormat("%g", t.increase()),
                      ", samples=", t.samples(), "]\n");
    }
  }
  if (const v1::ShardProgress& p = run.progress(); p.batches_rejected() > 0) {
    absl::StrAppend(&out, "\nREJECTED BY THE COLLECTOR (missing from these statistics):\n",
                    "  [batches=", p.batches_rejected(), ", requests=", p.requests_rejected(),
                    ", samples=", p.samples_rejected(), "]\n");
    for (const v1::Shard& shard : run.shards()) {
      if (shard.progress().batches_rejected() > 0) {
        absl::StrAppend(&out, "  [worker=", shard.worker_id(),
                        ", batches=", shard.progress().batches_rejected(),
                        ", reason=", shard.progress().rejection_reason(), "]\n");
      }
    }
  }
  absl::StrAppend(&out, FormatLoadSections(run));
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
  if (run.losses_size() > 0) {
    absl::StrAppend(&out, "\nLOST WORKERS:\n");
    for (const v1::WorkerLoss& l : run.losses()) {
      absl::StrAppend(&out, "  [worker=", l.worker_id(), ", epoch=", l.epoch(),
                      l.drained() ? ", drained" : ", lost", ", detected=",
                      Timestamp(l.detected_at()), ", reason=", l.reason(),
                      ", requests_lost=", l.requests_lost());
      if (l.missing_to_us() > l.missing_from_us()) {
        absl::StrAppend(&out, absl::StrFormat(", missing_samples=%.3fs",
                                              static_cast<double>(l.missing_to_us() -
                                                                  l.missing_from_us()) /
                                                  1e6));
      }
      absl::StrAppend(&out, "]\n");
      for (const std::string& m : l.moved()) {
        absl::StrAppend(&out, "    moved to ", m, "\n");
      }
      if (!l.not_moved().empty()) {
        absl::StrAppend(&out, "    not moved: ", l.not_moved(), "\n");
      }
    }
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
