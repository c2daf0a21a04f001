#include "tools/llmload/report.h"

#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"

namespace llmload::cli {
namespace {

v1::Run SampleRun() {
  v1::Run run;
  run.set_id("run-abc");
  run.set_state(v1::COMPLETED);
  run.mutable_spec()->mutable_load()->mutable_closed()->set_clients(10);
  run.mutable_progress()->set_cycles_done(50);
  run.mutable_progress()->set_cycles_total(50);
  v1::RunStats* st = run.mutable_stats();
  st->set_duration_seconds(18.42);
  st->mutable_throughput()->set_requests_per_sec(2.72);
  st->mutable_throughput()->set_tokens_per_sec(271.58);
  st->mutable_throughput()->set_cycles_per_sec(2.72);
  metrics::MetricSet set;
  for (uint64_t v = 1; v <= 100; ++v) {
    // Below 2048 us every value has a bucket of its own: percentiles are exact.
    set.RecordUs(v1::REQUEST, v * 10);
    set.RecordUs(v1::TTFT, v * 20);
  }
  *st->add_metrics() = metrics::Summarize(v1::REQUEST, set.Hist(v1::REQUEST));
  *st->add_metrics() = metrics::Summarize(v1::TTFT, set.Hist(v1::TTFT));
  (*st->mutable_counters())["sessions_opened"] = 10;
  (*st->mutable_counters())["requests_ok"] = 48;
  (*st->mutable_counters())["timeout"] = 2;
  return run;
}

TEST(ReportTest, KeepsTheOriginalClientsLayout) {
  const std::string r = FormatReport(SampleRun());
  EXPECT_NE(r.find("LOAD TEST RESULTS\n" + std::string(79, '=')), std::string::npos);
  EXPECT_NE(r.find("Test completed. [run_id=run-abc, state=COMPLETED, total_clients=10, "
                   "total_cycles=50/50, duration=18.42s]"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("THROUGHPUT:\n  [requests_per_sec=2.72, tokens_per_sec=271.58, "
                   "cycles_per_sec=2.72]"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("REQUEST LATENCY (ms):\n  [p50=0.50, p95=0.95, p99=0.99, max=1.00]"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("TOKEN LATENCY (ms):\n  [p50=1.00, p95=1.90, p99=1.98]"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("CONNECTIONS:\n  [successful=10, failed=0, total_errors=2, reconnects=0]"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("END-TO-END LATENCY (ms):\n  [no samples]"), std::string::npos);
}

TEST(ReportTest, FailedRunSaysSoWithItsError) {
  v1::Run run = SampleRun();
  run.set_state(v1::FAILED);
  run.set_error("worker w1 lost");
  const std::string r = FormatReport(run);
  EXPECT_NE(r.find("Test ended. [run_id=run-abc, state=FAILED"), std::string::npos);
  EXPECT_NE(r.find("Error. [message=worker w1 lost]"), std::string::npos);
}

TEST(ReportTest, ProgressLine) {
  v1::Run run = SampleRun();
  run.set_state(v1::RUNNING);
  run.mutable_progress()->set_cycles_done(20);
  run.mutable_progress()->set_requests_ok(19);
  run.mutable_progress()->set_requests_failed(1);
  run.mutable_progress()->set_tokens(1900);
  EXPECT_EQ(FormatProgress(run, 3.25),
            "Test progress. [state=RUNNING, elapsed=3.2s, cycles=20/50, requests_ok=19, "
            "errors=1, tokens=1900, active_sessions=0]");
}

}  // namespace
}  // namespace llmload::cli
