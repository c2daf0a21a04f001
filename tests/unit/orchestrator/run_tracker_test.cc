// The run tracker driven directly: a fake clock, scripted workers and a
// scripted collector, no sockets and no sleeps. Every fault the orchestrator
// handles is played here: killed, hung, cut-off and drained workers, workers
// that come back, a crash loop, no capacity left, and a restart.

#include "services/orchestrator/run_tracker.h"

#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"
#include "services/orchestrator/run_state.h"

namespace llmload::orchestrator {
namespace {

using ::testing::HasSubstr;

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

v1::RunSpec DurationSpec(int32_t connections, int64_t seconds) {
  v1::RunSpec spec = ClosedSpec(1, 1, 0);
  spec.mutable_load()->mutable_duration()->set_connections(connections);
  spec.mutable_load()->mutable_duration()->mutable_duration()->set_seconds(seconds);
  return spec;
}

v1::RunSpec OpenSpec(double rate, int32_t max_in_flight, int64_t seconds) {
  v1::RunSpec spec = ClosedSpec(1, 1, 0);
  v1::OpenLoad* open = spec.mutable_load()->mutable_open();
  open->set_rate_per_second(rate);
  open->set_max_in_flight(max_in_flight);
  open->mutable_duration()->set_seconds(seconds);
  return spec;
}

// What a sealed shard looked like at the collector.
struct SealScript {
  std::map<int32_t, std::pair<uint32_t, uint32_t>> clients;  // started, ended
  std::vector<int32_t> closed;
  uint64_t lost = 0;
  bool final = false;
  int64_t last_end_us = 0;
};

class RunTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.heartbeat_timeout = absl::Seconds(3);
    config_.heartbeat_interval = absl::Milliseconds(500);
    config_.reassign_wait = absl::Seconds(10);
    config_.recovery_grace = absl::Seconds(5);
    config_.stop_grace = absl::Seconds(2);
    config_.seed = 7;
    Make();
  }

  void Make(bool collector = true) {
    tracker_ = std::make_unique<RunTracker>(
        config_, [this](const v1::WorkerHello& hello) { return processes_[hello.worker_id()]; },
        collector);
  }

  // Attaches a worker; returns its stream.
  uint64_t Attach(const std::string& id, int32_t capacity = 100,
                  const std::string& incarnation = "") {
    const uint64_t stream = next_stream_++;
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(id);
    hello.mutable_hello()->set_capacity(capacity);
    hello.mutable_hello()->set_incarnation(incarnation.empty() ? id + "-1" : incarnation);
    EXPECT_TRUE(tracker_->OnMessage(stream, hello, now_, fx_).ok());
    stream_of_[id] = stream;
    Process();
    return stream;
  }

  v1::Run Start(const v1::RunSpec& spec) {
    absl::StatusOr<v1::Run> planned = tracker_->PlanRun(spec, now_, fx_);
    EXPECT_TRUE(planned.ok()) << planned.status();
    if (!planned.ok()) {
      return v1::Run();
    }
    absl::StatusOr<v1::Run> started =
        tracker_->OnStartStored(planned->id(), absl::OkStatus(), now_, fx_);
    EXPECT_TRUE(started.ok()) << started.status();
    Process();
    return *started;
  }

  // Carries out effects like the edge would: writes succeed, the messages
  // land in each stream's inbox, seals wait for the test to answer them,
  // final statistics come back empty.
  void Process() {
    while (!fx_.empty()) {
      Effects batch;
      batch.swap(fx_);
      for (Effect& e : batch) {
        if (auto* send = std::get_if<SendEffect>(&e)) {
          inbox_[send->stream].push_back(send->message);
        } else if (auto* close = std::get_if<CloseEffect>(&e)) {
          closed_[close->stream] = close->status;
        } else if (auto* write = std::get_if<WriteEffect>(&e)) {
          written_[write->run.id()] = write->run;
          if (write->report_back) {
            tracker_->OnRunWritten(write->run.id(), absl::OkStatus(), now_, fx_);
          }
        } else if (auto* scrape = std::get_if<ScrapeTargetEffect>(&e)) {
          scrapes_.push_back(*scrape);
        } else if (auto* fetch = std::get_if<FetchStatsEffect>(&e)) {
          fetches_.push_back(*fetch);
          static const v1::RunStats kEmpty;
          tracker_->OnStats(fetch->run_id, fetch->final ? &kEmpty : nullptr, fetch->final, now_,
                            fx_);
        } else if (auto* seal = std::get_if<SealEffect>(&e)) {
          seals_.push_back(*seal);
        } else if (auto* log = std::get_if<LogEffect>(&e)) {
          logs_.push_back(*log);
        }
      }
    }
  }

  void Advance(absl::Duration d) {
    now_ += d;
    tracker_->Tick(now_, fx_);
    Process();
  }

