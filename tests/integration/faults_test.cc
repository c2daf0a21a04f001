// Faults end to end: the real emulator, collector, orchestrator and three
// workers on loopback ports, faults injected by signal. A lost worker's
// unfinished work moves to the others and the run still completes with
// exact totals: offered = ok + failed + lost + dropped + unfinished, and in
// the closed model every client's cycles ran exactly once or were counted
// lost (offered = clients x cycles).
//
// Each test prints one "FAULT-REPORT" line with what it measured (detection
// and reassignment times, totals), for the report.

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <memory>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/common/grpc_util.h"
#include "tests/testing/mono_clock.h"
#include "tests/testing/process.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

using testing_util::MonoNow;
using testing_util::WaitUntil;

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

struct Totals {
  uint64_t offered = 0, ok = 0, failed = 0, lost = 0, dropped = 0, unfinished = 0;
  std::string ToString() const {
    return absl::StrCat("offered=", offered, " ok=", ok, " failed=", failed, " lost=", lost,
                        " dropped=", dropped, " unfinished=", unfinished);
  }
};

class FaultsTest : public testing_util::StackTest {
 protected:
  void SetUp() override {}

  void Start(int workers = 3, std::vector<std::string> worker_env = {}) {
    testing_util::StackOptions options;
    options.workers = workers;
    options.worker_env = std::move(worker_env);
    StartStack(options);
  }

  v1::RunSpec BaseSpec() {
    v1::RunSpec spec;
    spec.set_name("faults-test");
    spec.mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
    spec.mutable_target()->set_url(EmulatorUrl());
    spec.mutable_emulation()->set_length_words(5);
    ToProtoDuration(absl::Milliseconds(20), spec.mutable_emulation()->mutable_token_delay());
    return spec;
  }
  v1::RunSpec ClosedSpec(int clients, int cycles) {
    v1::RunSpec spec = BaseSpec();
    v1::ClosedLoad* c = spec.mutable_load()->mutable_closed();
    c->set_clients(clients);
    c->set_cycles_per_client(cycles);
    c->set_max_concurrent(clients);
    return spec;
  }
  v1::RunSpec DurationSpec(int connections, absl::Duration d) {
    v1::RunSpec spec = BaseSpec();
    spec.mutable_load()->mutable_duration()->set_connections(connections);
    ToProtoDuration(d, spec.mutable_load()->mutable_duration()->mutable_duration());
    return spec;
  }
  v1::RunSpec OpenSpec(double rate, int max_in_flight, absl::Duration d) {
    v1::RunSpec spec = BaseSpec();
    v1::OpenLoad* o = spec.mutable_load()->mutable_open();
    o->set_rate_per_second(rate);
    o->set_max_in_flight(max_in_flight);
    o->set_distribution(v1::UNIFORM);
    ToProtoDuration(d, o->mutable_duration());
    return spec;
  }

