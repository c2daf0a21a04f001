// In-process orchestrator on 127.0.0.1:0 driven by fake workers over real
// gRPC, with short liveness timers.

#include "services/orchestrator/orchestrator_service.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "services/common/grpc_util.h"
#include "services/common/process_identity.h"
#include "services/orchestrator/orchestrator_server.h"
#include "tests/unit/orchestrator/fake_worker.h"
#include "tests/testing/mono_clock.h"

namespace llmload::orchestrator {
namespace {

using ::llmload::testing_util::FakeWorker;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kWait = absl::Seconds(10);

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = ::testing::TempDir() + "/" + prefix + "XXXXXX";
  char* dir = ::mkdtemp(tmpl.data());
  return dir != nullptr ? std::string(dir) : std::string();
}

// Polls `pred` until it holds or `timeout` passes.
::testing::AssertionResult Eventually(const std::function<bool()>& pred, absl::Duration timeout,
                                      const std::string& what) {
  const absl::Time deadline = testing_util::MonoNow() + timeout;
  while (testing_util::MonoNow() < deadline) {
    if (pred()) {
      return ::testing::AssertionSuccess();
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return pred() ? ::testing::AssertionSuccess()
                : ::testing::AssertionFailure() << "timed out waiting for " << what;
}

// A collector that answers GetRunStats with a canned result, and seals
// shards as if each client had started `started_per_client` cycles.
class FakeCollector final : public v1::Collector::CallbackService {
 public:
  grpc::ServerUnaryReactor* GetRunStats(grpc::CallbackServerContext* ctx,
                                        const v1::GetRunStatsRequest* request,
                                        v1::RunStats* reply) override {
    auto* reactor = ctx->DefaultReactor();
    reply->set_run_id(request->run_id());
    reply->set_batches(3);
    reply->set_complete(request->per_worker());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* SealShard(grpc::CallbackServerContext* ctx,
                                      const v1::SealShardRequest* request,
                                      v1::SealedShard* reply) override {
    auto* reactor = ctx->DefaultReactor();
    reply->set_run_id(request->run_id());
    reply->set_worker_id(request->worker_id());
    reply->set_epoch(request->epoch());
    reply->set_batches(1);
    reply->set_lost(1);
    {
      absl::MutexLock lock(&mu_);
      sealed_.push_back(*request);
      for (const auto& [client, started] : started_) {
        v1::ClientCycles* c = reply->add_clients();
        c->set_client(client);
        c->set_started(started);
        c->set_ended(started > 0 ? started - 1 : 0);
      }
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  void SetStarted(int32_t client, uint32_t started) {
    absl::MutexLock lock(&mu_);
    started_[client] = started;
  }
  std::vector<v1::SealShardRequest> Sealed() {
    absl::MutexLock lock(&mu_);
    return sealed_;
  }

 private:
  absl::Mutex mu_;
  std::map<int32_t, uint32_t> started_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SealShardRequest> sealed_ ABSL_GUARDED_BY(mu_);
};

v1::RunSpec ClosedSpec(int32_t clients, int32_t cycles, int32_t max_concurrent) {
  v1::RunSpec spec;
  spec.set_name("unit");
  spec.mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
  spec.mutable_target()->set_url("http://127.0.0.1:8080");
  v1::ClosedLoad* closed = spec.mutable_load()->mutable_closed();
  closed->set_clients(clients);
  closed->set_cycles_per_client(cycles);
  closed->set_max_concurrent(max_concurrent);
  return spec;
}

class OrchestratorServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = MakeTempDir("orch") + "/orchestrator.db";
    StartServer();
  }
  void TearDown() override {
    workers_.clear();
    if (server_ != nullptr) {
      server_->Shutdown(absl::Seconds(2));
    }
    if (collector_server_ != nullptr) {
      collector_server_->Shutdown();
    }
  }

  void StartServer(const std::string& collector_address = "") {
    OrchestratorConfig config;
    config.grpc_address = "127.0.0.1:0";
    config.db_path = db_path_;
    config.collector_address = collector_address;
    config.heartbeat_timeout = absl::Seconds(1);
    config.heartbeat_interval = absl::Milliseconds(200);
    config.stop_grace = absl::Milliseconds(500);
    config.tick = absl::Milliseconds(20);
    config.collector_deadline = absl::Milliseconds(500);
    config.recovery_grace = absl::Seconds(1);
    auto server = OrchestratorServer::Create(config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Orchestrator::NewStub(channel_);
  }

  // Serves collector_ on a loopback port and restarts the orchestrator
  // against it.
  void StartFakeCollector() {
    int collector_port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &collector_port);
    builder.RegisterService(&collector_);
    collector_server_ = builder.BuildAndStart();
    ASSERT_NE(collector_server_, nullptr);
    server_->Shutdown(absl::Seconds(1));
    server_.reset();
    StartServer(absl::StrCat("127.0.0.1:", collector_port));
  }

  void RestartServer() {
    workers_.clear();
    server_->Shutdown(absl::Seconds(2));
    server_.reset();
    StartServer();
  }

  FakeWorker& AddWorker(const std::string& id, int32_t capacity) {
    workers_.push_back(std::make_unique<FakeWorker>(channel_, id, capacity));
    EXPECT_TRUE(workers_.back()->Attach()) << "worker " << id << " was not accepted";
    return *workers_.back();
  }

  grpc::Status StartRun(const v1::RunSpec& spec, v1::Run* run) {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(kWait));
    v1::StartRunRequest request;
    *request.mutable_spec() = spec;
    return stub_->StartRun(&ctx, request, run);
  }

  v1::Run GetRun(const std::string& id, grpc::Status* status_out = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(kWait));
    v1::GetRunRequest request;
    request.set_id(id);
    v1::Run run;
    grpc::Status status = stub_->GetRun(&ctx, request, &run);
    if (status_out != nullptr) {
      *status_out = status;
    } else {
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    return run;
  }

  grpc::Status StopRun(const std::string& id, v1::Run* run) {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(kWait));
    v1::StopRunRequest request;
    request.set_id(id);
    return stub_->StopRun(&ctx, request, run);
  }

  v1::ListRunsResponse ListRuns(int32_t limit = 0) {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(kWait));
    v1::ListRunsRequest request;
    request.set_limit(limit);
    v1::ListRunsResponse response;
    grpc::Status status = stub_->ListRuns(&ctx, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  v1::ListWorkersResponse ListWorkers() {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(kWait));
    v1::ListWorkersResponse response;
    grpc::Status status = stub_->ListWorkers(&ctx, v1::ListWorkersRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  ::testing::AssertionResult RunReaches(const std::string& id, v1::RunState state,
                                        absl::Duration timeout = kWait) {
    return Eventually([&] { return GetRun(id).state() == state; }, timeout,
                      absl::StrCat(id, " to reach ", v1::RunState_Name(state)));
  }

  // Makes the orchestrator's database refuse writes from now on, as a full
  // or failing disk would: a trigger aborts every `op` ("INSERT" or
  // "UPDATE") on the runs table. HealStore(op) removes it.
  void BreakStore(const std::string& op) {
    ExecOnStore(absl::StrCat("CREATE TRIGGER refuse_", op, " BEFORE ", op,
                             " ON runs BEGIN SELECT RAISE(ABORT, 'injected: disk I/O error'); END"));
  }
  void HealStore(const std::string& op) {
    ExecOnStore(absl::StrCat("DROP TRIGGER refuse_", op));
  }
  void ExecOnStore(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (error != nullptr ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }

  static bool HasEvent(const v1::Run& run, const std::string& needle) {
    return std::any_of(run.events().begin(), run.events().end(), [&](const v1::RunEvent& e) {
      return absl::StrContains(e.message(), needle);
    });
  }

  std::string db_path_;
  std::unique_ptr<OrchestratorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Orchestrator::Stub> stub_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
  FakeCollector collector_;
  std::unique_ptr<grpc::Server> collector_server_;
};

TEST_F(OrchestratorServiceTest, AttachIsAcceptedWithHeartbeatInterval) {
  FakeWorker& w = AddWorker("w1", 10);
  EXPECT_EQ(w.heartbeat_interval_ms(), 200u);
}

TEST_F(OrchestratorServiceTest, StartRunAssignsEveryClientExactlyOnce) {
  FakeWorker& a = AddWorker("a", 100);
  FakeWorker& b = AddWorker("b", 50);
  v1::Run run;
  grpc::Status status = StartRun(ClosedSpec(10, 2, 4), &run);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(run.id(), ::testing::MatchesRegex("run-[0-9a-f]{12}"));
  EXPECT_EQ(run.state(), v1::RUNNING);
  EXPECT_TRUE(run.has_created_at());
  EXPECT_TRUE(run.has_started_at());
  EXPECT_EQ(run.progress().cycles_total(), 20);
  ASSERT_EQ(run.shards_size(), 2);
  EXPECT_TRUE(HasEvent(run, "run started on 2 workers"));

  auto assign_a = a.NextAssign(kWait);
  auto assign_b = b.NextAssign(kWait);
  ASSERT_TRUE(assign_a.has_value());
  ASSERT_TRUE(assign_b.has_value());
  EXPECT_EQ(assign_a->run_id(), run.id());
  EXPECT_EQ(assign_b->run_id(), run.id());
  EXPECT_EQ(assign_a->spec().load().closed().clients(), 10);
  std::vector<int> seen(10, 0);
  for (const auto* as : {&*assign_a, &*assign_b}) {
    for (int c = as->client_begin(); c < as->client_begin() + as->client_count(); ++c) {
      ASSERT_GE(c, 0);
      ASSERT_LT(c, 10);
      ++seen[c];
    }
    EXPECT_GE(as->max_concurrent(), 1);
    EXPECT_LE(as->max_concurrent(), as->client_count());
  }
  for (int c = 0; c < 10; ++c) {
    EXPECT_EQ(seen[c], 1) << "client " << c;
  }
  EXPECT_EQ(assign_a->max_concurrent() + assign_b->max_concurrent(), 4);
  EXPECT_EQ(assign_a->client_count(), 7);  // capacity 100 vs 50
  EXPECT_EQ(assign_b->client_count(), 3);
}

// A prompt dataset over 64 KiB goes to the workers whole but stays out of
// every answer to clients (grpcurl's default limit is 4 MiB); a small one is
// shown as given.
TEST_F(OrchestratorServiceTest, ALargePromptDatasetReachesWorkersButNotClients) {
  FakeWorker& a = AddWorker("a", 100);
  v1::RunSpec spec = ClosedSpec(2, 1, 0);
  for (int i = 0; i < 1000; ++i) {
    spec.mutable_target()->add_prompts(absl::StrCat("prompt ", i, " ", std::string(100, 'x')));
  }
  v1::Run run;
  ASSERT_TRUE(StartRun(spec, &run).ok());
  EXPECT_EQ(run.elided_prompts(), 1000u);
  EXPECT_EQ(run.spec().target().prompts_size(), 0);
  auto assign = a.NextAssign(kWait);
  ASSERT_TRUE(assign.has_value());
  ASSERT_EQ(assign->spec().target().prompts_size(), 1000);
  EXPECT_EQ(assign->spec().target().prompts(999), spec.target().prompts(999));

  const v1::Run got = GetRun(run.id());
  EXPECT_EQ(got.elided_prompts(), 1000u);
  EXPECT_EQ(got.spec().target().prompts_size(), 0);
  const v1::ListRunsResponse listed = ListRuns();
  ASSERT_EQ(listed.runs_size(), 1);
  EXPECT_EQ(listed.runs(0).elided_prompts(), 1000u);
  EXPECT_EQ(listed.runs(0).spec().target().prompts_size(), 0);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(kWait));
    v1::WatchRunRequest request;
    request.set_id(run.id());
    auto reader = stub_->WatchRun(&ctx, request);
    v1::RunUpdate update;
    ASSERT_TRUE(reader->Read(&update));
    EXPECT_EQ(update.run().elided_prompts(), 1000u);
    EXPECT_EQ(update.run().spec().target().prompts_size(), 0);
    ctx.TryCancel();
  }
  v1::Run stopped;
  ASSERT_TRUE(StopRun(run.id(), &stopped).ok());
  EXPECT_EQ(stopped.elided_prompts(), 1000u);
  EXPECT_EQ(stopped.spec().target().prompts_size(), 0);
}

TEST_F(OrchestratorServiceTest, ASmallPromptDatasetIsShownAsGiven) {
  AddWorker("a", 100);
  v1::RunSpec spec = ClosedSpec(2, 1, 0);
  spec.mutable_target()->add_prompts("one");
  spec.mutable_target()->add_prompts("two");
  v1::Run run;
  ASSERT_TRUE(StartRun(spec, &run).ok());
  const v1::Run got = GetRun(run.id());
  EXPECT_EQ(got.elided_prompts(), 0u);
  ASSERT_EQ(got.spec().target().prompts_size(), 2);
  EXPECT_EQ(got.spec().target().prompts(1), "two");
}

TEST_F(OrchestratorServiceTest, ProgressSumsAndAllDoneCompletes) {
  FakeWorker& a = AddWorker("a", 10);
  FakeWorker& b = AddWorker("b", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(4, 5, 0), &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  ASSERT_TRUE(b.NextAssign(kWait).has_value());
  a.Update(run.id(), v1::SHARD_RUNNING, 3);
  b.Update(run.id(), v1::SHARD_RUNNING, 4);
  ASSERT_TRUE(Eventually([&] { return GetRun(run.id()).progress().cycles_done() == 7; }, kWait,
                         "progress 7"));
  v1::Run now = GetRun(run.id());
  EXPECT_EQ(now.state(), v1::RUNNING);
  EXPECT_EQ(now.progress().cycles_total(), 20);
  EXPECT_EQ(now.progress().tokens(), 70);
  EXPECT_EQ(now.shards(0).state(), v1::SHARD_RUNNING);

  a.Update(run.id(), v1::SHARD_DONE, 10);
  ASSERT_TRUE(Eventually([&] { return GetRun(run.id()).progress().cycles_done() == 14; }, kWait,
                         "progress 14"));
  EXPECT_EQ(GetRun(run.id()).state(), v1::RUNNING);
  b.Update(run.id(), v1::SHARD_DONE, 10);
  ASSERT_TRUE(RunReaches(run.id(), v1::COMPLETED));
  now = GetRun(run.id());
  EXPECT_EQ(now.progress().cycles_done(), 20);
  EXPECT_TRUE(now.has_finished_at());
  EXPECT_TRUE(now.error().empty());
  EXPECT_TRUE(HasEvent(now, "run COMPLETED"));
  // Both workers are idle again: a new run can start.
  v1::Run second;
  EXPECT_TRUE(StartRun(ClosedSpec(2, 1, 0), &second).ok());
}

TEST_F(OrchestratorServiceTest, ShardFailureFailsTheRunAndStopsTheOthers) {
  FakeWorker& a = AddWorker("a", 10);
  FakeWorker& b = AddWorker("b", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(4, 1, 0), &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  ASSERT_TRUE(b.NextAssign(kWait).has_value());
  a.Update(run.id(), v1::SHARD_FAILED, 0, "target refused");
  ASSERT_TRUE(RunReaches(run.id(), v1::FAILED));
  EXPECT_THAT(GetRun(run.id()).error(), HasSubstr("target refused"));
  EXPECT_FALSE(GetRun(run.id()).passed());  // a failed run never passes
  auto stop = b.NextStop(kWait);
  ASSERT_TRUE(stop.has_value());
  EXPECT_EQ(stop->run_id(), run.id());
}

TEST_F(OrchestratorServiceTest, StopRunCancelsOnceShardsConfirm) {
  FakeWorker& a = AddWorker("a", 10);
  FakeWorker& b = AddWorker("b", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(4, 100, 0), &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  ASSERT_TRUE(b.NextAssign(kWait).has_value());
  a.Update(run.id(), v1::SHARD_RUNNING, 1);
  v1::Run stopped;
  grpc::Status status = StopRun(run.id(), &stopped);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stopped.state(), v1::RUNNING);
  EXPECT_TRUE(HasEvent(stopped, "stop requested"));
  auto stop_a = a.NextStop(kWait);
  auto stop_b = b.NextStop(kWait);
  ASSERT_TRUE(stop_a.has_value());
  ASSERT_TRUE(stop_b.has_value());
  EXPECT_EQ(stop_a->run_id(), run.id());
  a.Update(run.id(), v1::SHARD_CANCELLED, 2);
  b.Update(run.id(), v1::SHARD_DONE, 200);
  ASSERT_TRUE(RunReaches(run.id(), v1::CANCELLED));
  EXPECT_TRUE(GetRun(run.id()).has_finished_at());
  // Stopping again is a precondition failure.
  status = StopRun(run.id(), &stopped);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("already CANCELLED"));
}

TEST_F(OrchestratorServiceTest, StopRunGraceCancelsStragglers) {
  FakeWorker& a = AddWorker("a", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(2, 100, 0), &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  v1::Run stopped;
  ASSERT_TRUE(StopRun(run.id(), &stopped).ok());
  // The worker never confirms: after the grace (500 ms here) it is cancelled.
  ASSERT_TRUE(RunReaches(run.id(), v1::CANCELLED, absl::Seconds(5)));
  const v1::Run now = GetRun(run.id());
  EXPECT_EQ(now.shards(0).state(), v1::SHARD_CANCELLED);
  EXPECT_THAT(now.shards(0).error(), HasSubstr("did not confirm the stop"));
  EXPECT_TRUE(HasEvent(now, "grace"));
}

TEST_F(OrchestratorServiceTest, DisconnectedWorkerIsLostAndItsWorkMoves) {
  StartFakeCollector();
  FakeWorker& a = AddWorker("a", 10);
  FakeWorker& b = AddWorker("b", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(6, 2, 0), &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  const std::optional<v1::ShardAssignment> lost_shard = b.NextAssign(kWait);
  ASSERT_TRUE(lost_shard.has_value());
  ASSERT_EQ(lost_shard->client_begin(), 3);
  // b ran client 3 to the end of cycle 1 and had cycle 2 in flight, client 4
  // had cycle 1 in flight, client 5 never started.
  collector_.SetStarted(3, 2);
  collector_.SetStarted(4, 1);
  b.Update(run.id(), v1::SHARD_RUNNING, 1);
  const absl::Time disconnected = testing_util::MonoNow();
  b.Disconnect();
  // Not lost at once: it may still re-attach.
  ASSERT_TRUE(Eventually([&] { return HasEvent(GetRun(run.id()), "stream closed"); }, kWait,
                         "stream closed event"));
  EXPECT_EQ(GetRun(run.id()).state(), v1::RUNNING);
  // Lost after the timeout: its shard is sealed and what it left moves to a,
  // each client with the cycles it has not started.
  const std::optional<v1::ShardAssignment> moved = a.NextAssign(kWait);
  ASSERT_TRUE(moved.has_value());
  EXPECT_GE(testing_util::MonoNow() - disconnected, absl::Milliseconds(900));
  EXPECT_NE(moved->epoch(), lost_shard->epoch());
  ASSERT_EQ(moved->clients_size(), 2);
  EXPECT_EQ(moved->clients(0).begin(), 4);
  EXPECT_EQ(moved->clients(0).count(), 1);
  EXPECT_EQ(moved->clients(0).cycles(), 1);
  EXPECT_EQ(moved->clients(1).begin(), 5);
  EXPECT_EQ(moved->clients(1).cycles(), 2);
  ASSERT_EQ(collector_.Sealed().size(), 1u);
  EXPECT_EQ(collector_.Sealed()[0].worker_id(), "b");
  v1::Run now = GetRun(run.id());
  EXPECT_EQ(now.state(), v1::RUNNING);
  EXPECT_TRUE(HasEvent(now, "worker b lost"));
  EXPECT_TRUE(HasEvent(now, "moved the work of worker b"));
  ASSERT_EQ(now.losses_size(), 1);
  EXPECT_EQ(now.losses(0).worker_id(), "b");
  EXPECT_EQ(now.losses(0).requests_lost(), 1);
  ASSERT_EQ(now.losses(0).moved_size(), 1);
  EXPECT_THAT(now.losses(0).moved(0), HasSubstr("a: clients 4,5, 3 cycles"));
  // The surviving worker finishes both of its shards: the run completes.
  v1::WorkerMessage done;
  done.mutable_shard_update()->set_run_id(run.id());
  done.mutable_shard_update()->set_state(v1::SHARD_DONE);
  done.mutable_shard_update()->set_epoch(1);
  a.Send(done);
  done.mutable_shard_update()->set_epoch(moved->epoch());
  a.Send(done);
  ASSERT_TRUE(RunReaches(run.id(), v1::COMPLETED));
  now = GetRun(run.id());
  EXPECT_EQ(now.progress().requests_lost(), 1);
}

TEST_F(OrchestratorServiceTest, LostWorkerWithoutCollectorFailsTheRun) {
  FakeWorker& a = AddWorker("a", 10);
  FakeWorker& b = AddWorker("b", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(6, 2, 0), &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  ASSERT_TRUE(b.NextAssign(kWait).has_value());
  b.Disconnect();
  ASSERT_TRUE(RunReaches(run.id(), v1::FAILED));
  const v1::Run now = GetRun(run.id());
  EXPECT_THAT(now.error(), HasSubstr("worker b lost"));
  EXPECT_THAT(now.error(), HasSubstr("no collector is configured"));
  // The surviving worker is told to stop its shard.
  ASSERT_TRUE(a.NextStop(kWait).has_value());
}

TEST_F(OrchestratorServiceTest, FailOnWorkerLossKeepsFailFast) {
  StartFakeCollector();
  FakeWorker& a = AddWorker("a", 10);
  FakeWorker& b = AddWorker("b", 10);
  v1::RunSpec spec = ClosedSpec(6, 2, 0);
  spec.set_fail_on_worker_loss(true);
  v1::Run run;
  ASSERT_TRUE(StartRun(spec, &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  ASSERT_TRUE(b.NextAssign(kWait).has_value());
  b.Disconnect();
  ASSERT_TRUE(RunReaches(run.id(), v1::FAILED));
  const v1::Run now = GetRun(run.id());
  EXPECT_THAT(now.error(), HasSubstr("worker b lost"));
  EXPECT_THAT(now.error(), HasSubstr("failOnWorkerLoss"));
  for (const v1::Shard& shard : now.shards()) {
    EXPECT_EQ(shard.state(), shard.worker_id() == "b" ? v1::SHARD_LOST : v1::SHARD_CANCELLED);
  }
  ASSERT_TRUE(a.NextStop(kWait).has_value());
}

TEST_F(OrchestratorServiceTest, SilentWorkerIsLost) {
  FakeWorker& a = AddWorker("a", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(2, 2, 0), &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  a.StopHeartbeats();  // stream stays open, nothing is sent
  ASSERT_TRUE(RunReaches(run.id(), v1::FAILED));
  EXPECT_TRUE(HasEvent(GetRun(run.id()), "no heartbeat"));
  auto ended = a.WaitEnded(kWait);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(OrchestratorServiceTest, ReattachWithinTimeoutKeepsTheShard) {
  FakeWorker& a = AddWorker("a", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(2, 2, 0), &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  a.Update(run.id(), v1::SHARD_RUNNING, 1);
  a.Disconnect();
  FakeWorker& again = AddWorker("a", 10);
  again.Update(run.id(), v1::SHARD_DONE, 4);
  ASSERT_TRUE(RunReaches(run.id(), v1::COMPLETED));
  EXPECT_TRUE(HasEvent(GetRun(run.id()), "re-attached"));
}

TEST_F(OrchestratorServiceTest, SecondAttachWithSameIdReplacesTheFirst) {
  FakeWorker& first = AddWorker("same", 10);
  FakeWorker& second = AddWorker("same", 20);
  auto ended = first.WaitEnded(kWait);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::ABORTED);
  const v1::ListWorkersResponse list = ListWorkers();
  ASSERT_EQ(list.workers_size(), 1);
  EXPECT_EQ(list.workers(0).capacity(), 20);
  (void)second;
}

TEST_F(OrchestratorServiceTest, BadHelloIsRejected) {
  FakeWorker zero(channel_, "zero", 0);
  zero.Open();
  auto ended = zero.WaitEnded(kWait);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ended->error_message(), StartsWith("hello.capacity"));

  FakeWorker no_id(channel_, "", 5);
  no_id.Open();
  ended = no_id.WaitEnded(kWait);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ListWorkers().workers_size(), 0);
}

TEST_F(OrchestratorServiceTest, ListWorkersShowsHeartbeatsAndRuns) {
  AddWorker("a", 7);
  ASSERT_TRUE(Eventually(
      [&] {
        auto list = ListWorkers();
        return list.workers_size() == 1 && list.workers(0).active_sessions() == 3;
      },
      kWait, "heartbeat"));
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(2, 2, 0), &run).ok());
  const v1::ListWorkersResponse list = ListWorkers();
  ASSERT_EQ(list.workers_size(), 1);
  const v1::Worker& w = list.workers(0);
  EXPECT_EQ(w.id(), "a");
  EXPECT_EQ(w.capacity(), 7);
  EXPECT_EQ(w.threads(), 2);
  EXPECT_DOUBLE_EQ(w.cpu_percent(), 12.5);
  EXPECT_TRUE(w.has_attached_at());
  EXPECT_TRUE(w.has_last_heartbeat());
  ASSERT_EQ(w.run_ids_size(), 1);
  EXPECT_EQ(w.run_ids(0), run.id());
}

TEST_F(OrchestratorServiceTest, MaxWorkersIsHonoured) {
  FakeWorker& a = AddWorker("a", 10);
  FakeWorker& b = AddWorker("b", 30);
  FakeWorker& c = AddWorker("c", 20);
  v1::RunSpec spec = ClosedSpec(10, 1, 0);
  spec.set_max_workers(2);
  v1::Run run;
  ASSERT_TRUE(StartRun(spec, &run).ok());
  ASSERT_EQ(run.shards_size(), 2);
  EXPECT_EQ(run.shards(0).worker_id(), "b");
  EXPECT_EQ(run.shards(1).worker_id(), "c");
  EXPECT_EQ(run.spec().load().closed().max_concurrent(), 10);  // default applied
  EXPECT_TRUE(b.NextAssign(kWait).has_value());
  EXPECT_TRUE(c.NextAssign(kWait).has_value());
  EXPECT_FALSE(a.NextAssign(absl::Milliseconds(200)).has_value());
  // `a` is still idle: a second run goes to it alone.
  v1::Run second;
  ASSERT_TRUE(StartRun(ClosedSpec(3, 1, 0), &second).ok());
  ASSERT_EQ(second.shards_size(), 1);
  EXPECT_EQ(second.shards(0).worker_id(), "a");
}

TEST_F(OrchestratorServiceTest, ErrorsChangeNothing) {
  v1::Run run;
  // Invalid spec.
  v1::RunSpec bad = ClosedSpec(0, 1, 0);
  grpc::Status status = StartRun(bad, &run);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "spec.load.closed.clients: must be between 1 and 1000000, got 0");
  // Not implemented yet: TLS for the Centrifugo flow.
  v1::RunSpec tls = ClosedSpec(1, 1, 0);
  tls.mutable_target()->set_url("https://127.0.0.1:8443");
  status = StartRun(tls, &run);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(status.error_message(),
            "spec.target.url: TLS is not supported for CENTRIFUGO_EMULATOR targets yet");
  // No workers.
  status = StartRun(ClosedSpec(1, 1, 0), &run);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), StartsWith("no idle workers attached"));
  EXPECT_EQ(ListRuns().runs_size(), 0);

  // Unknown ids.
  grpc::Status get_status;
  GetRun("run-doesnotexist", &get_status);
  EXPECT_EQ(get_status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(StopRun("run-doesnotexist", &run).error_code(), grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext ctx;
    v1::WatchRunRequest request;
    request.set_id("run-doesnotexist");
    auto reader = stub_->WatchRun(&ctx, request);
    v1::RunUpdate update;
    EXPECT_FALSE(reader->Read(&update));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }

  // All workers busy.
  AddWorker("a", 10);
  ASSERT_TRUE(StartRun(ClosedSpec(1, 1, 0), &run).ok());
  v1::Run other;
  status = StartRun(ClosedSpec(1, 1, 0), &other);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("all busy"));
  EXPECT_EQ(ListRuns().runs_size(), 1);
}

TEST_F(OrchestratorServiceTest, WatchRunUpdatesAtLeastOncePerSecondUntilTerminal) {
  FakeWorker& a = AddWorker("a", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(2, 3, 0), &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());

  grpc::ClientContext ctx;
  ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
  v1::WatchRunRequest request;
  request.set_id(run.id());
  auto reader = stub_->WatchRun(&ctx, request);

  std::thread driver([&] {
    absl::SleepFor(absl::Milliseconds(1500));  // a quiet stretch: periodic updates only
    a.Update(run.id(), v1::SHARD_RUNNING, 2);
    absl::SleepFor(absl::Milliseconds(1200));
    a.Update(run.id(), v1::SHARD_DONE, 6);
  });
  std::vector<absl::Time> times;
  std::vector<v1::Run> updates;
  v1::RunUpdate update;
  while (reader->Read(&update)) {
    times.push_back(testing_util::MonoNow());
    updates.push_back(update.run());
  }
  grpc::Status status = reader->Finish();
  driver.join();
  EXPECT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(updates.size(), 4u);
  EXPECT_EQ(updates.front().id(), run.id());
  EXPECT_EQ(updates.back().state(), v1::COMPLETED);
  EXPECT_EQ(updates.back().progress().cycles_done(), 6);
  for (size_t i = 1; i < times.size(); ++i) {
    EXPECT_LE(times[i] - times[i - 1], absl::Seconds(1)) << "gap before update " << i;
  }
  bool saw_progress = std::any_of(updates.begin(), updates.end(), [](const v1::Run& r) {
    return r.state() == v1::RUNNING && r.progress().cycles_done() == 2;
  });
  EXPECT_TRUE(saw_progress);

  // Watching a finished run sends it once and ends.
  grpc::ClientContext ctx2;
  auto reader2 = stub_->WatchRun(&ctx2, request);
  int count = 0;
  while (reader2->Read(&update)) {
    ++count;
    EXPECT_EQ(update.run().state(), v1::COMPLETED);
  }
  EXPECT_TRUE(reader2->Finish().ok());
  EXPECT_EQ(count, 1);
}

TEST_F(OrchestratorServiceTest, ListRunsNewestFirstAndSurvivesRestart) {
  FakeWorker& a = AddWorker("a", 10);
  v1::Run first;
  ASSERT_TRUE(StartRun(ClosedSpec(1, 1, 0), &first).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  a.Update(first.id(), v1::SHARD_DONE, 1);
  ASSERT_TRUE(RunReaches(first.id(), v1::COMPLETED));
  v1::Run second;
  ASSERT_TRUE(StartRun(ClosedSpec(1, 1, 0), &second).ok());  // left RUNNING

  v1::ListRunsResponse list = ListRuns();
  ASSERT_EQ(list.runs_size(), 2);
  EXPECT_EQ(list.runs(0).id(), second.id());
  EXPECT_EQ(list.runs(1).id(), first.id());
  EXPECT_EQ(ListRuns(1).runs_size(), 1);

  RestartServer();
  list = ListRuns();
  ASSERT_EQ(list.runs_size(), 2);
  EXPECT_EQ(list.runs(0).id(), second.id());
  // A run in progress goes on; its worker did not come back within the
  // grace (1 s here), and without a collector its work cannot move.
  EXPECT_EQ(list.runs(0).state(), v1::RUNNING);
  EXPECT_TRUE(HasEvent(list.runs(0), "orchestrator restarted; the run goes on"));
  ASSERT_TRUE(RunReaches(second.id(), v1::FAILED));
  EXPECT_THAT(GetRun(second.id()).error(), HasSubstr("did not re-attach"));
  list = ListRuns();
  EXPECT_EQ(list.runs(1).id(), first.id());
  EXPECT_EQ(list.runs(1).state(), v1::COMPLETED);
  EXPECT_EQ(list.runs(1).progress().cycles_done(), 1);
  EXPECT_TRUE(HasEvent(list.runs(1), "run started on 1 worker"));
  EXPECT_FALSE(list.runs(1).has_stats());
  // GetRun works on a stored run too.
  EXPECT_EQ(GetRun(first.id()).state(), v1::COMPLETED);
}

TEST_F(OrchestratorServiceTest, GetRunFillsStatsFromTheCollector) {
  StartFakeCollector();

  AddWorker("a", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(1, 1, 0), &run).ok());
  const v1::Run got = GetRun(run.id());
  EXPECT_EQ(got.stats().run_id(), run.id());
  EXPECT_EQ(got.stats().batches(), 3u);
  EXPECT_TRUE(got.stats().complete());  // asked per_worker
  // ListRuns never carries stats.
  EXPECT_FALSE(ListRuns().runs(0).has_stats());
}

TEST_F(OrchestratorServiceTest, GetRunSucceedsWhenTheCollectorIsDown) {
  server_->Shutdown(absl::Seconds(1));
  server_.reset();
  StartServer("127.0.0.1:1");  // nothing listens on port 1
  AddWorker("a", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(1, 1, 0), &run).ok());
  const absl::Time start = testing_util::MonoNow();
  const v1::Run got = GetRun(run.id());
  EXPECT_LT(testing_util::MonoNow() - start, absl::Seconds(3));
  EXPECT_EQ(got.id(), run.id());
  EXPECT_FALSE(got.has_stats());
}

TEST_F(OrchestratorServiceTest, UpdatesForUnknownRunsGetAStop) {
  FakeWorker& a = AddWorker("a", 10);
  a.Update("run-from-before", v1::SHARD_RUNNING, 5);
  auto stop = a.NextStop(kWait);
  ASSERT_TRUE(stop.has_value());
  EXPECT_EQ(stop->run_id(), "run-from-before");
}

TEST_F(OrchestratorServiceTest, ShutdownEndsWorkerStreams) {
  FakeWorker& a = AddWorker("a", 10);
  const absl::Time start = testing_util::MonoNow();
  server_->Shutdown(absl::Seconds(5));
  EXPECT_LT(testing_util::MonoNow() - start, absl::Seconds(3));
  auto ended = a.WaitEnded(kWait);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::UNAVAILABLE);
}

v1::RunSpec OpenSpec(double rate, int32_t max_in_flight) {
  v1::RunSpec spec = ClosedSpec(1, 1, 0);
  v1::OpenLoad* open = spec.mutable_load()->mutable_open();
  open->set_rate_per_second(rate);
  open->set_max_in_flight(max_in_flight);
  open->mutable_duration()->set_seconds(30);
  return spec;
}

TEST_F(OrchestratorServiceTest, OpenRunSplitsRateAndInFlightByCapacity) {
  FakeWorker& a = AddWorker("a", 10);
  FakeWorker& b = AddWorker("b", 30);
  v1::Run run;
  ASSERT_TRUE(StartRun(OpenSpec(100, 40), &run).ok());
  auto qa = a.NextAssign(kWait);
  auto qb = b.NextAssign(kWait);
  ASSERT_TRUE(qa.has_value());
  ASSERT_TRUE(qb.has_value());
  EXPECT_DOUBLE_EQ(qa->rate_per_second(), 25);
  EXPECT_DOUBLE_EQ(qb->rate_per_second(), 75);
  EXPECT_DOUBLE_EQ(qa->rate_share() + qb->rate_share(), 1.0);
  EXPECT_EQ(qa->max_concurrent(), 10);
  EXPECT_EQ(qb->max_concurrent(), 30);
  EXPECT_EQ(qa->client_begin() + qa->client_count(), qb->client_begin());
  EXPECT_EQ(qa->spec().load().open().distribution(), v1::POISSON);  // default made explicit
  EXPECT_TRUE(HasEvent(GetRun(run.id()), "run created: open: 100.00 req/s (poisson)"));
}

TEST_F(OrchestratorServiceTest, SecondRunOnBusyWorkersIsRefusedAndLateWorkerDoesNotDisturb) {
  FakeWorker& a = AddWorker("a", 10);
  v1::Run run;
  v1::RunSpec spec = ClosedSpec(4, 2, 0);
  spec.mutable_load()->clear_closed();
  spec.mutable_load()->mutable_duration()->set_connections(4);
  spec.mutable_load()->mutable_duration()->mutable_duration()->set_seconds(30);
  ASSERT_TRUE(StartRun(spec, &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  v1::Run second;
  grpc::Status status = StartRun(ClosedSpec(1, 1, 0), &second);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("all busy with other runs: " + run.id()));
  EXPECT_THAT(status.error_message(), HasSubstr("runs do not share workers"));
  // A worker attaching now gets nothing of the running run.
  FakeWorker& late = AddWorker("late", 100);
  EXPECT_FALSE(late.NextAssign(absl::Milliseconds(300)).has_value());
  const v1::Run now = GetRun(run.id());
  ASSERT_EQ(now.shards_size(), 1);
  EXPECT_EQ(now.shards(0).worker_id(), "a");
  EXPECT_EQ(now.state(), v1::RUNNING);
  // ...but serves the next run.
  EXPECT_TRUE(StartRun(ClosedSpec(1, 1, 0), &second).ok());
  EXPECT_TRUE(late.NextAssign(kWait).has_value());
}

TEST_F(OrchestratorServiceTest, VerdictIsSetWhenTheRunEnds) {
  FakeWorker& a = AddWorker("a", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(1, 1, 0), &run).ok());
  EXPECT_FALSE(run.has_passed());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  a.Update(run.id(), v1::SHARD_DONE, 1);
  ASSERT_TRUE(RunReaches(run.id(), v1::COMPLETED));
  v1::Run done = GetRun(run.id());
  ASSERT_TRUE(done.has_passed());
  EXPECT_TRUE(done.passed());  // no thresholds
  EXPECT_EQ(done.threshold_results_size(), 0);

  // With a threshold and no statistics to judge it, the run does not pass.
  v1::RunSpec spec = ClosedSpec(1, 1, 0);
  v1::Threshold* t = spec.add_thresholds();
  t->set_metric("ttft");
  t->set_percentile(95);
  t->mutable_below()->set_seconds(1);
  ASSERT_TRUE(StartRun(spec, &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  a.Update(run.id(), v1::SHARD_DONE, 1);
  ASSERT_TRUE(RunReaches(run.id(), v1::COMPLETED));
  done = GetRun(run.id());
  ASSERT_TRUE(done.has_passed());
  EXPECT_FALSE(done.passed());
  ASSERT_EQ(done.threshold_results_size(), 1);
  EXPECT_FALSE(done.threshold_results(0).passed());
  EXPECT_TRUE(HasEvent(done, "thresholds failed"));
}

TEST_F(OrchestratorServiceTest, RunThatCannotBeStoredIsRefusedAndNothingIsDispatched) {
  FakeWorker& a = AddWorker("a", 10);
  BreakStore("INSERT");
  v1::Run run;
  grpc::Status status = StartRun(ClosedSpec(2, 1, 0), &run);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("could not be stored"));
  EXPECT_THAT(status.error_message(), HasSubstr("injected: disk I/O error"));
  EXPECT_THAT(status.error_message(), HasSubstr("no worker was given any of it"));
  EXPECT_EQ(ListRuns().runs_size(), 0);

  // Nothing changed: once the store works again, the same worker takes the
  // next run, and that run's assignment is the first it ever receives.
  HealStore("INSERT");
  v1::Run second;
  status = StartRun(ClosedSpec(2, 1, 0), &second);
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto assign = a.NextAssign(kWait);
  ASSERT_TRUE(assign.has_value());
  EXPECT_EQ(assign->run_id(), second.id());
  EXPECT_EQ(ListRuns().runs_size(), 1);
}

TEST_F(OrchestratorServiceTest, ALaterStoreFailureIsRecordedAndTheRunGoesOn) {
  FakeWorker& a = AddWorker("a", 10);
  BreakStore("UPDATE");  // the new run is inserted; every later write of it fails
  v1::Run run;
  grpc::Status status = StartRun(ClosedSpec(1, 1, 0), &run);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  ASSERT_TRUE(Eventually([&] { return HasEvent(GetRun(run.id()), "could not store the run"); },
                         kWait, "the store failure event"));
  EXPECT_TRUE(HasEvent(GetRun(run.id()), "injected: disk I/O error"));
  a.Update(run.id(), v1::SHARD_DONE, 1);
  ASSERT_TRUE(RunReaches(run.id(), v1::COMPLETED));
}

TEST_F(OrchestratorServiceTest, BatchesTheCollectorRejectedAreReported) {
  FakeWorker& a = AddWorker("a", 10);
  FakeWorker& b = AddWorker("b", 10);
  v1::Run run;
  ASSERT_TRUE(StartRun(ClosedSpec(4, 1, 0), &run).ok());
  ASSERT_TRUE(a.NextAssign(kWait).has_value());
  ASSERT_TRUE(b.NextAssign(kWait).has_value());
  const std::string reason = "interval_end_us is before interval_start_us";
  auto report = [&](FakeWorker& w, v1::ShardState state, int64_t rejected) {
    v1::WorkerMessage m;
    v1::ShardUpdate* u = m.mutable_shard_update();
    u->set_run_id(run.id());
    u->set_state(state);
    v1::ShardProgress* p = u->mutable_progress();
    p->set_cycles_done(2);
    p->set_requests_ok(2);
    p->set_batches_rejected(rejected);
    p->set_requests_rejected(3 * rejected);
    p->set_samples_rejected(40 * rejected);
    p->set_rejection_reason(reason);
    return w.Send(m);
  };
  auto events_with = [](const v1::Run& r, const std::string& needle) {
    return std::count_if(r.events().begin(), r.events().end(), [&](const v1::RunEvent& e) {
      return absl::StrContains(e.message(), needle);
    });
  };

  // The first rejection is said at once...
  ASSERT_TRUE(report(a, v1::SHARD_RUNNING, 1));
  ASSERT_TRUE(Eventually(
      [&] {
        return HasEvent(GetRun(run.id()),
                        "collector rejected 1 batch (3 requests, 40 latency samples) from "
                        "worker a: " + reason);
      },
      kWait, "the rejection event"));
  EXPECT_EQ(GetRun(run.id()).progress().batches_rejected(), 1);
  // ...later ones while the shard runs only in its progress, and the total
  // again when it ends.
  ASSERT_TRUE(report(a, v1::SHARD_RUNNING, 2));
  ASSERT_TRUE(report(a, v1::SHARD_DONE, 3));
  ASSERT_TRUE(b.Update(run.id(), v1::SHARD_DONE, 2));
  ASSERT_TRUE(RunReaches(run.id(), v1::COMPLETED));
  const v1::Run done = GetRun(run.id());
  EXPECT_EQ(events_with(done, "collector rejected"), 2) << done.DebugString();
  EXPECT_TRUE(HasEvent(done, "collector rejected 3 batches (9 requests, 120 latency samples) from "
                             "worker a: " + reason));
  EXPECT_EQ(done.progress().batches_rejected(), 3);
  EXPECT_EQ(done.progress().requests_rejected(), 9);
  EXPECT_EQ(done.progress().samples_rejected(), 120);
  EXPECT_EQ(done.progress().rejection_reason(), "a: " + reason);
  const v1::Shard& shard_a = done.shards(0).worker_id() == "a" ? done.shards(0) : done.shards(1);
  EXPECT_EQ(shard_a.progress().rejection_reason(), reason);
  EXPECT_THAT(std::vector<std::string>(done.warnings().begin(), done.warnings().end()),
              ::testing::Contains(HasSubstr(
                  "the collector rejected 3 sample batches (9 requests, 120 latency samples)")));
  EXPECT_THAT(std::vector<std::string>(done.warnings().begin(), done.warnings().end()),
              ::testing::Contains(HasSubstr("a: " + reason)));
}

// The lost-worker events say what became of the worker's process when the
// hello placed it on this host; integration_orchestrator_test kills a real
// worker for the "has exited" case.
class LostWorkerProcessTest : public OrchestratorServiceTest {
 protected:
  // Starts a run on a worker whose hello names `pid` on `host`, drops its
  // stream and returns the run once the worker is declared lost.
  v1::Run RunAndLoseWorker(int32_t pid, uint64_t start_ticks, const std::string& host) {
    workers_.push_back(std::make_unique<FakeWorker>(channel_, "w1", 10));
    FakeWorker& w = *workers_.back();
    w.SetProcess(pid, start_ticks, host);
    EXPECT_TRUE(w.Attach());
    v1::Run run;
    EXPECT_TRUE(StartRun(ClosedSpec(2, 2, 0), &run).ok());
    EXPECT_TRUE(w.NextAssign(kWait).has_value());
    w.Disconnect();
    EXPECT_TRUE(RunReaches(run.id(), v1::FAILED));
    return GetRun(run.id());
  }

  static std::string EventWith(const v1::Run& run, const std::string& needle) {
    for (const v1::RunEvent& e : run.events()) {
      if (absl::StrContains(e.message(), needle)) {
        return e.message();
      }
    }
    return "";
  }
};

TEST_F(LostWorkerProcessTest, ProcessStillRunningIsSaid) {
  const ProcessIdentity self = SelfIdentity();  // this test process: alive
  ASSERT_FALSE(self.host.empty());
  const v1::Run run = RunAndLoseWorker(self.pid, self.start_ticks, self.host);
  const std::string running = absl::StrCat("process ", self.pid, " is still running");
  EXPECT_THAT(EventWith(run, "worker w1 stream closed"), HasSubstr(running));
  EXPECT_THAT(EventWith(run, "worker w1 lost"), HasSubstr(running));
  EXPECT_THAT(run.error(), HasSubstr(running));
}

TEST_F(LostWorkerProcessTest, ProcessThatExitedIsSaid) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);  // reaped: the pid is free
  const absl::Time start = testing_util::MonoNow();
  const v1::Run run = RunAndLoseWorker(child, 0, HostIdentity());
  const std::string exited = absl::StrCat("process ", child, " has exited");
  // An exited process cannot re-attach: lost at once, not after the timeout.
  EXPECT_THAT(EventWith(run, "worker w1 lost"), HasSubstr("stream closed"));
  EXPECT_THAT(EventWith(run, "worker w1 lost"), HasSubstr(exited));
  EXPECT_LT(testing_util::MonoNow() - start, absl::Milliseconds(900));
}

TEST_F(LostWorkerProcessTest, ReusedPidCountsAsExited) {
  ProcessIdentity self = SelfIdentity();
  // Our pid, but a start time that is not ours: an earlier process that had
  // this pid, now gone.
  const v1::Run run = RunAndLoseWorker(self.pid, self.start_ticks + 1, self.host);
  EXPECT_THAT(EventWith(run, "worker w1 lost"),
              HasSubstr(absl::StrCat("process ", self.pid, " has exited")));
}

TEST_F(LostWorkerProcessTest, NothingIsClaimedForAnotherHost) {
  const ProcessIdentity self = SelfIdentity();
  for (const std::string& host : {std::string("elsewhere 0000 pid:[1]"), std::string()}) {
    const v1::Run run = RunAndLoseWorker(self.pid, self.start_ticks, host);
    EXPECT_NE(EventWith(run, "worker w1 stream closed"), "");
    EXPECT_EQ(EventWith(run, "process"), "") << "host \"" << host << "\"";
    workers_.clear();
  }
}

}  // namespace
}  // namespace llmload::orchestrator