  // Heartbeats from every worker in `ids`, `n` times, `every` apart.
  void Heartbeats(const std::vector<std::string>& ids, int n, absl::Duration every) {
    for (int i = 0; i < n; ++i) {
      for (const std::string& id : ids) {
        v1::WorkerMessage hb;
        hb.mutable_heartbeat()->set_active_sessions(1);
        EXPECT_TRUE(tracker_->OnMessage(stream_of_[id], hb, now_, fx_).ok());
      }
      Advance(every);
    }
  }

  void Update(const std::string& worker, const std::string& run_id, uint64_t epoch,
              v1::ShardState state, int64_t cycles = 0) {
    v1::WorkerMessage m;
    v1::ShardUpdate* u = m.mutable_shard_update();
    u->set_run_id(run_id);
    u->set_epoch(epoch);
    u->set_state(state);
    u->mutable_progress()->set_cycles_done(cycles);
    u->set_last_sequence(3);
    u->set_last_batch_end_us(absl::ToUnixMicros(now_));
    EXPECT_TRUE(tracker_->OnMessage(stream_of_[worker], m, now_, fx_).ok());
    Process();
  }

  void Answer(const SealEffect& seal, const SealScript& script) {
    v1::SealedShard s;
    s.set_run_id(seal.run_id);
    s.set_worker_id(seal.worker_id);
    s.set_epoch(seal.epoch);
    s.set_batches(2);
    s.set_lost(script.lost);
    s.set_final(script.final);
    s.set_last_interval_end_us(script.last_end_us);
    for (const auto& [client, se] : script.clients) {
      v1::ClientCycles* c = s.add_clients();
      c->set_client(client);
      c->set_started(se.first);
      c->set_ended(se.second);
    }
    for (int32_t client : script.closed) {
      v1::ClientCycles* c = s.add_clients();
      c->set_client(client);
      c->set_closed(true);
    }
    tracker_->OnSealed(seal.run_id, seal.worker_id, seal.epoch, s, now_, fx_);
    Process();
  }

  std::vector<v1::ShardAssignment> Assigned(const std::string& worker) {
    std::vector<v1::ShardAssignment> out;
    std::deque<v1::OrchestratorMessage>& in = inbox_[stream_of_[worker]];
    for (const v1::OrchestratorMessage& m : in) {
      if (m.has_assign()) {
        out.push_back(m.assign());
      }
    }
    return out;
  }
  std::vector<v1::StopShard> Stops(const std::string& worker) {
    std::vector<v1::StopShard> out;
    for (const v1::OrchestratorMessage& m : inbox_[stream_of_[worker]]) {
      if (m.has_stop()) {
        out.push_back(m.stop());
      }
    }
    return out;
  }

  v1::Run Get(const std::string& id) {
    absl::StatusOr<v1::Run> run = tracker_->GetRun(id);
    EXPECT_TRUE(run.ok());
    return run.ok() ? *run : v1::Run();
  }

  static bool HasEvent(const v1::Run& run, const std::string& needle) {
    for (const v1::RunEvent& e : run.events()) {
      if (absl::StrContains(e.message(), needle)) {
        return true;
      }
    }
    return false;
  }

  OrchestratorConfig config_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::unique_ptr<RunTracker> tracker_;
  std::map<std::string, ProcessReport> processes_;
  uint64_t next_stream_ = 1;
  std::map<std::string, uint64_t> stream_of_;
  Effects fx_;
  std::map<uint64_t, std::deque<v1::OrchestratorMessage>> inbox_;
  std::map<uint64_t, absl::Status> closed_;
  std::map<std::string, v1::Run> written_;
  std::vector<SealEffect> seals_;
  std::vector<LogEffect> logs_;
  std::vector<ScrapeTargetEffect> scrapes_;
  std::vector<FetchStatsEffect> fetches_;
};