  v1::Run Get(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(5)));
    v1::GetRunRequest req;
    req.set_id(id);
    v1::Run run;
    (void)stub_->GetRun(&ctx, req, &run);
    return run;
  }

  // Waits until the run has done `requests` requests (ok or failed).
  ::testing::AssertionResult WaitForRequests(const std::string& id, int64_t requests) {
    return WaitUntil(
        [&] {
          const v1::Run run = Get(id);
          return run.progress().requests_ok() + run.progress().requests_failed() >= requests;
        },
        absl::Seconds(20), absl::StrCat(requests, " requests"), absl::Milliseconds(50));
  }

  // The index of a worker that runs a shard of the run.
  int WorkerWithShard(const v1::Run& run) {
    for (const v1::Shard& s : run.shards()) {
      if (s.state() == v1::SHARD_RUNNING || s.state() == v1::SHARD_ASSIGNED) {
        return std::stoi(s.worker_id().substr(std::string("worker-").size()));
      }
    }
    return 1;
  }

  // Polls until the run records a loss; returns how long that took.
  absl::Duration WaitForLoss(const std::string& id, absl::Time since) {
    EXPECT_TRUE(WaitUntil([&] { return Get(id).losses_size() > 0; }, absl::Seconds(20),
                          "the loss to be recorded", absl::Milliseconds(20)));
    return MonoNow() - since;
  }

  static Totals TotalsOf(const v1::RunStats& s) {
    Totals t;
    t.offered = CounterOf(s, v1::OFFERED);
    t.ok = CounterOf(s, v1::REQUESTS_OK);
    for (v1::Counter c : metrics::AllCounters()) {
      if (metrics::IsRequestFailureCounter(c)) {
        t.failed += CounterOf(s, c);
      }
    }
    t.lost = CounterOf(s, v1::LOST);
    t.dropped = CounterOf(s, v1::DROPPED);
    t.unfinished = CounterOf(s, v1::UNFINISHED);
    return t;
  }

  // The run ended COMPLETED and its totals add up exactly.
  Totals ExpectExact(const v1::Run& run) {
    EXPECT_EQ(run.state(), v1::COMPLETED) << run.error();
    const Totals t = TotalsOf(run.stats());
    EXPECT_GT(t.offered, 0u);
    EXPECT_EQ(t.offered, t.ok + t.failed + t.lost + t.dropped + t.unfinished) << t.ToString();
    EXPECT_TRUE(run.stats().complete());
    return t;
  }

  // The loss record names the worker, the time and the missing window, and
  // says where the work went.
  void ExpectLossStated(const v1::Run& run, const std::string& worker, bool drained) {
    ASSERT_GE(run.losses_size(), 1);
    const v1::WorkerLoss& loss = run.losses(0);
    EXPECT_EQ(loss.worker_id(), worker);
    EXPECT_EQ(loss.drained(), drained);
    EXPECT_TRUE(loss.has_detected_at());
    EXPECT_TRUE(loss.has_last_heard());
    EXPECT_GT(loss.missing_from_us(), 0);
    EXPECT_GE(loss.missing_to_us(), loss.missing_from_us());
    bool event = false;
    for (const v1::RunEvent& e : run.events()) {
      event = event || e.message().find(absl::StrCat("sealed epoch ", loss.epoch(), " of worker ",
                                                     worker)) != std::string::npos;
    }
    EXPECT_TRUE(event) << "no seal event";
  }

  static double ReassignSeconds(const v1::WorkerLoss& loss) {
    if (!loss.has_moved_at()) {
      return -1;
    }
    return absl::ToDoubleSeconds(ToTime(loss.moved_at()) - ToTime(loss.detected_at()));
  }

  void Report(const std::string& test, const v1::Run& run, absl::Duration detection,
              const Totals& t) {
    const double reassign = run.losses_size() > 0 ? ReassignSeconds(run.losses(0)) : -1;
    std::printf("FAULT-REPORT %s detection=%.3fs reassign=%.3fs lost_workers=%d %s\n",
                test.c_str(), absl::ToDoubleSeconds(detection), reassign, run.losses_size(),
                t.ToString().c_str());
    std::fflush(stdout);
  }
};

TEST_F(FaultsTest, ClosedModelWorkerKilledMidRun) {
  Start();
  constexpr int kClients = 12;
  constexpr int kCycles = 30;
  const v1::Run started = StartRun(ClosedSpec(kClients, kCycles));
  ASSERT_EQ(started.shards_size(), 3);
  ASSERT_TRUE(WaitForRequests(started.id(), 60));
  const int victim = WorkerWithShard(Get(started.id()));
  const absl::Time killed = MonoNow();
  workers_[static_cast<size_t>(victim)]->Kill();
  const absl::Duration detection = WaitForLoss(started.id(), killed);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(40));
  const Totals t = ExpectExact(run);
  ExpectLossStated(run, absl::StrCat("worker-", victim), false);
  // Every client's cycles ran exactly once or were counted lost.
  EXPECT_EQ(t.offered, static_cast<uint64_t>(kClients) * kCycles);
  EXPECT_EQ(t.dropped, 0u);
  EXPECT_GE(run.losses(0).moved_size(), 1);
  Report("closed-sigkill", run, detection, t);
}

