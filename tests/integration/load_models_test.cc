// The load models end to end: the real emulator, collector, orchestrator and
// two workers on loopback ports. Duration runs end on time, StopRun ends a
// run within 2 s keeping its partial results, WatchRun streams live
// statistics at least once per second, a failing threshold fails the run
// (and the CLI exits 1), and the open model measures latency from the
// intended start so a stalled target cannot hide queueing.

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/common/grpc_util.h"
#include "tests/testing/process.h"
#include "tests/testing/stack.h"
#include "tests/testing/mono_clock.h"

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::RunShell;
using testing_util::ShellResult;

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

class LoadModelsTest : public testing_util::StackTest {
 protected:
  void SetUp() override {
    testing_util::StackOptions options;
    options.worker_threads = 2;
    StartStack(options);
  }

  v1::RunSpec BaseSpec(int words, double delay_s) {
    v1::RunSpec spec;
    spec.set_name("load-models-test");
    spec.mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
    spec.mutable_target()->set_url(absl::StrCat("http://127.0.0.1:", emulator_port_));
    spec.mutable_emulation()->set_length_words(words);
    ToProtoDuration(absl::Seconds(delay_s), spec.mutable_emulation()->mutable_token_delay());
    return spec;
  }

  v1::RunSpec DurationSpec(int connections, absl::Duration d) {
    v1::RunSpec spec = BaseSpec(10, 0.005);
    auto* load = spec.mutable_load()->mutable_duration();
    load->set_connections(connections);
    ToProtoDuration(d, load->mutable_duration());
    return spec;
  }

  v1::Run GetRun(const std::string& id) {
    grpc::ClientContext ctx;
    v1::GetRunRequest req;
    req.set_id(id);
    v1::Run run;
    EXPECT_TRUE(stub_->GetRun(&ctx, req, &run).ok());
    return run;
  }

  static uint64_t Counter(const v1::RunStats& s, v1::Counter c) { return CounterOf(s, c); }
  static const v1::MetricStats* Metric(const v1::RunStats& s, v1::Metric m) {
    return MetricOf(s, m);
  }
};

TEST_F(LoadModelsTest, DurationRunEndsOnTime) {
  const absl::Time requested = testing_util::MonoNow();
  v1::Run started = StartRun(DurationSpec(6, absl::Seconds(3)));
  ASSERT_FALSE(started.id().empty());
  EXPECT_EQ(started.shards_size(), 2);
  v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
  const absl::Time ended = testing_util::MonoNow();
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  ASSERT_TRUE(run.has_passed());
  EXPECT_TRUE(run.passed());
  // Ends on time: within 1 s of the 3 s duration, seen from the client.
  const absl::Duration took = ToTime(run.finished_at()) - ToTime(run.started_at());
  EXPECT_GE(took, absl::Seconds(3)) << absl::FormatDuration(took);
  EXPECT_LE(took, absl::Seconds(4)) << absl::FormatDuration(took);
  EXPECT_LE(ended - requested, absl::Seconds(4) + absl::Milliseconds(500));

  const v1::RunStats& s = run.stats();
  EXPECT_EQ(Counter(s, v1::SESSIONS_OPENED), 6u);
  const uint64_t ok = Counter(s, v1::REQUESTS_OK);
  EXPECT_GT(ok, 30u);  // each request takes ~50 ms: 6 connections x 3 s
  EXPECT_EQ(Counter(s, v1::TOKENS), ok * 10);
  // Offered: every request scheduled; without objectives every ok one is good.
  EXPECT_GE(Counter(s, v1::OFFERED), ok);
  EXPECT_LE(Counter(s, v1::OFFERED), ok + 6);  // at most one unfinished per connection
  EXPECT_EQ(Counter(s, v1::GOOD), ok);
}

TEST_F(LoadModelsTest, StopRunMidRunCancelsWithinTwoSecondsKeepingPartialResults) {
  v1::Run started = StartRun(DurationSpec(4, absl::Seconds(60)));
  ASSERT_FALSE(started.id().empty());
  // Wait until requests are flowing.
  const absl::Time deadline = testing_util::MonoNow() + absl::Seconds(15);
  while (testing_util::MonoNow() < deadline && GetRun(started.id()).progress().requests_ok() < 10) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(GetRun(started.id()).progress().requests_ok(), 10);
  const absl::Time stop_at = testing_util::MonoNow();
  {
    grpc::ClientContext ctx;
    v1::StopRunRequest req;
    req.set_id(started.id());
    v1::Run resp;
    ASSERT_TRUE(stub_->StopRun(&ctx, req, &resp).ok());
  }
  v1::Run run = WaitForEnd(started.id(), absl::Seconds(5));
  EXPECT_LE(testing_util::MonoNow() - stop_at, absl::Seconds(2));
  ASSERT_EQ(run.state(), v1::CANCELLED) << run.error();
  for (const v1::Shard& shard : run.shards()) {
    EXPECT_EQ(shard.state(), v1::SHARD_CANCELLED) << shard.worker_id();
  }
  EXPECT_GE(Counter(run.stats(), v1::REQUESTS_OK), 10u);  // partial results kept
  EXPECT_GE(run.progress().requests_ok(), 10);
}