TEST_F(RunTrackerTest, HungWorkerIsLostAfterTheTimeoutAndItsClientsMoveWithTheirCyclesLeft) {
  Attach("a");
  Attach("b");
  const v1::Run run = Start(ClosedSpec(6, 4, 0));
  ASSERT_EQ(Assigned("b").size(), 1u);
  const v1::ShardAssignment lost = Assigned("b")[0];
  EXPECT_EQ(lost.client_begin(), 3);
  const absl::Time started = now_;
  Update("b", run.id(), lost.epoch(), v1::SHARD_RUNNING, 1);  // cut a batch ending now
  // a keeps talking, b goes silent (SIGSTOP, network cut).
  Heartbeats({"a"}, 6, absl::Milliseconds(500));
  EXPECT_TRUE(seals_.empty()) << "lost too early";
  Heartbeats({"a"}, 1, absl::Milliseconds(600));
  ASSERT_EQ(seals_.size(), 1u);
  EXPECT_EQ(seals_[0].worker_id, "b");
  EXPECT_EQ(seals_[0].epoch, lost.epoch());
  EXPECT_TRUE(closed_.contains(stream_of_["b"]));
  v1::Run now = Get(run.id());
  EXPECT_EQ(now.state(), v1::RUNNING);
  EXPECT_TRUE(HasEvent(now, "worker b lost (no heartbeat for 3s)"));

  // Client 3 finished (its session closed), client 4 started 2 cycles and
  // had the second in flight, client 5 never started.
  SealScript script;
  script.clients[4] = {2, 1};
  script.closed = {3};
  script.lost = 1;
  script.last_end_us = absl::ToUnixMicros(started - absl::Milliseconds(500));
  Answer(seals_[0], script);

  const std::vector<v1::ShardAssignment> moved = Assigned("a");
  ASSERT_EQ(moved.size(), 2u);  // its own shard, then the moved work
  const v1::ShardAssignment& m = moved[1];
  EXPECT_GT(m.epoch(), lost.epoch());
  ASSERT_EQ(m.clients_size(), 2);
  EXPECT_EQ(m.clients(0).begin(), 4);
  EXPECT_EQ(m.clients(0).cycles(), 2);
  EXPECT_EQ(m.clients(1).begin(), 5);
  EXPECT_EQ(m.clients(1).cycles(), 4);
  EXPECT_EQ(m.client_count(), 2);
  now = Get(run.id());
  ASSERT_EQ(now.losses_size(), 1);
  const v1::WorkerLoss& loss = now.losses(0);
  EXPECT_EQ(loss.worker_id(), "b");
  EXPECT_FALSE(loss.drained());
  EXPECT_EQ(loss.requests_lost(), 1);
  EXPECT_EQ(loss.missing_from_us(), script.last_end_us);
  EXPECT_GT(loss.missing_to_us(), loss.missing_from_us());
  ASSERT_EQ(loss.moved_size(), 1);
  EXPECT_THAT(loss.moved(0), HasSubstr("a: clients 4,5, 6 cycles"));
  EXPECT_TRUE(HasEvent(now, "never reached the collector"));
  // The moved shard is durable before it was sent.
  ASSERT_TRUE(written_.contains(run.id()));
  bool stored = false;
  for (const v1::Shard& s : written_[run.id()].shards()) {
    stored = stored || s.epoch() == m.epoch();
  }
  EXPECT_TRUE(stored);

  // Everything a runs finishes: COMPLETED, with the lost request counted.
  Update("a", run.id(), moved[0].epoch(), v1::SHARD_DONE, 12);
  EXPECT_EQ(Get(run.id()).state(), v1::RUNNING);
  Update("a", run.id(), m.epoch(), v1::SHARD_DONE, 6);
  now = Get(run.id());
  EXPECT_EQ(now.state(), v1::COMPLETED);
  EXPECT_EQ(now.progress().requests_lost(), 1);
  EXPECT_TRUE(now.passed());
}

TEST_F(RunTrackerTest, KilledWorkerOnThisHostIsLostAtOnce) {
  Attach("a");
  Attach("b");
  Start(ClosedSpec(4, 2, 0));
  processes_["b"] = ProcessReport{"; process 42 has exited", true};
  tracker_->OnStreamClosed(stream_of_["b"], now_, fx_);
  Process();
  ASSERT_EQ(seals_.size(), 1u);
  EXPECT_EQ(seals_[0].worker_id, "b");
}

TEST_F(RunTrackerTest, ClosedStreamWaitsForTheTimeoutUnlessTheWorkerComesBack) {
  Attach("a");
  Attach("b");
  const v1::Run run = Start(ClosedSpec(4, 2, 0));
  const uint64_t epoch = Assigned("b")[0].epoch();
  tracker_->OnStreamClosed(stream_of_["b"], now_, fx_);
  Process();
  EXPECT_TRUE(seals_.empty());
  EXPECT_TRUE(HasEvent(Get(run.id()), "lost unless it re-attaches within 3s"));
  Heartbeats({"a"}, 2, absl::Milliseconds(500));
  // The same process re-attaches: its shard goes on (and is sent again; it
  // ignores what it already runs).
  Attach("b");
  ASSERT_EQ(Assigned("b").size(), 1u);
  EXPECT_EQ(Assigned("b")[0].epoch(), epoch);
  Heartbeats({"a", "b"}, 10, absl::Milliseconds(500));
  EXPECT_TRUE(seals_.empty());
  EXPECT_TRUE(HasEvent(Get(run.id()), "worker b re-attached; its shard continues"));
}

TEST_F(RunTrackerTest, WorkerBackAsANewProcessLosesItsShardAtOnce) {
  Attach("a");
  Attach("b", 100, "b-first");
  Start(ClosedSpec(4, 2, 0));
  Attach("b", 100, "b-second");  // a restarted pod with the same name
  ASSERT_EQ(seals_.size(), 1u);
  EXPECT_EQ(seals_[0].worker_id, "b");
  Answer(seals_[0], SealScript());
  // Its work may go to any worker with spare capacity, the new b included.
  int32_t moved = 0;
  for (const std::string w : {"a", "b"}) {
    for (const v1::ShardAssignment& a : Assigned(w)) {
      moved += a.epoch() > 2 ? a.client_count() : 0;
    }
  }
  EXPECT_EQ(moved, 2);
}