TEST_F(FaultsTest, DurationModelWorkerKilledMidRun) {
  Start();
  const v1::Run started = StartRun(DurationSpec(9, absl::Seconds(6)));
  ASSERT_TRUE(WaitForRequests(started.id(), 40));
  const int victim = WorkerWithShard(Get(started.id()));
  const absl::Time killed = MonoNow();
  workers_[static_cast<size_t>(victim)]->Kill();
  const absl::Duration detection = WaitForLoss(started.id(), killed);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(40));
  const Totals t = ExpectExact(run);
  ExpectLossStated(run, absl::StrCat("worker-", victim), false);
  // Its connections went on elsewhere for the rest of the load.
  ASSERT_GE(run.losses(0).moved_size(), 1);
  EXPECT_NE(run.losses(0).moved(0).find("for the remaining"), std::string::npos);
  Report("duration-sigkill", run, detection, t);
}

TEST_F(FaultsTest, OpenModelWorkerKilledMidRun) {
  Start();
  const v1::Run started = StartRun(OpenSpec(45, 60, absl::Seconds(6)));
  ASSERT_TRUE(WaitForRequests(started.id(), 40));
  const int victim = WorkerWithShard(Get(started.id()));
  const absl::Time killed = MonoNow();
  workers_[static_cast<size_t>(victim)]->Kill();
  const absl::Duration detection = WaitForLoss(started.id(), killed);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(40));
  const Totals t = ExpectExact(run);
  ExpectLossStated(run, absl::StrCat("worker-", victim), false);
  ASSERT_GE(run.losses(0).moved_size(), 1);
  EXPECT_NE(run.losses(0).moved(0).find("req/s"), std::string::npos);
  // Roughly the whole rate was offered: 45/s for 6 s, less the arrivals the
  // lost share did not make between the kill and the move.
  EXPECT_GT(t.offered, 200u);
  Report("open-sigkill", run, detection, t);
}

TEST_F(FaultsTest, HungWorkerIsLostThenFencedWhenItResumes) {
  Start();
  constexpr int kClients = 12;
  constexpr int kCycles = 30;
  const v1::Run started = StartRun(ClosedSpec(kClients, kCycles));
  ASSERT_TRUE(WaitForRequests(started.id(), 60));
  const int victim = WorkerWithShard(Get(started.id()));
  const absl::Time stopped = MonoNow();
  workers_[static_cast<size_t>(victim)]->Signal(SIGSTOP);
  const absl::Duration detection = WaitForLoss(started.id(), stopped);
  // The default heartbeat timeout is 3 s.
  EXPECT_GE(detection, absl::Milliseconds(2500));
  EXPECT_LE(detection, absl::Seconds(5));
  ASSERT_TRUE(WaitUntil([&] { return Get(started.id()).losses(0).moved_size() > 0; },
                        absl::Seconds(10), "the lost work to move"));
  // SIGCONT: the worker comes back; its old shard is fenced and its late
  // batches are refused.
  workers_[static_cast<size_t>(victim)]->Signal(SIGCONT);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(40));
  const Totals t = ExpectExact(run);
  ExpectLossStated(run, absl::StrCat("worker-", victim), false);
  EXPECT_EQ(t.offered, static_cast<uint64_t>(kClients) * kCycles);
  // It came back and was told (or found) its shard fenced.
  EXPECT_TRUE(WaitUntil(
      [&] {
        return workers_[static_cast<size_t>(victim)]->ReadLog().find("fenced") !=
               std::string::npos;
      },
      absl::Seconds(10), "the resumed worker to see its shard fenced"));
  Report("closed-sigstop", run, detection, t);
}