TEST_F(LoadModelsTest, WatchRunStreamsLiveStatsAtLeastOncePerSecond) {
  v1::Run started = StartRun(DurationSpec(4, absl::Seconds(4)));
  ASSERT_FALSE(started.id().empty());
  grpc::ClientContext ctx;
  ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(30)));
  v1::WatchRunRequest req;
  req.set_id(started.id());
  auto reader = stub_->WatchRun(&ctx, req);
  v1::RunUpdate update;
  absl::Time last = testing_util::MonoNow();
  absl::Duration max_gap = absl::ZeroDuration();
  int updates = 0;
  double max_rps = 0;
  double max_ttft_p50 = 0;
  double last_elapsed = -1;
  bool elapsed_monotone = true;
  bool saw_remaining = false;
  v1::RunState final_state = v1::RUN_STATE_UNSPECIFIED;
  while (reader->Read(&update)) {
    const absl::Time now = testing_util::MonoNow();
    if (updates > 0) {
      max_gap = std::max(max_gap, now - last);
    }
    last = now;
    ++updates;
    const v1::LiveStats& l = update.live();
    elapsed_monotone = elapsed_monotone && l.elapsed_seconds() >= last_elapsed;
    last_elapsed = l.elapsed_seconds();
    saw_remaining = saw_remaining || (l.remaining_seconds() > 0 && l.remaining_seconds() < 4);
    max_rps = std::max(max_rps, l.requests_per_sec());
    max_ttft_p50 = std::max(max_ttft_p50, l.ttft_p50_ms());
    final_state = update.run().state();
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(final_state, v1::COMPLETED);
  EXPECT_GE(updates, 5);
  EXPECT_LE(max_gap, absl::Seconds(1)) << absl::FormatDuration(max_gap);
  EXPECT_TRUE(elapsed_monotone);
  EXPECT_TRUE(saw_remaining);
  EXPECT_GT(max_rps, 0);
  EXPECT_GT(max_ttft_p50, 0);
}