TEST_F(RunTrackerTest, FencedWorkerIsToldToStopItsOldShard) {
  Attach("a");
  Attach("b");
  const v1::Run run = Start(ClosedSpec(4, 2, 0));
  const uint64_t old_epoch = Assigned("b")[0].epoch();
  Heartbeats({"a"}, 8, absl::Milliseconds(500));
  ASSERT_EQ(seals_.size(), 1u);
  Answer(seals_[0], SealScript());
  // SIGCONT: b comes back (same process) and reports its old shard.
  inbox_.clear();
  Attach("b");
  Update("b", run.id(), old_epoch, v1::SHARD_RUNNING, 1);
  const std::vector<v1::StopShard> stops = Stops("b");
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].epoch(), old_epoch);
  EXPECT_THAT(stops[0].reason(), HasSubstr("fenced"));
  // Its late reports change nothing.
  Update("b", run.id(), old_epoch, v1::SHARD_DONE, 4);
  const v1::Run now = Get(run.id());
  for (const v1::Shard& s : now.shards()) {
    if (s.epoch() == old_epoch) {
      EXPECT_EQ(s.state(), v1::SHARD_LOST);
    }
  }
  EXPECT_TRUE(HasEvent(now, "fenced"));
  EXPECT_EQ(now.state(), v1::RUNNING);
}

TEST_F(RunTrackerTest, DurationModelMovesConnectionsForTheRestOfTheLoad) {
  Attach("a");
  Attach("b");
  const v1::Run run = Start(DurationSpec(10, 30));
  const v1::ShardAssignment lost = Assigned("b")[0];
  Heartbeats({"a"}, 20, absl::Milliseconds(500));  // 10 s in; b lost at ~3 s
  ASSERT_EQ(seals_.size(), 1u);
  Answer(seals_[0], SealScript{{}, {}, 3, false, 0});
  const std::vector<v1::ShardAssignment> a = Assigned("a");
  ASSERT_EQ(a.size(), 2u);
  const v1::ShardAssignment& m = a[1];
  EXPECT_EQ(m.client_count(), lost.client_count());
  EXPECT_EQ(m.max_concurrent(), lost.client_count());
  EXPECT_EQ(m.clients(0).begin(), lost.client_begin());
  EXPECT_EQ(m.clients(0).cycles(), 0);
  // It starts as far into the load as the run is now.
  EXPECT_GE(m.load_offset().seconds(), 3);
  EXPECT_LE(m.load_offset().seconds(), 10);
  EXPECT_EQ(Get(run.id()).losses(0).requests_lost(), 3);
}

TEST_F(RunTrackerTest, DurationWorkLostAtTheEndDoesNotMove) {
  Attach("a");
  Attach("b");
  const v1::Run run = Start(DurationSpec(4, 5));
  Heartbeats({"a"}, 12, absl::Milliseconds(500));  // 6 s: past the load
  ASSERT_EQ(seals_.size(), 1u);
  Answer(seals_[0], SealScript());
  EXPECT_EQ(Assigned("a").size(), 1u);
  EXPECT_THAT(Get(run.id()).losses(0).not_moved(), HasSubstr("the load was ending"));
  Update("a", run.id(), Assigned("a")[0].epoch(), v1::SHARD_DONE);
  EXPECT_EQ(Get(run.id()).state(), v1::COMPLETED);
}

TEST_F(RunTrackerTest, OpenModelMovesTheRateShareFromNowOn) {
  Attach("a", 100);
  Attach("b", 300);
  Attach("c", 100);
  const v1::Run run = Start(OpenSpec(50, 100, 60));
  ASSERT_EQ(Assigned("b").size(), 1u);
  const v1::ShardAssignment lost = Assigned("b")[0];
  EXPECT_DOUBLE_EQ(lost.rate_share(), 0.6);
  Heartbeats({"a", "c"}, 8, absl::Milliseconds(500));
  ASSERT_EQ(seals_.size(), 1u);
  Answer(seals_[0], SealScript());
  double share = 0;
  int32_t in_flight = 0;
  for (const std::string w : {"a", "c"}) {
    const std::vector<v1::ShardAssignment> got = Assigned(w);
    ASSERT_EQ(got.size(), 2u) << w;
    share += got[1].rate_share();
    in_flight += got[1].max_concurrent();
    EXPECT_NEAR(got[1].rate_share(), 0.3, 1e-9) << w;
    EXPECT_GE(got[1].load_offset().seconds(), 3);
  }
  EXPECT_NEAR(share, lost.rate_share(), 1e-9);
  EXPECT_EQ(in_flight, lost.max_concurrent());
  EXPECT_EQ(Get(run.id()).losses(0).moved_size(), 2);
}

