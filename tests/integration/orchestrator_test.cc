// The real llmload-orchestrator binary on a loopback port with a temporary
// database, driven over gRPC by a client and a fake worker.

#include <sys/wait.h>

#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/common/grpc_util.h"
#include "tests/testing/process.h"
#include "tests/unit/orchestrator/fake_worker.h"
#include "tests/testing/mono_clock.h"

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::ChildProcess;
using testing_util::FakeWorker;

constexpr absl::Duration kWait = absl::Seconds(15);

v1::RunSpec ClosedSpec(int32_t clients, int32_t cycles) {
  v1::RunSpec spec;
  spec.set_name("integration");
  spec.mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
  spec.mutable_target()->set_url("http://127.0.0.1:8080");
  spec.mutable_load()->mutable_closed()->set_clients(clients);
  spec.mutable_load()->mutable_closed()->set_cycles_per_client(cycles);
  return spec;
}

class OrchestratorBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir("orchestrator");
    ASSERT_FALSE(dir_.empty());
    port_ = testing_util::FreePort();
    ASSERT_NE(port_, 0);
    StartOrchestrator();
  }

  void TearDown() override {
    worker_.reset();
    if (HasFailure() && orchestrator_ != nullptr) {
      std::string log = orchestrator_->ReadLog();
      if (log.size() > 6000) {
        log = log.substr(log.size() - 6000);
      }
      std::cerr << "---- orchestrator log ----\n" << log << "\n";
    }
    if (orchestrator_ != nullptr) {
      orchestrator_->Stop();
    }
  }

  void StartOrchestrator() {
    // Nothing listens on the collector port: GetRun must still answer.
    orchestrator_ = ChildProcess::Start(
        BinPath("llmload-orchestrator"),
        {absl::StrCat("--grpc_address=127.0.0.1:", port_),
         absl::StrCat("--collector=127.0.0.1:", testing_util::FreePort()),
         "--db_path=" + dir_ + "/orchestrator.db", "--heartbeat_timeout_seconds=3",
         // Lost work cannot be sealed without a collector: fail soon.
         "--reassign_wait_seconds=2", "--recovery_grace_seconds=5"},
        dir_ + "/orchestrator.log", dir_);
    ASSERT_NE(orchestrator_, nullptr);
    ASSERT_TRUE(testing_util::WaitForTcp(port_, kWait));
    channel_ = MakeChannel(absl::StrCat("127.0.0.1:", port_));
    stub_ = v1::Orchestrator::NewStub(channel_);
  }

  // SIGTERM; the orchestrator must exit 0 on its own, promptly even with
  // clients connected.
  void StopOrchestrator() {
    worker_.reset();
    const absl::Time start = testing_util::MonoNow();
    const int status = orchestrator_->Stop(absl::Seconds(10));
    EXPECT_LT(testing_util::MonoNow() - start, absl::Seconds(3));
    EXPECT_TRUE(WIFEXITED(status)) << "status " << status;
    EXPECT_EQ(WEXITSTATUS(status), 0);
    orchestrator_.reset();
  }

  grpc::Status StartRun(const v1::RunSpec& spec, v1::Run* run) {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(kWait));
    v1::StartRunRequest request;
    *request.mutable_spec() = spec;
    return stub_->StartRun(&ctx, request, run);
  }

  grpc::Status GetRun(const std::string& id, v1::Run* run) {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(kWait));
    v1::GetRunRequest request;
    request.set_id(id);
    return stub_->GetRun(&ctx, request, run);
  }

  ::testing::AssertionResult RunReaches(const std::string& id, v1::RunState state) {
    const absl::Time deadline = testing_util::MonoNow() + kWait;
    v1::Run run;
    while (testing_util::MonoNow() < deadline) {
      run.Clear();
      grpc::Status s = GetRun(id, &run);
      if (s.ok() && run.state() == state) {
        return ::testing::AssertionSuccess();
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return ::testing::AssertionFailure()
           << id << " is " << v1::RunState_Name(run.state()) << ", expected "
           << v1::RunState_Name(state);
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> orchestrator_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Orchestrator::Stub> stub_;
  std::unique_ptr<FakeWorker> worker_;
};

TEST_F(OrchestratorBinaryTest, BadSpecIsInvalidArgumentNamingTheField) {
  v1::RunSpec spec = ClosedSpec(1, 1);
  spec.mutable_target()->set_url("ftp://example.com");
  v1::Run run;
  grpc::Status status = StartRun(spec, &run);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("spec.target.url: ", 0), 0u) << status.error_message();

  status = StartRun(ClosedSpec(0, 1), &run);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "spec.load.closed.clients: must be between 1 and 1000000, got 0");
}

TEST_F(OrchestratorBinaryTest, NoWorkersIsFailedPrecondition) {
  v1::Run run;
  grpc::Status status = StartRun(ClosedSpec(2, 1), &run);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message().rfind("no idle workers attached", 0), 0u)
      << status.error_message();
}