// SIGTERM (what Kubernetes sends on every pod deletion): the worker drains.
// Its requests in flight finish (none is lost), its last batches are acked,
// and its unfinished work moves at once instead of after the heartbeat
// timeout; it exits 0.
TEST_F(FaultsTest, TerminatedWorkerDrainsAndItsWorkMovesAtOnce) {
  Start();
  constexpr int kClients = 12;
  constexpr int kCycles = 30;
  const v1::Run started = StartRun(ClosedSpec(kClients, kCycles));
  ASSERT_TRUE(WaitForRequests(started.id(), 60));
  const int victim = WorkerWithShard(Get(started.id()));
  const absl::Time term = MonoNow();
  workers_[static_cast<size_t>(victim)]->Signal(SIGTERM);
  ASSERT_TRUE(WaitUntil(
      [&] {
        const v1::Run r = Get(started.id());
        return r.losses_size() > 0 && r.losses(0).moved_size() > 0;
      },
      absl::Seconds(10), "the drained work to move", absl::Milliseconds(20)));
  const absl::Duration moved_after = MonoNow() - term;
  EXPECT_LT(moved_after, absl::Seconds(2)) << "moved after " << moved_after;
  EXPECT_EQ(workers_[static_cast<size_t>(victim)]->Wait(absl::Seconds(15)), 0);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(40));
  const Totals t = ExpectExact(run);
  ExpectLossStated(run, absl::StrCat("worker-", victim), true);
  EXPECT_EQ(t.lost, 0u) << "a drained worker loses no request";
  EXPECT_EQ(t.unfinished, 0u) << "its requests in flight finished";
  EXPECT_EQ(t.offered, static_cast<uint64_t>(kClients) * kCycles);
  EXPECT_EQ(run.losses(0).missing_to_us(), run.losses(0).missing_from_us());
  Report("closed-sigterm", run, moved_after, t);

  // The orchestrator and the collector drain on SIGTERM too: they exit 0
  // and close their databases cleanly (no write-ahead log left behind).
  for (auto* p : {&orchestrator_, &collector_}) {
    const int status = (*p)->Stop(absl::Seconds(10));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << (*p)->name() << " " << status;
    p->reset();
  }
  for (const char* db : {"/orchestrator.db", "/collector.db"}) {
    EXPECT_TRUE(std::filesystem::exists(dir_ + db)) << db;
    EXPECT_FALSE(std::filesystem::exists(dir_ + db + "-wal")) << db << " was not closed cleanly";
  }
}

// The orchestrator SIGKILLed mid-run and started again on the same
// database: the run goes on. Workers re-attach and report their shards (by
// epoch), and a `llmload watch` that was following the run reconnects and
// prints the report at the end.
TEST_F(FaultsTest, OrchestratorKilledMidRunAndRestartedTheRunGoesOn) {
  Start();
  constexpr int kClients = 12;
  constexpr int kCycles = 40;
  const v1::Run started = StartRun(ClosedSpec(kClients, kCycles));
  std::unique_ptr<testing_util::ChildProcess> watch = testing_util::ChildProcess::Start(
      testing_util::BinPath("llmload"),
      {"watch", started.id(), "--orchestrator", absl::StrCat("127.0.0.1:", orchestrator_port_)},
      dir_ + "/watch.log", dir_);
  ASSERT_TRUE(WaitForRequests(started.id(), 80));
  const absl::Time killed = MonoNow();
  orchestrator_->Kill();
  StartOrchestrator();
  const absl::Duration down = MonoNow() - killed;
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(40));
  const Totals t = ExpectExact(run);
  EXPECT_EQ(t.offered, static_cast<uint64_t>(kClients) * kCycles);
  EXPECT_EQ(run.losses_size(), 0) << "every worker re-attached with its shards";
  bool restarted = false;
  for (const v1::RunEvent& e : run.events()) {
    restarted = restarted ||
                e.message().find("orchestrator restarted; the run goes on") != std::string::npos;
  }
  EXPECT_TRUE(restarted);
  EXPECT_EQ(watch->Wait(absl::Seconds(20)), 0) << watch->ReadLog();
  const std::string watched = watch->ReadLog();
  EXPECT_NE(watched.find("watching again"), std::string::npos) << watched;
  EXPECT_NE(watched.find("Test completed."), std::string::npos) << watched;
  Report("orchestrator-sigkill", run, down, t);
}