TEST_F(RunTrackerTest, DrainedShardMovesAtOnceWithNothingLost) {
  Attach("a");
  Attach("b");
  const v1::Run run = Start(ClosedSpec(4, 3, 0));
  const uint64_t epoch = Assigned("b")[0].epoch();
  v1::WorkerMessage leaving;
  leaving.mutable_leaving()->set_reason("SIGTERM");
  Update("b", run.id(), epoch, v1::SHARD_DRAINED, 2);
  ASSERT_TRUE(tracker_->OnMessage(stream_of_["b"], leaving, now_, fx_).ok());
  Process();
  ASSERT_EQ(seals_.size(), 1u);  // no timeout waited out
  SealScript script;
  script.clients[2] = {2, 2};
  script.closed = {};
  Answer(seals_[0], script);
  const std::vector<v1::ShardAssignment> a = Assigned("a");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[1].clients(0).begin(), 2);
  EXPECT_EQ(a[1].clients(0).cycles(), 1);
  EXPECT_EQ(a[1].clients(1).begin(), 3);
  EXPECT_EQ(a[1].clients(1).cycles(), 3);
  // Its stream ends: it left, nothing else happens.
  tracker_->OnStreamClosed(stream_of_["b"], now_, fx_);
  Process();
  const v1::Run now = Get(run.id());
  EXPECT_TRUE(now.losses(0).drained());
  EXPECT_EQ(now.losses(0).requests_lost(), 0);
  EXPECT_EQ(tracker_->NumWorkersForTest(), 1u);
  // A leaving worker takes no new work.
  EXPECT_TRUE(Assigned("b").size() == 1u);
}

TEST_F(RunTrackerTest, WithoutCapacityTheWorkWaitsForALaterWorker) {
  Attach("a");
  const v1::Run run = Start(ClosedSpec(2, 2, 0));
  Advance(absl::Seconds(4));
  ASSERT_EQ(seals_.size(), 1u);
  Answer(seals_[0], SealScript());
  EXPECT_EQ(Get(run.id()).state(), v1::RUNNING);
  Advance(absl::Seconds(5));
  // A rescheduled pod attaches: the work goes there.
  Attach("a2");
  ASSERT_EQ(Assigned("a2").size(), 1u);
  EXPECT_EQ(Assigned("a2")[0].client_count(), 2);
  EXPECT_TRUE(HasEvent(Get(run.id()), "after 5s of waiting"));
}

TEST_F(RunTrackerTest, WithoutCapacityTheRunFailsAfterTheWait) {
  Attach("a");
  const v1::Run run = Start(ClosedSpec(2, 2, 0));
  Advance(absl::Seconds(4));
  Answer(seals_[0], SealScript());
  for (int i = 0; i < 12; ++i) {
    Advance(absl::Seconds(1));
  }
  const v1::Run now = Get(run.id());
  EXPECT_EQ(now.state(), v1::FAILED);
  EXPECT_THAT(now.error(), HasSubstr("no worker with spare capacity took over the work of worker a"));
  EXPECT_THAT(now.error(), HasSubstr("within 10s"));
}

TEST_F(RunTrackerTest, WorkThatKilledTwoWorkersIsNotHandedToAThird) {
  Attach("a");
  Attach("b");
  Attach("c");
  const v1::Run run = Start(ClosedSpec(3, 2, 0));
  // a dies; its client 0 moves (to b or c, whichever has more spare).
  processes_["a"] = ProcessReport{"; process 1 has exited", true};
  tracker_->OnStreamClosed(stream_of_["a"], now_, fx_);
  Process();
  ASSERT_EQ(seals_.size(), 1u);
  Answer(seals_[0], SealScript());
  std::string second;
  for (const std::string w : {"b", "c"}) {
    if (Assigned(w).size() == 2) {
      second = w;
    }
  }
  ASSERT_FALSE(second.empty());
  // It kills that worker too.
  processes_[second] = ProcessReport{"; process 2 has exited", true};
  tracker_->OnStreamClosed(stream_of_[second], now_, fx_);
  Process();
  ASSERT_EQ(seals_.size(), 3u);  // both of its shards
  for (size_t i = 1; i < seals_.size(); ++i) {
    Answer(seals_[i], SealScript());
  }
  const v1::Run now = Get(run.id());
  EXPECT_EQ(now.state(), v1::FAILED);
  EXPECT_THAT(now.error(), HasSubstr("crash loop"));
  EXPECT_THAT(now.error(), HasSubstr(absl::StrCat("(a, ", second, ")")));
  EXPECT_THAT(now.error(), HasSubstr("not handed to a third"));
}

