// Targets larger than one process, end to end through orchestrator, two
// workers and the collector:
//  - target.urls: sessions spread exactly evenly over several emulators,
//    counted on the emulators' side (GET /stats), from a spec or from
//    `llmload run --url A --url B --url C`, and every URL checked by
//    validation and the allowlist before anything starts;
//  - one emulator serving its port from several processes (--processes):
//    a run's sessions land in more than one process and all complete.

#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/common/grpc_util.h"
#include "tests/testing/emulator_stats.h"
#include "tests/testing/mono_clock.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::ChildProcess;
using testing_util::EmulatorStats;

// 2 words a request and a 1 ms gap: the runs take well under a second.
v1::RunSpec SmallRun(v1::Protocol protocol, int clients, int cycles) {
  v1::RunSpec spec;
  spec.set_name("target-urls");
  spec.mutable_target()->set_protocol(protocol);
  spec.mutable_target()->mutable_reconnect_backoff()->set_nanos(50 * 1000 * 1000);
  auto* closed = spec.mutable_load()->mutable_closed();
  closed->set_clients(clients);
  closed->set_cycles_per_client(cycles);
  closed->set_max_concurrent(clients);
  spec.mutable_emulation()->set_length_words(4);
  spec.mutable_emulation()->mutable_token_delay()->set_nanos(1000 * 1000);
  return spec;
}

EmulatorStats StatsOf(int port) {
  int status = 0;
  const std::string body = testing_util::HttpGet(port, "/stats", &status);
  EXPECT_EQ(status, 200) << body;
  return testing_util::ParseEmulatorStats(body).value_or(EmulatorStats{});
}

class TargetUrlsTest : public testing_util::StackTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartStack(testing_util::StackOptions()));
    // Two more emulators beside the stack's: three targets.
    ports_.push_back(emulator_port_);
    for (int i = 1; i <= 2; ++i) {
      int port = 0;
      extra_.push_back(
          testing_util::StartEmulator(dir_, &port, absl::StrCat("emulator-", i, ".log")));
      ASSERT_NE(extra_.back(), nullptr);
      ports_.push_back(port);
    }
  }

  void TearDown() override {
    if (HasFailure()) {
      for (auto& e : extra_) {
        std::cerr << "---- " << e->log_path() << " ----\n" << e->ReadLog() << "\n";
      }
    }
    for (auto& e : extra_) {
      e->Stop();
    }
    StackTest::TearDown();
  }

  std::vector<int> ports_;
  std::vector<std::unique_ptr<ChildProcess>> extra_;
};

// 9 clients over 3 URLs: exactly 3 sessions on each emulator (client i on
// urls[i % 3]), whichever worker runs which client.
TEST_F(TargetUrlsTest, ClosedRunSpreadsSessionsExactlyEvenly) {
  std::vector<EmulatorStats> before;
  for (int port : ports_) {
    before.push_back(StatsOf(port));
  }
  v1::RunSpec spec = SmallRun(v1::WS_CHAT, 9, 2);
  for (int port : ports_) {
    spec.mutable_target()->add_urls(absl::StrCat("ws://127.0.0.1:", port, "/api/ws"));
  }
  const v1::Run started = StartRun(spec);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(60));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  EXPECT_EQ(CounterOf(run.stats(), v1::REQUESTS_OK), 18u);
  EXPECT_EQ(CounterOf(run.stats(), v1::TOKENS), 18u * 4u);
  EXPECT_EQ(CounterOf(run.stats(), v1::SESSIONS_OPENED), 9u);
  for (size_t i = 0; i < ports_.size(); ++i) {
    const EmulatorStats after = StatsOf(ports_[i]);
    // One WebSocket per WS_CHAT session, and this /stats request.
    EXPECT_EQ(after.connections_accepted - before[i].connections_accepted, 3u + 1u)
        << "emulator on port " << ports_[i];
    EXPECT_EQ(after.RequestsOf("WS_CHAT") - before[i].RequestsOf("WS_CHAT"), 6u)
        << "emulator on port " << ports_[i];
  }
}

