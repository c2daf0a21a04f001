#include "services/worker/shard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <numeric>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/mono_clock.h"

namespace llmload::worker {
namespace {

TEST(SplitEvenlyTest, SumsToTotalAndDiffersByAtMostOne) {
  for (int64_t total : {0, 1, 5, 7, 100, 1001}) {
    for (int parts : {1, 2, 3, 7, 16}) {
      std::vector<int64_t> s = SplitEvenly(total, parts);
      ASSERT_EQ(static_cast<int>(s.size()), parts);
      EXPECT_EQ(std::accumulate(s.begin(), s.end(), int64_t{0}), total);
      const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
      EXPECT_LE(*hi - *lo, 1);
      EXPECT_TRUE(std::is_sorted(s.rbegin(), s.rend()));  // larger shares first
    }
  }
  EXPECT_TRUE(SplitEvenly(5, 0).empty());
}

v1::ShardAssignment Assignment(const std::string& url) {
  v1::ShardAssignment a;
  a.set_run_id("r");
  a.set_client_begin(10);
  a.set_client_count(5);
  a.set_max_concurrent(2);
  a.mutable_spec()->mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
  a.mutable_spec()->mutable_target()->set_url(url);
  a.mutable_spec()->mutable_load()->mutable_closed()->set_clients(5);
  a.mutable_spec()->mutable_load()->mutable_closed()->set_cycles_per_client(3);
  return a;
}

TEST(ShardRunnerTest, RefusesWhatItCannotRunWithAClearError) {
  EventLoops loops(1);
  auto tls = ShardRunner::Create(loops, Assignment("https://127.0.0.1:1"));
  ASSERT_FALSE(tls.ok());
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kUnimplemented);
  auto bad = ShardRunner::Create(loops, Assignment("not a url"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("spec.target.url"), absl::string_view::npos);
  auto proto = Assignment("http://127.0.0.1:1");
  proto.mutable_spec()->mutable_target()->set_protocol(v1::PROTOCOL_UNSPECIFIED);
  auto unspecified = ShardRunner::Create(loops, proto);
  ASSERT_FALSE(unspecified.ok());
  EXPECT_EQ(unspecified.status().code(), absl::StatusCode::kUnimplemented);
  loops.Stop();
}

// Every one of several target URLs is parsed, resolved and checked against
// the allowlist; an error names the URL by its index.
TEST(ShardRunnerTest, ChecksEveryOneOfSeveralUrls) {
  EventLoops loops(1);
  auto several = [](std::vector<std::string> urls, const std::string& allowed = "") {
    v1::ShardAssignment a = Assignment("");
    a.mutable_spec()->mutable_target()->clear_url();
    a.mutable_spec()->mutable_target()->set_protocol(v1::WS_CHAT);
    for (const std::string& u : urls) {
      a.mutable_spec()->mutable_target()->add_urls(u);
    }
    a.set_allowed_targets(allowed);
    return a;
  };
  EXPECT_TRUE(ShardRunner::Create(loops, several({"http://127.0.0.1:1", "ws://127.0.0.2:2/x"}))
                  .ok());
  auto bad = ShardRunner::Create(loops, several({"http://127.0.0.1:1", "http://127.0.0.1:2",
                                                 "not a url"}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("spec.target.urls[2]"), absl::string_view::npos)
      << bad.status();
  // The worker's own check of resolved addresses: the second URL is outside
  // the allowlist the orchestrator sent.
  auto refused = ShardRunner::Create(
      loops, several({"http://127.0.0.1:1", "http://192.0.2.7:2"}, "127.0.0.0/8"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("spec.target.urls[1]: target host \"192.0.2.7\""),
            absl::string_view::npos)
      << refused.status();
  EXPECT_TRUE(ShardRunner::Create(
                  loops, several({"http://127.0.0.1:1", "http://192.0.2.7:2"}, "127.0.0.0/8,192.0.2.7"))
                  .ok());
  loops.Stop();
}

// A loopback port that refuses connections while the object lives: bound,
// never listening.
class RefusingPort {
 public:
  RefusingPort() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~RefusingPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

TEST(ShardRunnerTest, FailedSessionsStillFinishTheShard) {
  // Every session fails to open; the shard must still finish with every
  // client accounted for.
  RefusingPort refusing;
  ASSERT_GT(refusing.port(), 0);
  EventLoops loops(2);
  auto runner = ShardRunner::Create(
      loops, Assignment("http://127.0.0.1:" + std::to_string(refusing.port())));
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->cycles_total(), 15);
  (*runner)->Start();
  const absl::Time deadline = testing_util::MonoNow() + absl::Seconds(10);
  while (!(*runner)->Finished() && testing_util::MonoNow() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE((*runner)->Finished());
  metrics::MetricSet m;
  (*runner)->CutInto(m);
  EXPECT_EQ(m.Get(v1::SESSIONS_FAILED), 5u);
  EXPECT_EQ(m.Get(v1::CONNECT_FAILED), 5u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 0u);
  EXPECT_EQ((*runner)->active_sessions(), 0);
  runner->reset();
  loops.Stop();
}

TEST(ShardRunnerTest, DurationShardEndsAtItsDurationEvenWhenSessionsFail) {
  // Sessions fail at once, but the load model is time-bound: the shard ends
  // when the duration does (plus at most the drain), not before.
  RefusingPort refusing;
  EventLoops loops(2);
  v1::ShardAssignment a = Assignment("http://127.0.0.1:" + std::to_string(refusing.port()));
  auto* d = a.mutable_spec()->mutable_load()->mutable_duration();
  d->set_connections(5);
  d->mutable_duration()->set_seconds(1);
  auto runner = ShardRunner::Create(loops, a);
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->cycles_total(), 0);
  const absl::Time start = testing_util::MonoNow();
  (*runner)->Start();
  const absl::Time deadline = start + absl::Seconds(10);
  while (!(*runner)->Finished() && testing_util::MonoNow() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE((*runner)->Finished());
  // Not before the duration (the load model's rule); the upper bound only
  // says the shard ended at the end and not at some later timeout, with room
  // for a busy machine.
  const absl::Duration took = testing_util::MonoNow() - start;
  EXPECT_GE(took, absl::Milliseconds(1000));
  EXPECT_LE(took, absl::Seconds(6));
  EXPECT_FALSE((*runner)->cancelled());
  metrics::MetricSet m;
  (*runner)->CutInto(m);
  EXPECT_EQ(m.Get(v1::SESSIONS_FAILED), 5u);
  runner->reset();
  loops.Stop();
}

TEST(ShardRunnerTest, OpenShardCountsEveryArrivalAndDropsOverTheCap) {
  // 200 arrivals/s for 1 s with at most 2 sessions: sessions to a port that
  // refuses fail fast and free their slot, so arrivals either start a
  // session or are dropped; every one is offered.
  RefusingPort refusing;
  EventLoops loops(1);
  v1::ShardAssignment a = Assignment("http://127.0.0.1:" + std::to_string(refusing.port()));
  auto* o = a.mutable_spec()->mutable_load()->mutable_open();
  o->set_rate_per_second(200);
  o->set_distribution(v1::UNIFORM);
  o->set_seed(3);
  o->mutable_duration()->set_seconds(1);
  a.set_client_count(2);
  a.set_max_concurrent(2);
  a.set_rate_share(1.0);
  auto runner = ShardRunner::Create(loops, a);
  ASSERT_TRUE(runner.ok()) << runner.status();
  (*runner)->Start();
  const absl::Time deadline = testing_util::MonoNow() + absl::Seconds(10);
  while (!(*runner)->Finished() && testing_util::MonoNow() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE((*runner)->Finished());
  metrics::MetricSet m;
  (*runner)->CutInto(m);
  EXPECT_NEAR(static_cast<double>(m.Get(v1::OFFERED)), 200.0, 1.0);
  EXPECT_EQ(m.Get(v1::OFFERED), m.Get(v1::DROPPED) + m.Get(v1::SESSIONS_FAILED));
  EXPECT_GT(m.Get(v1::SESSIONS_FAILED), 0u);
  runner->reset();
  loops.Stop();
}

// A loopback port that accepts TCP connections (the kernel's backlog does)
// and never answers: WebSocket upgrades sent to it stay pending.
class SilentPort {
 public:
  SilentPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 4096);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentPort() {
    for (int fd : accepted_) {
      ::close(fd);
    }
    ::close(fd_);
  }
  int port() const { return port_; }
  // Accepts whatever is pending; the number accepted so far.
  size_t AcceptPending() {
    for (int fd; (fd = ::accept(fd_, nullptr, nullptr)) >= 0;) {
      accepted_.push_back(fd);
    }
    return accepted_.size();
  }

 private:
  int fd_;
  int port_ = 0;
  std::vector<int> accepted_;
};

TEST(ShardRunnerTest, AtMostMaxConnectingSessionsSetUpAtOnce) {
  // 600 WebSocket sessions to a target that never finishes an upgrade: only
  // kMaxConnecting of them may be connecting at any time, the others wait.
  SilentPort silent;
  EventLoops loops(1);
  v1::ShardAssignment a = Assignment("ws://127.0.0.1:" + std::to_string(silent.port()) + "/ws");
  a.mutable_spec()->mutable_target()->set_protocol(v1::WS_CHAT);
  a.mutable_spec()->mutable_target()->mutable_connect_timeout()->set_seconds(30);
  a.mutable_spec()->mutable_load()->mutable_closed()->set_clients(600);
  a.mutable_spec()->mutable_load()->mutable_closed()->set_cycles_per_client(1);
  a.set_client_count(600);
  a.set_max_concurrent(600);
  auto runner = ShardRunner::Create(loops, a);
  ASSERT_TRUE(runner.ok()) << runner.status();
  (*runner)->Start();
  const absl::Time deadline = testing_util::MonoNow() + absl::Seconds(10);
  while (silent.AcceptPending() < LoopShard::kMaxConnecting && testing_util::MonoNow() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  absl::SleepFor(absl::Milliseconds(300));  // time for any excess to show
  EXPECT_EQ(silent.AcceptPending(), static_cast<size_t>(LoopShard::kMaxConnecting));
  // Cancelled, every session ends, the queued ones included.
  (*runner)->Cancel();
  const absl::Time cancel_deadline = testing_util::MonoNow() + absl::Seconds(5);
  while (!(*runner)->Finished() && testing_util::MonoNow() < cancel_deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE((*runner)->Finished());
  EXPECT_EQ((*runner)->active_sessions(), 0);
  runner->reset();
  loops.Stop();
}

TEST(ShardRunnerTest, MovedWorkRunsItsClientSpansAndReportsEachClient) {
  // Work moved from a lost worker: explicit clients, each with the cycles
  // it has left. Every session fails here; what matters is which clients
  // run and that each is reported, in the cut, as done.
  RefusingPort refusing;
  EventLoops loops(2);
  v1::ShardAssignment a = Assignment("http://127.0.0.1:" + std::to_string(refusing.port()));
  a.set_epoch(7);
  a.set_client_begin(10);
  a.set_client_count(3);
  for (auto [begin, count, cycles] : {std::tuple{10, 2, 4}, std::tuple{20, 1, 1}}) {
    v1::ClientSpan* span = a.add_clients();
    span->set_begin(begin);
    span->set_count(count);
    span->set_cycles(cycles);
  }
  auto runner = ShardRunner::Create(loops, a);
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->epoch(), 7u);
  EXPECT_EQ((*runner)->cycles_total(), 9);
  (*runner)->Start();
  const absl::Time deadline = testing_util::MonoNow() + absl::Seconds(10);
  while (!(*runner)->Finished() && testing_util::MonoNow() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE((*runner)->Finished());
  metrics::MetricSet m;
  ShardRunner::CutExtras cut;
  (*runner)->CutInto(m, &cut);
  EXPECT_EQ(m.Get(v1::SESSIONS_FAILED), 3u);
  std::vector<int32_t> ids;
  for (const v1::ClientCycles& c : cut.clients) {
    ids.push_back(c.client());
    EXPECT_TRUE(c.closed()) << c.client();
    EXPECT_EQ(c.started(), c.ended()) << c.client();
  }
  EXPECT_EQ(ids, (std::vector<int32_t>{10, 11, 20}));
  runner->reset();
  loops.Stop();
}

TEST(ShardRunnerTest, DrainEndsTheShardEarlyWithoutClosingItsClients) {
  RefusingPort refusing;
  EventLoops loops(1);
  v1::ShardAssignment a = Assignment("http://127.0.0.1:" + std::to_string(refusing.port()));
  auto* d = a.mutable_spec()->mutable_load()->mutable_duration();
  d->set_connections(5);
  d->mutable_duration()->set_seconds(60);
  auto runner = ShardRunner::Create(loops, a);
  ASSERT_TRUE(runner.ok()) << runner.status();
  (*runner)->Start();
  const absl::Time start = testing_util::MonoNow();
  (*runner)->Drain(std::chrono::milliseconds(200));
  EXPECT_TRUE((*runner)->drained());
  while (!(*runner)->Finished() && testing_util::MonoNow() < start + absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE((*runner)->Finished());
  EXPECT_LT(testing_util::MonoNow() - start, absl::Seconds(5));
  EXPECT_FALSE((*runner)->cancelled());
  runner->reset();
  loops.Stop();
}

}  // namespace
}  // namespace llmload::worker