TEST_F(RunTrackerTest, IndependentLossesLongAfterTheMoveAreNoCrashLoop) {
  Attach("a");
  Attach("b");
  Attach("c");
  const v1::Run run = Start(ClosedSpec(3, 200, 0));
  // Each worker dies a minute after it got its work: faults of their own,
  // not of the work.
  Heartbeats({"a", "b", "c"}, 120, absl::Milliseconds(500));
  processes_["a"] = ProcessReport{"; process 1 has exited", true};
  tracker_->OnStreamClosed(stream_of_["a"], now_, fx_);
  Process();
  ASSERT_EQ(seals_.size(), 1u);
  Answer(seals_[0], SealScript());
  std::string second;
  for (const std::string w : {"b", "c"}) {
    if (Assigned(w).size() == 2) {
      second = w;
    }
  }
  ASSERT_FALSE(second.empty());
  const std::string third = second == "b" ? "c" : "b";
  Heartbeats({"b", "c"}, 120, absl::Milliseconds(500));
  processes_[second] = ProcessReport{"; process 2 has exited", true};
  tracker_->OnStreamClosed(stream_of_[second], now_, fx_);
  Process();
  for (size_t i = 1; i < seals_.size(); ++i) {
    Answer(seals_[i], SealScript());
  }
  const v1::Run now = Get(run.id());
  EXPECT_EQ(now.state(), v1::RUNNING) << now.error();
  EXPECT_GE(Assigned(third).size(), 2u);  // the work moved on
}

TEST_F(RunTrackerTest, FailOnWorkerLossFailsAtOnce) {
  Attach("a");
  Attach("b");
  v1::RunSpec spec = ClosedSpec(4, 2, 0);
  spec.set_fail_on_worker_loss(true);
  const v1::Run run = Start(spec);
  Heartbeats({"a"}, 8, absl::Milliseconds(500));
  EXPECT_TRUE(seals_.empty());
  const v1::Run now = Get(run.id());
  EXPECT_EQ(now.state(), v1::FAILED);
  EXPECT_THAT(now.error(), HasSubstr("failOnWorkerLoss"));
  EXPECT_EQ(Stops("a").size(), 1u);
}

TEST_F(RunTrackerTest, SealFailuresAreRetried) {
  Attach("a");
  Attach("b");
  const v1::Run run = Start(ClosedSpec(4, 2, 0));
  Heartbeats({"a"}, 8, absl::Milliseconds(500));
  ASSERT_EQ(seals_.size(), 1u);
  tracker_->OnSealed(run.id(), "b", seals_[0].epoch, absl::UnavailableError("collector down"),
                     now_, fx_);
  Process();
  Heartbeats({"a"}, 2, absl::Milliseconds(500));
  ASSERT_EQ(seals_.size(), 2u);
  Answer(seals_[1], SealScript());
  EXPECT_EQ(Assigned("a").size(), 2u);
}

TEST_F(RunTrackerTest, RestartRecoversRunsInProgress) {
  Attach("a");
  Attach("b");
  const v1::Run run = Start(ClosedSpec(4, 2, 0));
  const uint64_t epoch_a = Assigned("a")[0].epoch();
  Update("a", run.id(), epoch_a, v1::SHARD_RUNNING, 1);
  const v1::Run stored = written_[run.id()];

  // A new process on the same database.
  Make();
  inbox_.clear();
  tracker_->Recover({stored}, now_, fx_);
  Process();
  v1::Run now = Get(run.id());
  EXPECT_EQ(now.state(), v1::RUNNING);
  EXPECT_TRUE(HasEvent(now, "orchestrator restarted; the run goes on"));
  // a re-attaches (same process) and reports its shard: it goes on.
  Attach("a");
  Update("a", run.id(), epoch_a, v1::SHARD_RUNNING, 2);
  Heartbeats({"a"}, 12, absl::Milliseconds(500));
  // b never came back: lost after the grace, its work moves to a.
  ASSERT_EQ(seals_.size(), 1u);
  EXPECT_EQ(seals_[0].worker_id, "b");
  Answer(seals_[0], SealScript());
  now = Get(run.id());
  EXPECT_THAT(now.losses(0).reason(), HasSubstr("did not re-attach"));
  const std::vector<v1::ShardAssignment> a = Assigned("a");
  ASSERT_GE(a.size(), 2u);
  Update("a", run.id(), epoch_a, v1::SHARD_DONE, 4);
  Update("a", run.id(), a.back().epoch(), v1::SHARD_DONE, 4);
  EXPECT_EQ(Get(run.id()).state(), v1::COMPLETED);
}

TEST_F(RunTrackerTest, RestartReSealsWorkThatWasBeingMoved) {
  Attach("a");
  Attach("b");
  const v1::Run run = Start(ClosedSpec(4, 2, 0));
  Heartbeats({"a"}, 8, absl::Milliseconds(500));
  ASSERT_EQ(seals_.size(), 1u);
  const v1::Run stored = written_[run.id()];  // lost, not yet settled
  Make();
  seals_.clear();
  tracker_->Recover({stored}, now_, fx_);
  Process();
  Advance(absl::Milliseconds(100));
  ASSERT_EQ(seals_.size(), 1u);
  EXPECT_EQ(seals_[0].worker_id, "b");
}

TEST_F(RunTrackerTest, StaleStreamCloseIsIgnored) {
  const uint64_t first = Attach("a");
  const v1::Run run = Start(ClosedSpec(2, 2, 0));
  Attach("a");  // replaces the first stream
  EXPECT_TRUE(closed_.contains(first));
  tracker_->OnStreamClosed(first, now_, fx_);
  Process();
  Heartbeats({"a"}, 10, absl::Milliseconds(500));
  EXPECT_TRUE(seals_.empty());
  EXPECT_EQ(Get(run.id()).state(), v1::RUNNING);
}