// The collector SIGKILLed and restarted mid-run: workers keep their unacked
// batches, reconnect (spread out in time by full jitter) and resend them;
// nothing acked is lost, nothing counts twice.
TEST_F(FaultsTest, CollectorKilledMidRunAndRestartedTotalsStayExact) {
  Start();
  constexpr int kClients = 12;
  constexpr int kCycles = 40;
  const v1::Run started = StartRun(ClosedSpec(kClients, kCycles));
  ASSERT_TRUE(WaitForRequests(started.id(), 80));
  const absl::Time killed = MonoNow();
  collector_->Kill();
  // Down long enough for every worker to fail a few reconnects.
  ASSERT_TRUE(WaitUntil(
      [&] {
        int failing = 0;
        for (auto& w : workers_) {
          const std::string log = w->ReadLog();
          failing += log.find("Reconnecting to the collector.") != std::string::npos ? 1 : 0;
        }
        return failing == static_cast<int>(workers_.size());
      },
      absl::Seconds(10), "every worker to notice the collector is gone"));
  StartCollector();
  const absl::Duration down = MonoNow() - killed;
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(40));
  const Totals t = ExpectExact(run);
  EXPECT_EQ(t.offered, static_cast<uint64_t>(kClients) * kCycles);
  EXPECT_EQ(run.losses_size(), 0);
  // The workers chose their reconnect delays independently (full jitter):
  // no two picked the same sequence of delays.
  std::vector<std::string> delays;
  for (auto& w : workers_) {
    std::string mine;
    const std::string log = w->ReadLog();
    for (size_t at = log.find("Reconnecting to the collector."); at != std::string::npos;
         at = log.find("Reconnecting to the collector.", at + 1)) {
      const size_t d = log.find("delay_ms=", at);
      const size_t end = log.find_first_of(",]", d);
      if (d != std::string::npos && end != std::string::npos) {
        absl::StrAppend(&mine, log.substr(d + 9, end - d - 9), " ");
      }
    }
    delays.push_back(mine);
  }
  std::sort(delays.begin(), delays.end());
  EXPECT_EQ(std::unique(delays.begin(), delays.end()), delays.end())
      << "workers reconnected in lockstep: " << absl::StrJoin(delays, " | ");
  std::printf("FAULT-REPORT collector-sigkill down=%.3fs reconnect_delays_ms=[%s] %s\n",
              absl::ToDoubleSeconds(down), absl::StrJoin(delays, "| ").c_str(),
              t.ToString().c_str());
  std::fflush(stdout);
}

// A work unit that kills whichever worker runs it (a test build hook: the
// worker kills itself when given client 0): after two losses it is not
// handed to a third worker, and the run fails naming the crash loop.
TEST_F(FaultsTest, WorkThatKillsTwoWorkersFailsTheRunAsACrashLoop) {
  Start(3, {"LLMLOAD_TEST_CRASH_ON_CLIENT=0"});
  for (auto& w : workers_) {
    w->AllowSignal(SIGKILL);  // the hook's, not the test's
  }
  const absl::Time start = MonoNow();
  const v1::Run started = StartRun(ClosedSpec(6, 20));
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
  EXPECT_EQ(run.state(), v1::FAILED);
  EXPECT_NE(run.error().find("crash loop"), std::string::npos) << run.error();
  EXPECT_NE(run.error().find("lost with 2 workers"), std::string::npos) << run.error();
  EXPECT_NE(run.error().find("not handed to a third"), std::string::npos) << run.error();
  int dead = 0;
  for (auto& w : workers_) {
    dead += w->Running() ? 0 : 1;
  }
  EXPECT_EQ(dead, 2) << "the work must not reach a third worker";
  std::printf("FAULT-REPORT crash-loop failed_after=%.3fs losses=%d error=\"%s\"\n",
              absl::ToDoubleSeconds(MonoNow() - start), run.losses_size(), run.error().c_str());
  std::fflush(stdout);
}

