// End to end: the real emulator, collector, orchestrator and two workers on
// loopback ports, driven over gRPC and HTTP the way users drive them.

#include <signal.h>

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

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::ChildProcess;
using testing_util::FreePort;

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir("pipeline");
    ASSERT_FALSE(dir_.empty());
    emulator_port_ = FreePort();
    collector_port_ = FreePort();
    metrics_port_ = FreePort();
    orchestrator_port_ = FreePort();
    emulator_ = ChildProcess::Start(BinPath("llmload-emulator"),
                                    {"--host=127.0.0.1", absl::StrCat("--port=", emulator_port_),
                                     "--threads=1"},
                                    dir_ + "/emulator.log", dir_);
    StartCollector();
    orchestrator_ = ChildProcess::Start(
        BinPath("llmload-orchestrator"),
        {absl::StrCat("--grpc_address=127.0.0.1:", orchestrator_port_),
         absl::StrCat("--collector=127.0.0.1:", collector_port_)},
        dir_ + "/orchestrator.log", dir_);
    for (int i = 0; i < 2; ++i) {
      workers_.push_back(ChildProcess::Start(
          BinPath("llmload-worker"),
          {absl::StrCat("--orchestrator=127.0.0.1:", orchestrator_port_),
           absl::StrCat("--collector=127.0.0.1:", collector_port_),
           absl::StrCat("--worker_id=worker-", i), "--threads=1", "--batch_interval_ms=200",
           "--metrics_address="},
          dir_ + absl::StrCat("/worker-", i, ".log"), dir_));
    }
    ASSERT_TRUE(testing_util::WaitForTcp(emulator_port_, absl::Seconds(20)));
    ASSERT_TRUE(testing_util::WaitForTcp(orchestrator_port_, absl::Seconds(20)));
    stub_ = v1::Orchestrator::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", orchestrator_port_)));
    ASSERT_TRUE(WaitForWorkers(2, absl::Seconds(20)));
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const auto& [name, p] : std::map<std::string, ChildProcess*>{
               {"emulator", emulator_.get()}, {"collector", collector_.get()},
               {"orchestrator", orchestrator_.get()}, {"worker-0", workers_[0].get()},
               {"worker-1", workers_[1].get()}}) {
        if (p != nullptr) {
          std::string log = p->ReadLog();
          if (log.size() > 4000) {
            log = log.substr(log.size() - 4000);
          }
          std::cerr << "---- " << name << " log ----\n" << log << "\n";
        }
      }
    }
    for (auto& w : workers_) {
      w->Stop();
    }
    if (orchestrator_) orchestrator_->Stop();
    if (collector_) collector_->Stop();
    if (emulator_) emulator_->Stop();
  }

  void StartCollector() {
    collector_ = ChildProcess::Start(
        BinPath("llmload-collector"),
        {absl::StrCat("--grpc_address=127.0.0.1:", collector_port_),
         absl::StrCat("--metrics_address=127.0.0.1:", metrics_port_), "--db_path=collector.db"},
        dir_ + "/collector.log", dir_);
    ASSERT_TRUE(testing_util::WaitForTcp(collector_port_, absl::Seconds(20)));
  }

  ::testing::AssertionResult WaitForWorkers(int n, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    int seen = 0;
    while (absl::Now() < deadline) {
      grpc::ClientContext ctx;
      v1::ListWorkersResponse resp;
      if (stub_->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp).ok()) {
        seen = resp.workers_size();
        if (seen >= n) {
          return ::testing::AssertionSuccess();
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return ::testing::AssertionFailure() << "only " << seen << " of " << n << " workers attached";
  }

  v1::RunSpec Spec(int clients, int cycles, int words, double delay_s) {
    v1::RunSpec spec;
    spec.set_name("pipeline-test");
    spec.mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
    spec.mutable_target()->set_url(absl::StrCat("http://127.0.0.1:", emulator_port_));
    auto* closed = spec.mutable_load()->mutable_closed();
    closed->set_clients(clients);
    closed->set_cycles_per_client(cycles);
    closed->set_max_concurrent(clients);
    spec.mutable_emulation()->set_length_words(words);
    ToProtoDuration(absl::Seconds(delay_s), spec.mutable_emulation()->mutable_token_delay());
    return spec;
  }

  v1::Run StartRun(const v1::RunSpec& spec) {
    grpc::ClientContext ctx;
    v1::StartRunRequest req;
    *req.mutable_spec() = spec;
    v1::Run run;
    grpc::Status st = stub_->StartRun(&ctx, req, &run);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return run;
  }

  v1::Run WaitForEnd(const std::string& id, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    v1::Run run;
    while (absl::Now() < deadline) {
      grpc::ClientContext ctx;
      v1::GetRunRequest req;
      req.set_id(id);
      if (stub_->GetRun(&ctx, req, &run).ok() &&
          (run.state() == v1::COMPLETED || run.state() == v1::FAILED ||
           run.state() == v1::CANCELLED)) {
        return run;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "run " << id << " did not end within " << absl::FormatDuration(timeout)
                  << "; last state " << v1::RunState_Name(run.state());
    return run;
  }

  static uint64_t Counter(const google::protobuf::Map<std::string, uint64_t>& m, v1::Counter c) {
    auto it = m.find(std::string(metrics::CounterName(c)));
    return it == m.end() ? 0 : it->second;
  }

  static const v1::MetricStats* Metric(const v1::RunStats& s, v1::Metric m) {
    for (const auto& ms : s.metrics()) {
      if (ms.metric() == metrics::MetricName(m)) {
        return &ms;
      }
    }
    return nullptr;
  }

  std::string dir_;
  int emulator_port_ = 0;
  int collector_port_ = 0;
  int metrics_port_ = 0;
  int orchestrator_port_ = 0;
  std::unique_ptr<ChildProcess> emulator_, collector_, orchestrator_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
  std::unique_ptr<v1::Orchestrator::Stub> stub_;
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
  ::kill(collector_->pid(), SIGKILL);
  collector_->Wait(absl::Seconds(5));
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
