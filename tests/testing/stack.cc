#include "tests/testing/stack.h"

#include <signal.h>

#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/metrics/metrics.h"
#include "services/common/grpc_util.h"
#include "tests/testing/mono_clock.h"
#include "tools/llmload/cli_args.h"

namespace llmload::testing_util {

std::string EmulatorTargetJson(const std::string& protocol, int port) {
  v1::Protocol p = v1::PROTOCOL_UNSPECIFIED;
  v1::Protocol_Parse(protocol, &p);
  return absl::StrCat(R"({"protocol": ")", protocol, R"(", "url": ")",
                      cli::EmulatorTargetUrl(p, absl::StrCat("127.0.0.1:", port)),
                      R"(", "model": "m"})");
}

void StackTest::StartStack(const StackOptions& options) {
  options_ = options;
  dir_ = MakeTempDir("stack");
  ASSERT_FALSE(dir_.empty());
  emulator_port_ = FreePort();
  collector_port_ = FreePort();
  metrics_port_ = FreePort();
  orchestrator_port_ = FreePort();
  std::vector<std::string> emulator_args = {"--host=127.0.0.1",
                                            absl::StrCat("--port=", emulator_port_),
                                            "--threads=1", "--tls_port=0"};
  emulator_args.insert(emulator_args.end(), options.emulator_args.begin(),
                       options.emulator_args.end());
  emulator_ = ChildProcess::Start(BinPath("llmload-emulator"), emulator_args,
                                  dir_ + "/emulator.log", dir_);
  StartCollector();
  StartOrchestrator();
  workers_.resize(static_cast<size_t>(options.workers));
  for (int i = 0; i < options.workers; ++i) {
    StartWorker(i);
  }
  ASSERT_TRUE(WaitForTcp(emulator_port_, absl::Seconds(20)));
  ASSERT_TRUE(WaitForWorkers(options.workers, absl::Seconds(20)));
}

void StackTest::StartOrchestrator() {
  std::vector<std::string> args = {absl::StrCat("--grpc_address=127.0.0.1:", orchestrator_port_),
                                   absl::StrCat("--collector=127.0.0.1:", collector_port_)};
  args.insert(args.end(), options_.orchestrator_args.begin(), options_.orchestrator_args.end());
  orchestrator_ = ChildProcess::Start(BinPath("llmload-orchestrator"), args,
                                      dir_ + "/orchestrator.log", dir_);
  ASSERT_TRUE(WaitForTcp(orchestrator_port_, absl::Seconds(20)));
  if (stub_ == nullptr) {
    stub_ =
        v1::Orchestrator::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", orchestrator_port_)));
  }
}

void StackTest::StartWorker(int i, const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {
      absl::StrCat("--orchestrator=127.0.0.1:", orchestrator_port_),
      absl::StrCat("--collector=127.0.0.1:", collector_port_),
      absl::StrCat("--worker_id=worker-", i),
      absl::StrCat("--threads=", options_.worker_threads),
      "--batch_interval_ms=200",
      "--metrics_address="};  // workers share the machine: no fixed :9103
  args.insert(args.end(), options_.worker_args.begin(), options_.worker_args.end());
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  if (static_cast<size_t>(i) >= workers_.size()) {
    workers_.resize(static_cast<size_t>(i) + 1);
  }
  workers_[static_cast<size_t>(i)] =
      ChildProcess::Start(BinPath("llmload-worker"), args,
                          dir_ + absl::StrCat("/worker-", i, ".log"), dir_, options_.worker_env);
}

void StackTest::StartCollector() {
  collector_ = ChildProcess::Start(
      BinPath("llmload-collector"),
      {absl::StrCat("--grpc_address=127.0.0.1:", collector_port_),
       absl::StrCat("--metrics_address=127.0.0.1:", metrics_port_), "--db_path=collector.db"},
      dir_ + "/collector.log", dir_);
  ASSERT_TRUE(WaitForTcp(collector_port_, absl::Seconds(20)));
}

void StackTest::TearDown() {
  if (emulator_ != nullptr) {
    emulator_->Signal(SIGCONT);  // a test may have stopped it
  }
  if (HasFailure()) {
    std::vector<ChildProcess*> all = {emulator_.get(), collector_.get(), orchestrator_.get()};
    for (auto& w : workers_) {
      all.push_back(w.get());
    }
    for (ChildProcess* p : all) {
      if (p != nullptr) {
        std::string log = p->ReadLog();
        if (log.size() > 3000) {
          log = log.substr(log.size() - 3000);
        }
        std::cerr << "---- " << p->log_path() << " ----\n" << log << "\n";
      }
    }
  }
  for (auto& w : workers_) {
    if (w) {
      w->Stop();
    }
  }
  for (auto* p : {&orchestrator_, &collector_, &emulator_}) {
    if (*p) {
      (*p)->Stop();
    }
  }
}

::testing::AssertionResult StackTest::WaitForWorkers(int n, absl::Duration timeout) {
  int seen = 0;
  ::testing::AssertionResult attached = WaitUntil(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(5)));
        v1::ListWorkersResponse resp;
        if (stub_->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp).ok()) {
          seen = resp.workers_size();
        }
        return seen >= n;
      },
      timeout, absl::StrCat(n, " attached workers"), absl::Milliseconds(50));
  if (!attached) {
    attached << " (" << seen << " attached)";
  }
  return attached;
}

v1::Run StackTest::StartRun(const v1::RunSpec& spec) {
  grpc::ClientContext ctx;
  v1::StartRunRequest req;
  *req.mutable_spec() = spec;
  v1::Run run;
  grpc::Status st = stub_->StartRun(&ctx, req, &run);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return run;
}

v1::Run StackTest::WaitForEnd(const std::string& id, absl::Duration timeout) {
  v1::Run run;
  const ::testing::AssertionResult ended = WaitUntil(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(10)));
        v1::GetRunRequest req;
        req.set_id(id);
        return stub_->GetRun(&ctx, req, &run).ok() &&
               (run.state() == v1::COMPLETED || run.state() == v1::FAILED ||
                run.state() == v1::CANCELLED);
      },
      timeout, absl::StrCat("the end of run ", id), absl::Milliseconds(100));
  if (!ended) {
    ADD_FAILURE() << ended.message() << "; last state " << v1::RunState_Name(run.state());
  }
  return run;
}

std::string StackTest::EmulatorUrl() const { return absl::StrCat("http://127.0.0.1:", emulator_port_); }

uint64_t StackTest::CounterOf(const v1::RunStats& stats, v1::Counter counter) {
  auto it = stats.counters().find(std::string(metrics::CounterName(counter)));
  return it == stats.counters().end() ? 0 : it->second;
}

const v1::MetricStats* StackTest::MetricOf(const v1::RunStats& stats, v1::Metric metric) {
  for (const auto& s : stats.metrics()) {
    if (s.metric() == metrics::MetricName(metric)) {
      return &s;
    }
  }
  return nullptr;
}

}  // namespace llmload::testing_util
