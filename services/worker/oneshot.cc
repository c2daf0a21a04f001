#include "services/worker/oneshot.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "lib/common/log.h"
#include "lib/metrics/metrics.h"
#include "lib/planning/planning.h"
#include "lib/validation/validation.h"
#include "llmload/v1/orchestrator.pb.h"
#include "services/worker/event_loops.h"
#include "services/worker/shard.h"

namespace llmload::worker {
namespace {

absl::StatusOr<v1::RunSpec> ReadSpec(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  v1::StartRunRequest req;
  if (text.find("\"spec\"") != std::string::npos &&
      google::protobuf::util::JsonStringToMessage(text, &req).ok()) {
    return req.spec();
  }
  v1::RunSpec spec;
  if (auto st = google::protobuf::util::JsonStringToMessage(text, &spec); !st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a RunSpec in proto JSON: ", st.ToString()));
  }
  return spec;
}

v1::RunStats Summarize(const metrics::MetricSet& m, double seconds) {
  v1::RunStats s;
  s.set_run_id("oneshot");
  s.set_duration_seconds(seconds);
  for (v1::Metric metric : metrics::AllMetrics()) {
    if (!m.Hist(metric).Empty()) {
      *s.add_metrics() = metrics::Summarize(metric, m.Hist(metric));
    }
  }
  for (v1::Counter c : metrics::AllCounters()) {
    if (m.Get(c) != 0) {
      (*s.mutable_counters())[std::string(metrics::CounterName(c))] = m.Get(c);
    }
  }
  if (seconds > 0) {
    s.mutable_throughput()->set_requests_per_sec(static_cast<double>(m.Get(v1::REQUESTS_OK)) / seconds);
    s.mutable_throughput()->set_tokens_per_sec(static_cast<double>(m.Get(v1::TOKENS)) / seconds);
    s.mutable_throughput()->set_cycles_per_sec(static_cast<double>(m.Get(v1::CYCLES)) / seconds);
    s.mutable_throughput()->set_bytes_in_per_sec(static_cast<double>(m.Get(v1::BYTES_IN)) / seconds);
  }
  return s;
}

void PrintText(const v1::RunStats& s) {
  std::printf("ONE-SHOT RESULTS\n");
  std::printf("  [duration=%.2fs, requests_per_sec=%.2f, tokens_per_sec=%.2f]\n",
              s.duration_seconds(), s.throughput().requests_per_sec(),
              s.throughput().tokens_per_sec());
  std::printf("  %-14s %9s %9s %9s %9s %9s %9s\n", "metric (ms)", "count", "p50", "p90", "p99",
              "p99.9", "max");
  for (const auto& m : s.metrics()) {
    std::printf("  %-14s %9llu %9.2f %9.2f %9.2f %9.2f %9.2f\n", m.metric().c_str(),
                static_cast<unsigned long long>(m.count()), m.p50_ms(), m.p90_ms(), m.p99_ms(),
                m.p999_ms(), m.max_ms());
  }
  for (v1::Counter c : metrics::AllCounters()) {
    auto it = s.counters().find(std::string(metrics::CounterName(c)));
    if (it != s.counters().end()) {
      std::printf("  %s=%llu\n", it->first.c_str(), static_cast<unsigned long long>(it->second));
    }
  }
}

}  // namespace

int RunOneShot(const OneShotOptions& options, const std::function<bool()>& interrupted) {
  auto spec = ReadSpec(options.spec_path);
  if (!spec.ok()) {
    std::fprintf(stderr, "llmload-worker: %s\n", std::string(spec.status().message()).c_str());
    return 2;
  }
  if (absl::Status s = validation::ValidateRunSpec(*spec); !s.ok()) {
    std::fprintf(stderr, "llmload-worker: %s\n", s.ToString().c_str());
    return 2;
  }
  validation::ApplyDefaults(&*spec);
  auto plan = planning::PlanForSpec(*spec, {{"oneshot", options.capacity}});
  if (!plan.ok() || plan->size() != 1) {
    std::fprintf(stderr, "llmload-worker: cannot plan the run: %s\n",
                 plan.ok() ? "no shard" : plan.status().ToString().c_str());
    return 2;
  }
  const planning::ShardPlan& p = plan->front();
  v1::ShardAssignment a;
  a.set_run_id("oneshot");
  *a.mutable_spec() = *spec;
  a.set_client_begin(p.client_begin);
  a.set_client_count(p.client_count);
  a.set_max_concurrent(p.max_concurrent);
  a.set_rate_per_second(p.rate_per_second);
  a.set_rate_share(p.rate_share);

  EventLoops loops(options.threads);
  auto runner = ShardRunner::Create(loops, a);
  if (!runner.ok()) {
    std::fprintf(stderr, "llmload-worker: %s\n", runner.status().ToString().c_str());
    return 2;
  }
  const absl::Time start = absl::Now();
  absl::Time next_progress = start + options.progress_interval;
  metrics::MetricSet total;
  (*runner)->Start();
  bool cancelled = false;
  while (!(*runner)->Finished()) {
    if (!cancelled && interrupted()) {
      cancelled = true;
      (*runner)->Cancel();
    }
    if (absl::Now() >= next_progress) {
      next_progress += options.progress_interval;
      (*runner)->CutInto(total);
      LLMLOAD_LOG(kInfo, "Test progress.")
          .Kv("elapsed_s", absl::ToDoubleSeconds(absl::Now() - start))
          .Kv("requests_ok", total.Get(v1::REQUESTS_OK))
          .Kv("errors", metrics::FailedRequests(total))
          .Kv("tokens", total.Get(v1::TOKENS))
          .Kv("active_sessions", (*runner)->active_sessions());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  (*runner)->CutInto(total);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  runner->reset();
  loops.Stop();
  const v1::RunStats stats = Summarize(total, seconds);
  if (options.json) {
    std::string out;
    google::protobuf::util::JsonPrintOptions opts;
    opts.add_whitespace = true;
    (void)google::protobuf::util::MessageToJsonString(stats, &out, opts);
    std::printf("%s\n", out.c_str());
  } else {
    PrintText(stats);
  }
  std::fflush(stdout);
  return metrics::FailedRequests(total) == 0 && !cancelled ? 0 : 1;
}

}  // namespace llmload::worker
