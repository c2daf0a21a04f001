#include "tools/llmload/report.h"

#include <tuple>

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

TEST(ReportTest, ReportsInputTokensAndSaysWhichAreEstimated) {
  v1::Run run = SampleRun();
  std::string r = FormatReport(run);
  EXPECT_EQ(r.find("INPUT TOKENS"), std::string::npos) << r;  // none counted: no section
  (*run.mutable_stats()->mutable_counters())["input_tokens"] = 1842;
  r = FormatReport(run);
  EXPECT_NE(r.find("INPUT TOKENS:\n  [input_tokens=1842, input_tokens_per_sec=100.00, "
                   "estimated=0]\n"),
            std::string::npos)
      << r;
  EXPECT_EQ(r.find("estimated as"), std::string::npos) << r;
  (*run.mutable_stats()->mutable_counters())["input_tokens_estimated"] = 42;
  r = FormatReport(run);
  EXPECT_NE(r.find("estimated=42]\n  42 of them estimated as ceil(prompt bytes / 4)"),
            std::string::npos)
      << r;
  (*run.mutable_stats()->mutable_counters())["input_tokens_estimated"] = 1842;
  r = FormatReport(run);
  EXPECT_NE(r.find("  All estimated as ceil(prompt bytes / 4)"), std::string::npos) << r;
}

TEST(ReportTest, ReportsToolFramesWhenThereAreAny) {
  v1::Run run = SampleRun();
  EXPECT_EQ(FormatReport(run).find("TOOLS:"), std::string::npos);  // none: no section
  (*run.mutable_stats()->mutable_counters())["tool_calls"] = 60;
  (*run.mutable_stats()->mutable_counters())["tool_results"] = 59;
  const std::string r = FormatReport(run);
  EXPECT_NE(r.find("TOOLS:\n  [tool_calls=60, tool_results=59]\n"), std::string::npos) << r;
}

TEST(ReportTest, ReportsRecoveryAfterAReconnectStorm) {
  v1::Run run = SampleRun();
  EXPECT_EQ(FormatReport(run).find("RECOVERY:"), std::string::npos);  // none: no section
  (*run.mutable_stats()->mutable_counters())["publications_recovered"] = 31;
  (*run.mutable_stats()->mutable_counters())["publications_missed"] = 4;
  const std::string r = FormatReport(run);
  EXPECT_NE(r.find("RECOVERY:\n  [publications_recovered=31, publications_missed=4]\n"),
            std::string::npos)
      << r;
}

TEST(ReportTest, ShowsTheTargetsOwnSeries) {
  v1::Run run = SampleRun();
  EXPECT_EQ(FormatReport(run).find("TARGET METRICS"), std::string::npos);  // none: no section
  v1::TargetSeries* t = run.mutable_stats()->add_target_series();
  t->set_name("req_total");
  v1::TargetLabel* l = t->add_labels();
  l->set_name("protocol");
  l->set_value("OPENAI_CHAT");
  t->set_type("counter");
  t->set_value(120);
  t->set_min(3);
  t->set_max(120);
  t->set_mean(61.5);
  t->set_increase(117);
  t->set_samples(31);
  const std::string r = FormatReport(run);
  EXPECT_NE(r.find("TARGET METRICS (scraped from the target):\n"
                   "  req_total{protocol=\"OPENAI_CHAT\"}\n"
                   "    [type=counter, last=120, min=3, max=120, mean=61.5, increase=117, "
                   "samples=31]\n"),
            std::string::npos)
      << r;
}