// The soak (opt-in: LLMLOAD_SOAK=1; LLMLOAD_SOAK_SECONDS, default 600): a
// duration run at moderate load while one worker is SIGKILLed and started
// again (same id, a new process) every minute. Totals stay exact and each
// service's memory stays flat; RSS at the start and the end is printed.
TEST_F(FaultsTest, SoakWorkersKilledAndRestartedEveryMinute) {
  const char* enabled = std::getenv("LLMLOAD_SOAK");
  if (enabled == nullptr || std::string(enabled) != "1") {
    GTEST_SKIP() << "the soak runs only with LLMLOAD_SOAK=1";
  }
  const char* secs_env = std::getenv("LLMLOAD_SOAK_SECONDS");
  const int seconds = secs_env != nullptr ? std::max(60, std::atoi(secs_env)) : 600;
  Start();
  const v1::Run started = StartRun(DurationSpec(15, absl::Seconds(seconds)));
  const absl::Time begin = MonoNow();
  ASSERT_TRUE(WaitForRequests(started.id(), 100));
  auto rss = [&](const char* what) {
    std::string line = absl::StrCat("SOAK-RSS ", what, " t=",
                                    absl::ToInt64Seconds(MonoNow() - begin), "s");
    for (auto* p : {&orchestrator_, &collector_, &emulator_}) {
      absl::StrAppend(&line, " ", (*p)->name(), "=", testing_util::RssKib((*p)->pid()), "KiB");
    }
    for (size_t i = 0; i < workers_.size(); ++i) {
      absl::StrAppend(&line, " worker-", i, "=", testing_util::RssKib(workers_[i]->pid()),
                      "KiB");
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  // Warm-up done: the baseline.
  ASSERT_TRUE(WaitUntil([&] { return MonoNow() - begin > absl::Seconds(15); },
                        absl::Seconds(30), "warm-up"));
  rss("start");
  const int64_t orchestrator_start = testing_util::RssKib(orchestrator_->pid());
  const int64_t collector_start = testing_util::RssKib(collector_->pid());
  const int64_t emulator_start = testing_util::RssKib(emulator_->pid());
  int kills = 0;
  for (absl::Duration at = absl::Seconds(60); at < absl::Seconds(seconds - 20);
       at += absl::Seconds(60)) {
    ASSERT_TRUE(WaitUntil([&] { return MonoNow() - begin >= at; }, at + absl::Seconds(30),
                          "the next kill", absl::Milliseconds(200)));
    const size_t victim = static_cast<size_t>(kills % 3);
    workers_[victim]->Kill();
    ++kills;
    ASSERT_TRUE(WaitUntil([&] { return Get(started.id()).losses_size() >= kills; },
                          absl::Seconds(20), "the loss"));
    StartWorker(static_cast<int>(victim));
    ASSERT_TRUE(WaitForWorkers(3, absl::Seconds(20)));
    rss(absl::StrCat("after-kill-", kills).c_str());
  }
  ASSERT_TRUE(WaitUntil([&] { return MonoNow() - begin > absl::Seconds(seconds - 2); },
                        absl::Seconds(seconds + 30), "the end of the load"));
  rss("end");
  const int64_t orchestrator_end = testing_util::RssKib(orchestrator_->pid());
  const int64_t collector_end = testing_util::RssKib(collector_->pid());
  const int64_t emulator_end = testing_util::RssKib(emulator_->pid());
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(60));
  const Totals t = ExpectExact(run);
  // One entry per lost shard: a worker may hold several (work moved to it).
  EXPECT_GE(run.losses_size(), kills);
  // Flat: no service grew by more than half its baseline plus 32 MiB.
  for (auto [name, before, after] :
       {std::tuple{"orchestrator", orchestrator_start, orchestrator_end},
        std::tuple{"collector", collector_start, collector_end},
        std::tuple{"emulator", emulator_start, emulator_end}}) {
    EXPECT_LE(after, before + before / 2 + 32 * 1024) << name << " grew from " << before
                                                      << " KiB to " << after << " KiB";
  }
  std::printf("FAULT-REPORT soak seconds=%d kills=%d %s\n", seconds, kills,
              t.ToString().c_str());
  std::fflush(stdout);
}

}  // namespace
}  // namespace llmload