// An idle worker's record is erased when its stream ends; the log line must
// still tell a worker that said it was leaving from one that just went away
// (the flag was once read from the erased record: ASan's use-after-free).
TEST_F(RunTrackerTest, IdleWorkerWhoseStreamEndsIsForgottenSayingWhetherItLeft) {
  Attach("a");
  Attach("b");
  v1::WorkerMessage leaving;
  leaving.mutable_leaving()->set_reason("SIGTERM");
  ASSERT_TRUE(tracker_->OnMessage(stream_of_["b"], leaving, now_, fx_).ok());
  Process();
  logs_.clear();
  tracker_->OnStreamClosed(stream_of_["b"], now_, fx_);
  Process();
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].message, "Worker left.");
  EXPECT_THAT(logs_[0].fields, ::testing::Contains(std::make_pair(std::string("worker_id"),
                                                                  std::string("b"))));
  EXPECT_EQ(tracker_->NumWorkersForTest(), 1u);

  logs_.clear();
  tracker_->OnStreamClosed(stream_of_["a"], now_, fx_);
  Process();
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].message, "Worker detached.");
  EXPECT_EQ(tracker_->NumWorkersForTest(), 0u);
}

TEST_F(RunTrackerTest, HeartbeatsWithASequenceGetALease) {
  const uint64_t s = Attach("a");
  v1::WorkerMessage hb;
  hb.mutable_heartbeat()->set_sequence(9);
  ASSERT_TRUE(tracker_->OnMessage(s, hb, now_, fx_).ok());
  Process();
  ASSERT_FALSE(inbox_[s].empty());
  EXPECT_TRUE(inbox_[s].front().has_accepted());
  EXPECT_EQ(inbox_[s].front().accepted().heartbeat_timeout_ms(), 3000u);
  EXPECT_EQ(inbox_[s].back().lease().heartbeat_sequence(), 9u);
  EXPECT_EQ(inbox_[s].back().lease().valid_ms(), 3000u);
}

TEST_F(RunTrackerTest, RefusesATargetOutsideTheAllowlistBeforeReservingAnyWorker) {
  Attach("a");
  v1::RunSpec spec = ClosedSpec(2, 1, 0);
  spec.mutable_target()->set_url("http://api.example.com/v1");
  absl::StatusOr<v1::Run> planned = tracker_->PlanRun(spec, now_, fx_);
  ASSERT_FALSE(planned.ok());
  EXPECT_EQ(planned.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(planned.status().message()), HasSubstr("api.example.com"));
  EXPECT_THAT(std::string(planned.status().message()), HasSubstr("--allow_targets"));
  Process();
  EXPECT_TRUE(written_.empty());
  EXPECT_TRUE(Assigned("a").empty());
  EXPECT_TRUE(tracker_->ListRuns(0).empty());
  // The worker stayed idle: an allowed run starts on it at once.
  const v1::Run run = Start(ClosedSpec(2, 1, 0));
  EXPECT_EQ(run.state(), v1::RUNNING);
  ASSERT_EQ(Assigned("a").size(), 1u);
}

TEST_F(RunTrackerTest, AssignmentsCarryTheAllowlistSoWorkersCheckWhatNamesResolveTo) {
  auto policy = validation::TargetPolicy::Parse("10.1.0.0/16,*.corp.example");
  ASSERT_TRUE(policy.ok()) << policy.status();
  config_.allow_targets = *policy;
  Make();
  Attach("a");
  v1::RunSpec spec = ClosedSpec(1, 1, 0);
  spec.mutable_target()->set_url("http://llm.corp.example:8080");
  Start(spec);
  ASSERT_EQ(Assigned("a").size(), 1u);
  auto sent = validation::TargetPolicy::Parse(Assigned("a")[0].allowed_targets());
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(sent->ToString(), policy->ToString());
  EXPECT_TRUE(sent->CheckHost("llm.corp.example").ok());
  EXPECT_FALSE(sent->CheckHost("127.0.0.1").ok()) << "the list replaced the default";

  // '*' sends no list: workers skip the check.
  config_.allow_targets = *validation::TargetPolicy::Parse("*");
  Make();
  stream_of_.clear();
  Attach("b");
  spec.mutable_target()->set_url("http://api.example.com");
  Start(spec);
  ASSERT_EQ(Assigned("b").size(), 1u);
  EXPECT_EQ(Assigned("b")[0].allowed_targets(), "");
}