TEST_F(LoadModelsTest, OpenModelMeasuresFromIntendedStartThroughAStalledTarget) {
  // 40 arrivals/s, evenly spaced, for 5 s; the emulator is frozen for 1 s in
  // the middle. Arrivals during the stall wait for a session the stalled
  // target cannot set up; their latency from the intended start includes
  // that wait, their service time (from the actual send) does not.
  v1::RunSpec spec = BaseSpec(5, 0.002);
  auto* open = spec.mutable_load()->mutable_open();
  open->set_rate_per_second(40);
  open->set_distribution(v1::UNIFORM);
  open->set_seed(7);
  ToProtoDuration(absl::Seconds(5), open->mutable_duration());
  v1::Run started = StartRun(spec);
  ASSERT_FALSE(started.id().empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const absl::Duration stall = absl::Seconds(1);
  ASSERT_EQ(::kill(emulator_->pid(), SIGSTOP), 0);
  std::this_thread::sleep_for(absl::ToChronoMilliseconds(stall));
  ASSERT_EQ(::kill(emulator_->pid(), SIGCONT), 0);
  v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  const v1::RunStats& s = run.stats();
  // Every arrival is accounted for: 40/s x 5 s.
  EXPECT_NEAR(static_cast<double>(Counter(s, v1::OFFERED)), 200.0, 4.0);
  EXPECT_EQ(Counter(s, v1::DROPPED), 0u);
  EXPECT_GE(Counter(s, v1::REQUESTS_OK), 190u);

  const v1::MetricStats* ttft = Metric(s, v1::TTFT);
  const v1::MetricStats* service = Metric(s, v1::TTFT_SERVICE);
  ASSERT_NE(ttft, nullptr);
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(ttft->count(), service->count());
  const double stall_ms = absl::ToDoubleMilliseconds(stall);
  // The request that arrived first in the stall waited about all of it.
  EXPECT_GE(ttft->max_ms(), 0.8 * stall_ms);
  EXPECT_LE(ttft->max_ms(), stall_ms + 700);
  // About 40 arrivals fell in the stall (20 % of the run), waiting stall/2
  // on average from their intended start; few of them were already sent
  // when it began, so the service times stay small at p90.
  EXPECT_GE(ttft->p90_ms() - service->p90_ms(), 0.25 * stall_ms)
      << "ttft p90 " << ttft->p90_ms() << " ms, service p90 " << service->p90_ms() << " ms";
  EXPECT_GE(ttft->mean_ms() - service->mean_ms(), 0.05 * stall_ms);
  const v1::MetricStats* e2e = Metric(s, v1::E2E);
  const v1::MetricStats* e2e_service = Metric(s, v1::E2E_SERVICE);
  ASSERT_NE(e2e, nullptr);
  ASSERT_NE(e2e_service, nullptr);
  EXPECT_GE(e2e->max_ms(), 0.8 * stall_ms);
}

TEST_F(LoadModelsTest, FailingThresholdFailsTheRunAndTheCliExitsNonZero) {
  // TTFT on loopback is far above 1 us: the threshold must fail, and so
  // must the CLI; the passing one is listed as passed.
  const std::string spec_path = dir_ + "/spec.json";
  {
    std::ofstream out(spec_path);
    out << R"json({"spec": {"name": "threshold-test",
      "target": {"protocol": "CENTRIFUGO_EMULATOR", "url": "http://127.0.0.1:)json"
        << emulator_port_ << R"json("},
      "load": {"closed": {"clients": 4, "cyclesPerClient": 3, "maxConcurrent": 4}},
      "emulation": {"lengthWords": 5, "tokenDelay": "0.002s"},
      "thresholds": [{"metric": "ttft", "percentile": 95, "below": "0.000001s"},
                     {"metric": "error_rate", "belowValue": 0.5}],
      "objectives": {"ttft": "10s"}}})json";
  }
  const ShellResult r = RunShell(absl::StrCat("timeout 60 ", BinPath("llmload"), " run -f ",
                                           spec_path, " --orchestrator 127.0.0.1:",
                                           orchestrator_port_, " --progress-interval 0.2"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("THRESHOLDS: FAILED"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[FAIL] ttft p95 = "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[pass] error_rate = 0.0000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GOODPUT:\n  [good=12"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("LOAD:\n  [model=closed, offered=12"), std::string::npos) << r.output;

  // The same through gRPC: COMPLETED, but not passed, with the measured value.
  grpc::ClientContext ctx;
  v1::ListRunsResponse list;
  ASSERT_TRUE(stub_->ListRuns(&ctx, v1::ListRunsRequest(), &list).ok());
  ASSERT_EQ(list.runs_size(), 1);
  const v1::Run& run = list.runs(0);
  EXPECT_EQ(run.state(), v1::COMPLETED);
  ASSERT_TRUE(run.has_passed());
  EXPECT_FALSE(run.passed());
  ASSERT_EQ(run.threshold_results_size(), 2);
  EXPECT_FALSE(run.threshold_results(0).passed());
  EXPECT_GT(run.threshold_results(0).measured(), 0.001);
  EXPECT_TRUE(run.threshold_results(1).passed());
}

TEST_F(LoadModelsTest, AbortOnFailStopsTheRunEarlyAsFailed) {
  v1::RunSpec spec = DurationSpec(4, absl::Seconds(60));
  v1::Threshold* t = spec.add_thresholds();
  t->set_metric("ttft");
  t->set_percentile(50);
  ToProtoDuration(absl::Microseconds(1), t->mutable_below());
  t->set_abort_on_fail(true);
  const absl::Time start = testing_util::MonoNow();
  v1::Run started = StartRun(spec);
  ASSERT_FALSE(started.id().empty());
  v1::Run run = WaitForEnd(started.id(), absl::Seconds(20));
  EXPECT_LT(testing_util::MonoNow() - start, absl::Seconds(15));
  EXPECT_EQ(run.state(), v1::FAILED);
  EXPECT_NE(run.error().find("threshold failed, run aborted: ttft p50"), std::string::npos)
      << run.error();
  ASSERT_TRUE(run.has_passed());
  EXPECT_FALSE(run.passed());
  EXPECT_GT(Counter(run.stats(), v1::REQUESTS_OK), 0u);
}

}  // namespace
}  // namespace llmload