TEST(ReportTest, SaysWhatTheCollectorRejected) {
  EXPECT_EQ(FormatReport(SampleRun()).find("REJECTED"), std::string::npos);
  v1::Run run = SampleRun();
  const std::string reason = "interval_end_us is before interval_start_us";
  v1::Shard* w1 = run.add_shards();
  w1->set_worker_id("w1");
  w1->mutable_progress()->set_batches_rejected(3);
  w1->mutable_progress()->set_requests_rejected(21);
  w1->mutable_progress()->set_samples_rejected(81);
  w1->mutable_progress()->set_rejection_reason(reason);
  run.add_shards()->set_worker_id("w2");
  run.mutable_progress()->set_batches_rejected(3);
  run.mutable_progress()->set_requests_rejected(21);
  run.mutable_progress()->set_samples_rejected(81);
  run.mutable_progress()->set_rejection_reason("w1: " + reason);
  const std::string r = FormatReport(run);
  EXPECT_NE(r.find("\nREJECTED BY THE COLLECTOR (missing from these statistics):\n"
                   "  [batches=3, requests=21, samples=81]\n"
                   "  [worker=w1, batches=3, reason=" + reason + "]\n"),
            std::string::npos)
      << r;
  EXPECT_EQ(r.find("worker=w2"), std::string::npos) << r;
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

v1::Run OpenRunWithVerdict() {
  v1::Run run;
  run.set_id("run-1");
  run.set_state(v1::COMPLETED);
  v1::OpenLoad* open = run.mutable_spec()->mutable_load()->mutable_open();
  open->set_rate_per_second(20);
  open->mutable_duration()->set_seconds(10);
  v1::RunStats* st = run.mutable_stats();
  (*st->mutable_counters())["offered"] = 200;
  (*st->mutable_counters())["dropped"] = 5;
  (*st->mutable_counters())["requests_ok"] = 180;
  (*st->mutable_counters())["rate_limited"] = 10;
  (*st->mutable_counters())["good"] = 150;
  (*st->mutable_counters())["unfinished"] = 3;  // counted by the workers
  st->set_duration_seconds(10);
  for (auto [name, p50, p99] : {std::tuple{"ttft", 600.0, 1100.0},
                                std::tuple{"ttft_service", 100.0, 150.0}}) {
    v1::MetricStats* m = st->add_metrics();
    m->set_metric(name);
    m->set_count(180);
    m->set_p50_ms(p50);
    m->set_p99_ms(p99);
    m->set_max_ms(p99);
  }
  run.set_passed(false);
  v1::ThresholdResult* r = run.add_threshold_results();
  r->set_passed(false);
  r->set_description("ttft p95 = 1000.00 ms (limit < 500.00 ms, 180 samples)");
  run.add_warnings("5 arrivals dropped by the in-flight cap");
  return run;
}

TEST(ReportTest, LostRequestsAndLostWorkersAreShown) {
  v1::Run run = OpenRunWithVerdict();
  (*run.mutable_stats()->mutable_counters())["lost"] = 2;  // the remainder
  v1::WorkerLoss* loss = run.add_losses();
  loss->set_worker_id("w2");
  loss->set_epoch(2);
  loss->set_reason("no heartbeat for 3s");
  loss->set_requests_lost(2);
  loss->set_missing_from_us(1'000'000);
  loss->set_missing_to_us(1'750'000);
  loss->add_moved("w1: 6.00 req/s (0.3000 of the rate), in flight <= 5 (epoch 4)");
  const std::string out = FormatReport(run);
  EXPECT_NE(out.find("ok=180, failed=10, unfinished=3, lost=2]"), std::string::npos) << out;
  EXPECT_EQ(out.find("unaccounted"), std::string::npos) << out;
  EXPECT_NE(out.find("LOST WORKERS:\n  [worker=w2, epoch=2, lost, detected=-, reason=no heartbeat "
                     "for 3s, requests_lost=2, missing_samples=0.750s]\n    moved to w1: 6.00"),
            std::string::npos)
      << out;
}

TEST(ReportTest, LoadGoodputOmissionThresholdsAndWarnings) {
  const v1::Run run = OpenRunWithVerdict();
  const std::string out = FormatReport(run);
  EXPECT_NE(out.find("Test ended. [run_id=run-1"), std::string::npos) << out;
  EXPECT_NE(out.find("LOAD:\n  [model=open(20.00 req/s, poisson), offered=200, dropped=5, "
                     "admitted=180, refused=10, ok=180, failed=10, unfinished=3, unaccounted=2]"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("GOODPUT:\n  [good=150, goodput_ratio=0.7500, goodput_per_sec=15.00"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("[ttft_p50_gap=500.00, ttft_p99_gap=950.00"), std::string::npos) << out;
  EXPECT_NE(out.find("THRESHOLDS: FAILED\n  [FAIL] ttft p95 = 1000.00 ms"), std::string::npos)
      << out;
  EXPECT_NE(out.find("WARNINGS:\n  ! 5 arrivals dropped"), std::string::npos) << out;
  EXPECT_FALSE(RunPassed(run));
  v1::Run ok = run;
  ok.set_passed(true);
  EXPECT_TRUE(RunPassed(ok));
  ok.set_state(v1::CANCELLED);
  EXPECT_FALSE(RunPassed(ok));
}

TEST(ReportTest, ProgressBarAndPlainLineCarryLiveStats) {
  v1::RunUpdate u;
  u.mutable_run()->set_state(v1::RUNNING);
  u.mutable_run()->mutable_spec()->mutable_load()->mutable_duration()->mutable_duration()
      ->set_seconds(20);
  v1::LiveStats* l = u.mutable_live();
  l->set_elapsed_seconds(5);
  l->set_remaining_seconds(15);
  l->set_requests_ok(40);
  l->set_requests_per_sec(8);
  l->set_tokens_per_sec(400);
  l->set_ttft_p50_ms(12);
  l->set_ttft_p99_ms(30);
  const std::string bar = FormatProgressBar(u, 20);
  EXPECT_EQ(bar.substr(0, 22), "[#####...............]") << bar;
  EXPECT_NE(bar.find(" 25%  5.0s/20.0s  ok=40 fail=0  8.0 req/s 400 tok/s  ttft p50/p99 12/30 ms"),
            std::string::npos)
      << bar;
  const std::string line = FormatProgress(u);
  EXPECT_NE(line.find("remaining=15.0s"), std::string::npos) << line;
  EXPECT_NE(line.find("requests_per_sec=8.0"), std::string::npos) << line;
  EXPECT_NE(line.find("ttft_p99_ms=30.0"), std::string::npos) << line;
}

}  // namespace
}  // namespace llmload::cli