TEST_F(RunTrackerTest, TargetMetricsAreScrapedFromTheStartAndStoppedBeforeTheFinalStats) {
  auto policy = validation::TargetPolicy::Parse("default,10.9.0.0/16");
  ASSERT_TRUE(policy.ok()) << policy.status();
  config_.allow_targets = *policy;
  Make();
  Attach("a");
  v1::RunSpec plain = ClosedSpec(1, 1, 0);
  const v1::Run without = Start(plain);
  EXPECT_TRUE(scrapes_.empty());  // no targetMetrics: no scrape
  Update("a", without.id(), 1, v1::SHARD_DONE, 1);
  ASSERT_FALSE(fetches_.empty());
  EXPECT_TRUE(fetches_.back().final);
  EXPECT_FALSE(fetches_.back().stop_scrape);

  v1::RunSpec spec = ClosedSpec(1, 1, 0);
  spec.mutable_target_metrics()->set_url("http://127.0.0.1:8080/metrics");
  spec.mutable_target_metrics()->add_series("up");
  const v1::Run run = Start(spec);
  ASSERT_EQ(scrapes_.size(), 1u);
  EXPECT_EQ(scrapes_[0].run_id, run.id());
  EXPECT_EQ(scrapes_[0].target_metrics.url(), "http://127.0.0.1:8080/metrics");
  EXPECT_EQ(scrapes_[0].target_metrics.interval().seconds(), 1);  // the default, filled in
  EXPECT_EQ(scrapes_[0].allow_targets, policy->ToString());
  fetches_.clear();
  Update("a", run.id(), 1, v1::SHARD_DONE, 1);
  ASSERT_EQ(fetches_.size(), 1u);
  EXPECT_TRUE(fetches_[0].final);
  EXPECT_TRUE(fetches_[0].stop_scrape);
  EXPECT_EQ(Get(run.id()).state(), v1::COMPLETED);
}

TEST_F(RunTrackerTest, RefusesASpecOverTheOperatorsCapsNamingTheFlag) {
  config_.caps.max_clients = 10;
  Make();
  Attach("a");
  absl::StatusOr<v1::Run> planned = tracker_->PlanRun(ClosedSpec(11, 1, 0), now_, fx_);
  ASSERT_FALSE(planned.ok());
  EXPECT_EQ(planned.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(planned.status().message()), HasSubstr("--max_run_clients"));
  Process();
  EXPECT_TRUE(written_.empty());
  EXPECT_TRUE(Assigned("a").empty());
  EXPECT_EQ(Start(ClosedSpec(10, 1, 0)).state(), v1::RUNNING);
}

TEST_F(RunTrackerTest, AWorkerOverNinetyPercentCpuPerLoopOrFiftyMsLagFlagsTheRunAtOnce) {
  Attach("a");
  const v1::Run run = Start(ClosedSpec(2, 100, 0));
  auto heartbeat = [&](double cpu, double lag_ms) {
    v1::WorkerMessage hb;
    hb.mutable_heartbeat()->set_cpu_percent(cpu);
    hb.mutable_heartbeat()->set_loop_lag_ms(lag_ms);
    EXPECT_TRUE(tracker_->OnMessage(stream_of_["a"], hb, now_, fx_).ok());
    Process();
  };
  heartbeat(85, 20);  // busy, not saturated
  EXPECT_FALSE(Get(run.id()).generator_saturated());
  EXPECT_FALSE(written_[run.id()].generator_saturated());
  heartbeat(96, 3);  // one event loop (threads unset counts as one)
  v1::Run now = Get(run.id());
  EXPECT_TRUE(now.generator_saturated());
  EXPECT_TRUE(HasEvent(now, "worker a saturated"));
  EXPECT_TRUE(written_[run.id()].generator_saturated()) << "stored and pushed at once";
  heartbeat(99, 80);  // said once
  int events = 0;
  const v1::Run after = Get(run.id());
  for (const v1::RunEvent& e : after.events()) {
    events += absl::StrContains(e.message(), "saturated") ? 1 : 0;
  }
  EXPECT_EQ(events, 1);
}

TEST_F(RunTrackerTest, CpuIsMeasuredPerEventLoopAndLagAloneAlsoFlags) {
  const uint64_t stream = next_stream_++;
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id("four-loops");
  hello.mutable_hello()->set_capacity(100);
  hello.mutable_hello()->set_threads(4);
  hello.mutable_hello()->set_incarnation("four-loops-1");
  ASSERT_TRUE(tracker_->OnMessage(stream, hello, now_, fx_).ok());
  stream_of_["four-loops"] = stream;
  Process();
  const v1::Run run = Start(ClosedSpec(2, 100, 0));
  v1::WorkerMessage hb;
  hb.mutable_heartbeat()->set_cpu_percent(300);  // 75 % of each of 4 loops
  ASSERT_TRUE(tracker_->OnMessage(stream, hb, now_, fx_).ok());
  Process();
  EXPECT_FALSE(Get(run.id()).generator_saturated());
  hb.mutable_heartbeat()->set_cpu_percent(100);
  hb.mutable_heartbeat()->set_loop_lag_ms(120);
  ASSERT_TRUE(tracker_->OnMessage(stream, hb, now_, fx_).ok());
  Process();
  EXPECT_TRUE(Get(run.id()).generator_saturated());
}

}  // namespace
}  // namespace llmload::orchestrator