// The default protocol (REST through a keep-alive pool per URL, plus a
// WebSocket per session) over the three URLs.
TEST_F(TargetUrlsTest, CentrifugoRunSpreadsRequestsExactlyEvenly) {
  std::vector<EmulatorStats> before;
  for (int port : ports_) {
    before.push_back(StatsOf(port));
  }
  v1::RunSpec spec = SmallRun(v1::CENTRIFUGO_EMULATOR, 6, 3);
  for (int port : ports_) {
    spec.mutable_target()->add_urls(absl::StrCat("http://127.0.0.1:", port));
  }
  const v1::Run run = WaitForEnd(StartRun(spec).id(), absl::Seconds(60));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  EXPECT_EQ(CounterOf(run.stats(), v1::REQUESTS_OK), 18u);
  EXPECT_EQ(CounterOf(run.stats(), v1::TOKENS), 18u * 4u);
  for (size_t i = 0; i < ports_.size(); ++i) {
    EXPECT_EQ(StatsOf(ports_[i]).RequestsOf("CENTRIFUGO_EMULATOR") -
                  before[i].RequestsOf("CENTRIFUGO_EMULATOR"),
              6u)
        << "emulator on port " << ports_[i];
  }
}

// `llmload run` with --url given three times fills target.urls: the same
// exact spread as a spec naming them.
TEST_F(TargetUrlsTest, CliRunWithRepeatedUrlSpreadsSessionsEvenly) {
  std::vector<EmulatorStats> before;
  std::string cli =
      absl::StrCat("timeout 60 ", BinPath("llmload"), " --orchestrator 127.0.0.1:",
                   orchestrator_port_,
                   " run --protocol ws_chat --clients 6 --cycles 1 --max-concurrent 6 --length 4"
                   " --delay 0.001 --progress-interval 60");
  for (int port : ports_) {
    before.push_back(StatsOf(port));
    absl::StrAppend(&cli, " --url ws://127.0.0.1:", port, "/api/ws");
  }
  const testing_util::ShellResult r = testing_util::RunShell(cli);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (size_t i = 0; i < ports_.size(); ++i) {
    EXPECT_EQ(StatsOf(ports_[i]).RequestsOf("WS_CHAT") - before[i].RequestsOf("WS_CHAT"), 2u)
        << "emulator on port " << ports_[i] << "\n" << r.output;
  }
}

// Every URL is checked before anything starts: a bad or forbidden second
// URL refuses the run, naming it by its index, and no emulator sees a thing.
TEST_F(TargetUrlsTest, EveryUrlIsCheckedBeforeTheRunStarts) {
  std::vector<EmulatorStats> before;
  for (int port : ports_) {
    before.push_back(StatsOf(port));
  }
  struct Case {
    std::string second_url;
    grpc::StatusCode code;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {"http://192.0.2.7:8080", grpc::StatusCode::PERMISSION_DENIED,
       "spec.target.urls[1]: target host \"192.0.2.7\" is not allowed"},
      {"ftp://127.0.0.1:1/", grpc::StatusCode::INVALID_ARGUMENT,
       "spec.target.urls[1]: scheme must be http, https, ws or wss"},
      {"http://u:hunter2@127.0.0.1:1/", grpc::StatusCode::INVALID_ARGUMENT,
       "spec.target.urls[1]: must not carry credentials"},
  };
  for (const Case& c : cases) {
    v1::StartRunRequest req;
    *req.mutable_spec() = SmallRun(v1::WS_CHAT, 3, 1);
    req.mutable_spec()->mutable_target()->add_urls(absl::StrCat("ws://127.0.0.1:", ports_[0]));
    req.mutable_spec()->mutable_target()->add_urls(c.second_url);
    req.mutable_spec()->mutable_target()->add_urls(absl::StrCat("ws://127.0.0.1:", ports_[2]));
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(10)));
    v1::Run run;
    const grpc::Status st = stub_->StartRun(&ctx, req, &run);
    EXPECT_EQ(st.error_code(), c.code) << c.second_url << ": " << st.error_message();
    EXPECT_NE(st.error_message().find(c.mentions), std::string::npos) << st.error_message();
    EXPECT_EQ(st.error_message().find("hunter2"), std::string::npos) << st.error_message();
  }
  for (size_t i = 0; i < ports_.size(); ++i) {
    EXPECT_EQ(StatsOf(ports_[i]).RequestsOf("WS_CHAT"), before[i].RequestsOf("WS_CHAT"));
  }
}