TEST_F(OrchestratorBinaryTest, FakeWorkerCompletesARunThatSurvivesARestart) {
  worker_ = std::make_unique<FakeWorker>(channel_, "fake-1", 8);
  ASSERT_TRUE(worker_->Attach());
  v1::Run run;
  grpc::Status status = StartRun(ClosedSpec(4, 3), &run);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(run.state(), v1::RUNNING);

  auto assign = worker_->NextAssign(kWait);
  ASSERT_TRUE(assign.has_value());
  EXPECT_EQ(assign->run_id(), run.id());
  EXPECT_EQ(assign->client_begin(), 0);
  EXPECT_EQ(assign->client_count(), 4);
  EXPECT_EQ(assign->max_concurrent(), 4);
  worker_->Update(run.id(), v1::SHARD_RUNNING, 5);
  worker_->Update(run.id(), v1::SHARD_DONE, 12);
  ASSERT_TRUE(RunReaches(run.id(), v1::COMPLETED));
  v1::Run done;
  ASSERT_TRUE(GetRun(run.id(), &done).ok());
  EXPECT_EQ(done.progress().cycles_done(), 12);
  EXPECT_EQ(done.progress().cycles_total(), 12);
  EXPECT_FALSE(done.has_stats());  // the collector is down; GetRun still answers

  StopOrchestrator();
  StartOrchestrator();
  grpc::ClientContext ctx;
  ctx.set_deadline(testing_util::GrpcDeadline(kWait));
  v1::ListRunsResponse list;
  status = stub_->ListRuns(&ctx, v1::ListRunsRequest(), &list);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(list.runs_size(), 1);
  EXPECT_EQ(list.runs(0).id(), run.id());
  EXPECT_EQ(list.runs(0).state(), v1::COMPLETED);
  EXPECT_EQ(list.runs(0).spec().name(), "integration");
}

TEST_F(OrchestratorBinaryTest, RunInProgressAtRestartGoesOn) {
  worker_ = std::make_unique<FakeWorker>(channel_, "fake-1", 8);
  ASSERT_TRUE(worker_->Attach());
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(2, 100), &run).ok());
  ASSERT_TRUE(worker_->NextAssign(kWait).has_value());
  StopOrchestrator();
  StartOrchestrator();
  v1::Run after;
  ASSERT_TRUE(GetRun(run.id(), &after).ok());
  EXPECT_EQ(after.state(), v1::RUNNING);
  // The worker re-attaches and finishes its shard (epoch 1): the run
  // completes.
  worker_ = std::make_unique<FakeWorker>(channel_, "fake-1", 8);
  ASSERT_TRUE(worker_->Attach());
  v1::WorkerMessage done;
  done.mutable_shard_update()->set_run_id(run.id());
  done.mutable_shard_update()->set_epoch(1);
  done.mutable_shard_update()->set_state(v1::SHARD_DONE);
  done.mutable_shard_update()->mutable_progress()->set_cycles_done(200);
  ASSERT_TRUE(worker_->Send(done));
  ASSERT_TRUE(RunReaches(run.id(), v1::COMPLETED));
  ASSERT_TRUE(GetRun(run.id(), &after).ok());
  bool restarted = false;
  for (const v1::RunEvent& e : after.events()) {
    restarted = restarted ||
                e.message().find("orchestrator restarted; the run goes on") != std::string::npos;
  }
  EXPECT_TRUE(restarted);
}

// A real worker process killed with SIGKILL mid-run: the orchestrator shares
// its host, so the lost-worker events say that the process has exited.
TEST_F(OrchestratorBinaryTest, KilledWorkerProcessIsReportedAsExited) {
  // Neither the collector nor the target listens: the shard keeps failing to
  // connect for its whole duration, which is all this test needs.
  std::unique_ptr<ChildProcess> worker = ChildProcess::Start(
      BinPath("llmload-worker"),
      {absl::StrCat("--orchestrator=127.0.0.1:", port_),
       absl::StrCat("--collector=127.0.0.1:", testing_util::FreePort()), "--worker_id=crashy",
       "--threads=1", "--batch_interval_ms=200", "--metrics_address="},
      dir_ + "/worker.log", dir_);
  ASSERT_NE(worker, nullptr);
  const pid_t pid = worker->pid();
  v1::RunSpec spec = ClosedSpec(1, 1);
  spec.mutable_target()->set_url(absl::StrCat("http://127.0.0.1:", testing_util::FreePort()));
  spec.mutable_load()->clear_closed();
  spec.mutable_load()->mutable_duration()->set_connections(2);
  spec.mutable_load()->mutable_duration()->mutable_duration()->set_seconds(60);
  const absl::Time deadline = testing_util::MonoNow() + kWait;
  auto attached = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(kWait));
    v1::ListWorkersResponse workers;
    return stub_->ListWorkers(&ctx, v1::ListWorkersRequest(), &workers).ok() &&
           workers.workers_size() == 1;
  };
  while (!attached() && testing_util::MonoNow() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(attached()) << worker->ReadLog();
  v1::Run run;
  grpc::Status status = StartRun(spec, &run);
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto shard_running = [&] {
    v1::Run now;
    return GetRun(run.id(), &now).ok() && now.shards_size() == 1 &&
           now.shards(0).state() == v1::SHARD_RUNNING;
  };
  while (!shard_running() && testing_util::MonoNow() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(shard_running()) << worker->ReadLog();

  worker->Kill();
  ASSERT_TRUE(RunReaches(run.id(), v1::FAILED));
  v1::Run failed;
  ASSERT_TRUE(GetRun(run.id(), &failed).ok());
  const std::string exited = absl::StrCat("process ", pid, " has exited");
  bool closed_event = false;
  bool lost_event = false;
  for (const v1::RunEvent& e : failed.events()) {
    closed_event = closed_event || (e.message().find("stream closed") != std::string::npos &&
                                    e.message().find(exited) != std::string::npos);
    lost_event = lost_event || (e.message().find("worker crashy lost") != std::string::npos &&
                                e.message().find(exited) != std::string::npos);
  }
  EXPECT_TRUE(closed_event) << failed.DebugString();
  EXPECT_TRUE(lost_event) << failed.DebugString();
  // Nothing listens on the collector port: its work cannot be moved.
  EXPECT_NE(failed.error().find("could not seal the samples of worker crashy"),
            std::string::npos)
      << failed.error();
}

}  // namespace
}  // namespace llmload
