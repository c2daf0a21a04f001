// End to end: the real emulator, collector, orchestrator and two workers on
// loopback ports, driven over gRPC and HTTP the way users drive them.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/common/grpc_util.h"
#include "tests/testing/process.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

class PipelineTest : public testing_util::StackTest {
 protected:
  void SetUp() override { StartStack(testing_util::StackOptions()); }

  v1::RunSpec Spec(int clients, int cycles, int words, double delay_s) {
    v1::RunSpec spec;
    spec.set_name("pipeline-test");
    spec.mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
    spec.mutable_target()->set_url(EmulatorUrl());
    auto* closed = spec.mutable_load()->mutable_closed();
    closed->set_clients(clients);
    closed->set_cycles_per_client(cycles);
    closed->set_max_concurrent(clients);
    spec.mutable_emulation()->set_length_words(words);
    ToProtoDuration(absl::Seconds(delay_s), spec.mutable_emulation()->mutable_token_delay());
    return spec;
  }

  static uint64_t Counter(const google::protobuf::Map<std::string, uint64_t>& m, v1::Counter c) {
    auto it = m.find(std::string(metrics::CounterName(c)));
    return it == m.end() ? 0 : it->second;
  }
  static const v1::MetricStats* Metric(const v1::RunStats& s, v1::Metric m) {
    return MetricOf(s, m);
  }
};

TEST_F(PipelineTest, ClosedRunOnTwoWorkersIsCompleteAndExact) {
  v1::Run started = StartRun(Spec(20, 3, 50, 0.005));
  ASSERT_FALSE(started.id().empty());
  EXPECT_EQ(started.shards_size(), 2);
  v1::Run run = WaitForEnd(started.id(), absl::Seconds(60));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();

  const v1::RunStats& stats = run.stats();
  EXPECT_EQ(Counter(stats.counters(), v1::REQUESTS_OK), 60u);
  EXPECT_EQ(Counter(stats.counters(), v1::TOKENS), 3000u);
  EXPECT_EQ(Counter(stats.counters(), v1::CYCLES), 60u);
  EXPECT_EQ(Counter(stats.counters(), v1::SESSIONS_OPENED), 20u);
  for (v1::Counter c : metrics::AllCounters()) {
    if (metrics::IsRequestFailureCounter(c)) {
      EXPECT_EQ(Counter(stats.counters(), c), 0u) << metrics::CounterName(c);
    }
  }
  EXPECT_EQ(run.progress().cycles_done(), 60);
  EXPECT_EQ(run.progress().requests_ok(), 60);

  // Inter-token latency: the emulator waits 5 ms between tokens.
  const v1::MetricStats* itl = Metric(stats, v1::ITL);
  ASSERT_NE(itl, nullptr);
  EXPECT_EQ(itl->count(), 60u * 49u);
  EXPECT_NEAR(itl->p50_ms(), 5.0, 1.0);
  // Every metric: counts as expected and percentiles monotone.
  const std::map<v1::Metric, uint64_t> expected_counts = {
      {v1::CONNECT, 20}, {v1::SESSION_SETUP, 20}, {v1::REQUEST, 60},
      {v1::TTFT, 60},    {v1::E2E, 60},           {v1::TPOT, 60}};
  for (const auto& [m, n] : expected_counts) {
    const v1::MetricStats* s = Metric(stats, m);
    ASSERT_NE(s, nullptr) << metrics::MetricName(m);
    EXPECT_EQ(s->count(), n) << metrics::MetricName(m);
  }
  for (const auto& s : stats.metrics()) {
    EXPECT_LE(s.min_ms(), s.p50_ms()) << s.metric();
    EXPECT_LE(s.p50_ms(), s.p90_ms()) << s.metric();
    EXPECT_LE(s.p90_ms(), s.p95_ms()) << s.metric();
    EXPECT_LE(s.p95_ms(), s.p99_ms()) << s.metric();
    EXPECT_LE(s.p99_ms(), s.p999_ms()) << s.metric();
    EXPECT_LE(s.p999_ms(), s.max_ms()) << s.metric();
  }
  // e2e covers 50 tokens 5 ms apart.
  EXPECT_GE(Metric(stats, v1::E2E)->p50_ms(), 49 * 5.0 * 0.9);

  // The per-worker statistics add up to the run's.
  ASSERT_EQ(stats.workers_size(), 2);
  for (v1::Counter c : metrics::AllCounters()) {
    uint64_t sum = 0;
    for (const auto& w : stats.workers()) {
      sum += Counter(w.counters(), c);
    }
    EXPECT_EQ(sum, Counter(stats.counters(), c)) << metrics::CounterName(c);
  }
  for (v1::Metric m : metrics::AllMetrics()) {
    uint64_t sum = 0;
    for (const auto& w : stats.workers()) {
      for (const auto& ms : w.metrics()) {
        if (ms.metric() == metrics::MetricName(m)) {
          sum += ms.count();
        }
      }
    }
    const v1::MetricStats* total = Metric(stats, m);
    EXPECT_EQ(sum, total == nullptr ? 0 : total->count()) << metrics::MetricName(m);
  }
  EXPECT_GT(stats.throughput().tokens_per_sec(), 0);

  // Prometheus exposition carries the run.
  int status = 0;
  const std::string body = testing_util::HttpGet(metrics_port_, "/metrics", &status);
  EXPECT_EQ(status, 200);
  const std::string label = absl::StrCat("run_id=\"", run.id(), "\"");
  for (const char* family : {"llmload_ttft_seconds", "llmload_itl_seconds", "llmload_e2e_seconds",
                             "llmload_requests_total", "llmload_tokens_total"}) {
    EXPECT_NE(body.find(family), std::string::npos) << family;
  }
  EXPECT_NE(body.find(label), std::string::npos);
}

TEST_F(PipelineTest, WorkersResendUnackedBatchesAfterCollectorRestart) {
  // About 4 s of load; the collector dies for about a second in the middle.
  v1::Run started = StartRun(Spec(10, 8, 50, 0.01));
  ASSERT_FALSE(started.id().empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  {
    // The collector must die while the run is still producing samples.
    grpc::ClientContext ctx;
    v1::GetRunRequest req;
    req.set_id(started.id());
    v1::Run mid;
    ASSERT_TRUE(stub_->GetRun(&ctx, req, &mid).ok());
    ASSERT_EQ(mid.state(), v1::RUNNING);
    ASSERT_LT(mid.progress().cycles_done(), 80);
  }
  collector_->Kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  StartCollector();
  v1::Run run = WaitForEnd(started.id(), absl::Seconds(90));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  EXPECT_EQ(Counter(run.stats().counters(), v1::REQUESTS_OK), 80u);
  EXPECT_EQ(Counter(run.stats().counters(), v1::TOKENS), 4000u);
  const v1::MetricStats* itl = Metric(run.stats(), v1::ITL);
  ASSERT_NE(itl, nullptr);
  EXPECT_EQ(itl->count(), 80u * 49u);
  // The workers did lose their stream and resend.
  EXPECT_NE(workers_[0]->ReadLog().find("resend unacked batches"), std::string::npos);
}

}  // namespace
}  // namespace llmload