// One emulator, three processes on one port (SO_REUSEPORT).
class EmulatorGroupTest : public testing_util::StackTest {
 protected:
  void SetUp() override {
    testing_util::StackOptions options;
    options.emulator_args = {"--processes=3"};
    ASSERT_NO_FATAL_FAILURE(StartStack(options));
    // The port accepts once the first process listens; the supervisor says
    // when all three do.
    ASSERT_TRUE(testing_util::WaitUntil(
        [&] { return emulator_->ReadLog().find("Emulator listening.") != std::string::npos; },
        absl::Seconds(20), "every emulator process listening"));
  }
};

TEST_F(EmulatorGroupTest, SessionsLandInSeveralProcessesAndAllComplete) {
  // WS_CHAT: one connection per session, so where sessions landed is where
  // their requests were counted.
  v1::RunSpec ws = SmallRun(v1::WS_CHAT, 24, 2);
  ws.mutable_target()->set_url(EmulatorUrl());
  const v1::Run ws_run = WaitForEnd(StartRun(ws).id(), absl::Seconds(60));
  ASSERT_EQ(ws_run.state(), v1::COMPLETED) << ws_run.error();
  EXPECT_EQ(CounterOf(ws_run.stats(), v1::REQUESTS_OK), 48u);
  EXPECT_EQ(CounterOf(ws_run.stats(), v1::TOKENS), 48u * 4u);

  // CENTRIFUGO_EMULATOR: a session's REST calls and its WebSocket may land
  // in different processes; the runs are relayed and every token arrives.
  v1::RunSpec centrifugo = SmallRun(v1::CENTRIFUGO_EMULATOR, 12, 2);
  centrifugo.mutable_target()->set_url(EmulatorUrl());
  const v1::Run c_run = WaitForEnd(StartRun(centrifugo).id(), absl::Seconds(60));
  ASSERT_EQ(c_run.state(), v1::COMPLETED) << c_run.error();
  EXPECT_EQ(CounterOf(c_run.stats(), v1::REQUESTS_OK), 24u);
  EXPECT_EQ(CounterOf(c_run.stats(), v1::TOKENS), 24u * 4u);

  std::map<int64_t, EmulatorStats> by_pid;
  ASSERT_TRUE(testing_util::CollectEmulatorStats(emulator_port_, 3, absl::Seconds(20), &by_pid));
  ASSERT_EQ(by_pid.size(), 3u);
  uint64_t ws_requests = 0;
  uint64_t c_requests = 0;
  uint64_t sent = 0;
  uint64_t started = 0;
  int serving = 0;
  for (const auto& [pid, stats] : by_pid) {
    EXPECT_NE(pid, emulator_->pid());
    ws_requests += stats.RequestsOf("WS_CHAT");
    c_requests += stats.RequestsOf("CENTRIFUGO_EMULATOR");
    sent += stats.relayed_sent;
    started += stats.relayed_started;
    serving += stats.RequestsOf("WS_CHAT") > 0 ? 1 : 0;
  }
  EXPECT_EQ(ws_requests, 48u);
  EXPECT_EQ(c_requests, 24u);
  EXPECT_EQ(started, sent);
  // 24 WebSockets spread by the kernel's hash of their ports: all in one of
  // three processes would be a 1 in 10^11 chance.
  EXPECT_GE(serving, 2);
}

}  // namespace
}  // namespace llmload
