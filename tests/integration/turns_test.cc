// Multi-turn conversations and warm-up / cool-down end to end: the real
// emulator, collector, orchestrator and two workers on loopback ports.
//
// Each session holds conversations of three turns; the SSE providers resend
// the history with the answers received, so the emulator's prompt token
// count (every message's words) grows by the previous turn's question and
// answer, and the run's per-turn table shows exactly that, whichever worker
// runs which client.
//
// Warm-up requests reach the target but only the warm-up counters: the
// run's offered, ok, tokens and latencies hold the counted requests alone,
// and the accounting identity stays exact.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/common/grpc_util.h"
#include "tests/testing/emulator_stats.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

constexpr int kClients = 2;
constexpr int kTurns = 3;
constexpr int kConversations = 2;  // per client
constexpr int kCycles = kTurns * kConversations;
constexpr uint64_t kQuestionWords = 3;
constexpr uint64_t kAnswerWords = 5;

class TurnsTest : public testing_util::StackTest,
                  public testing::WithParamInterface<v1::Protocol> {
 protected:
  void SetUp() override {
    testing_util::StackOptions options;
    options.workers = 2;
    StartStack(options);
  }
};

TEST_P(TurnsTest, EachTurnResendsTheHistoryWithTheAnswersReceived) {
  v1::RunSpec spec;
  spec.set_name(absl::StrCat("turns-", v1::Protocol_Name(GetParam())));
  v1::Target* t = spec.mutable_target();
  t->set_protocol(GetParam());
  t->set_url(EmulatorUrl());
  t->set_model("emu-model");
  t->set_prompt("alpha beta gamma");  // kQuestionWords
  t->set_max_tokens(static_cast<int32_t>(kAnswerWords));
  t->set_turns(kTurns);
  auto* closed = spec.mutable_load()->mutable_closed();
  closed->set_clients(kClients);
  closed->set_cycles_per_client(kCycles);  // a cycle is one turn
  closed->set_max_concurrent(kClients);
  spec.mutable_emulation()->mutable_token_delay()->set_nanos(1000 * 1000);

  const v1::Run started = StartRun(spec);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  const v1::RunStats& st = run.stats();
  constexpr uint64_t kRequests = kClients * kCycles;
  EXPECT_EQ(CounterOf(st, v1::REQUESTS_OK), kRequests);
  EXPECT_EQ(CounterOf(st, v1::OFFERED), kRequests);
  EXPECT_EQ(CounterOf(st, v1::TOKENS), kRequests * kAnswerWords);
  EXPECT_EQ(CounterOf(st, v1::INPUT_TOKENS_ESTIMATED), 0u);  // the target's own usage

  // Turn k sends k questions and the k - 1 answers before it.
  ASSERT_EQ(st.turns_size(), kTurns);
  uint64_t input = 0;
  for (int k = 1; k <= kTurns; ++k) {
    const v1::TurnStats& turn = st.turns(k - 1);
    const uint64_t per_request =
        static_cast<uint64_t>(k) * kQuestionWords + static_cast<uint64_t>(k - 1) * kAnswerWords;
    SCOPED_TRACE(absl::StrCat("turn ", k));
    EXPECT_EQ(turn.turn(), k);
    EXPECT_EQ(turn.requests(), static_cast<uint64_t>(kClients * kConversations));
    EXPECT_EQ(turn.input_tokens(), per_request * kClients * kConversations);
    EXPECT_DOUBLE_EQ(turn.input_tokens_mean(), static_cast<double>(per_request));
    EXPECT_EQ(turn.tokens(), kAnswerWords * kClients * kConversations);
    EXPECT_EQ(turn.ttft().count(), static_cast<uint64_t>(kClients * kConversations));
    input += turn.input_tokens();
  }
  EXPECT_EQ(CounterOf(st, v1::INPUT_TOKENS), input);
  // The per-turn histograms are apart: the run's ttft counts each request once.
  bool found = false;
  for (const v1::MetricStats& m : st.metrics()) {
    if (m.metric() == "ttft") {
      found = true;
      EXPECT_EQ(m.count(), kRequests);
    }
  }
  EXPECT_TRUE(found);
}

INSTANTIATE_TEST_SUITE_P(SseProviders, TurnsTest,
                         testing::Values(v1::OPENAI_CHAT, v1::ANTHROPIC_MESSAGES, v1::GEMINI),
                         [](const testing::TestParamInfo<v1::Protocol>& info) {
                           return v1::Protocol_Name(info.param);
                         });

// WS chat keeps the conversation of a connection on the server: the worker
// sends each turn's message alone and clears the history before turn 1 of
// the next conversation, so the emulator sees every conversation go through
// turns 1 to 3 and never further.
class ServerTurnsTest : public testing_util::StackTest {
 protected:
  void SetUp() override {
    testing_util::StackOptions options;
    options.workers = 2;
    StartStack(options);
  }

  std::vector<uint64_t> WsChatTurns() {
    std::map<int64_t, testing_util::EmulatorStats> by_pid;
    EXPECT_TRUE(testing_util::CollectEmulatorStats(emulator_port_, 1, absl::Seconds(10), &by_pid));
    return by_pid.empty() ? std::vector<uint64_t>() : by_pid.begin()->second.ws_chat_turns;
  }
};

TEST_F(ServerTurnsTest, WsChatHoldsOneConversationPerSessionForItsTurns) {
  v1::RunSpec spec;
  spec.set_name("turns-ws-chat");
  v1::Target* t = spec.mutable_target();
  t->set_protocol(v1::WS_CHAT);
  t->set_url(absl::StrCat("ws://127.0.0.1:", emulator_port_, "/api/ws"));
  t->set_prompt("alpha beta gamma");
  t->set_max_tokens(static_cast<int32_t>(kAnswerWords));
  t->set_turns(kTurns);
  auto* closed = spec.mutable_load()->mutable_closed();
  closed->set_clients(kClients);
  closed->set_cycles_per_client(kCycles);
  closed->set_max_concurrent(kClients);
  spec.mutable_emulation()->mutable_token_delay()->set_nanos(1000 * 1000);
  const std::vector<uint64_t> before = WsChatTurns();
  ASSERT_EQ(before.size(), 16u);

  const v1::Run started = StartRun(spec);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  const v1::RunStats& st = run.stats();
  constexpr uint64_t kRequests = kClients * kCycles;
  EXPECT_EQ(CounterOf(st, v1::REQUESTS_OK), kRequests);
  EXPECT_EQ(CounterOf(st, v1::SESSIONS_OPENED), static_cast<uint64_t>(kClients));
  EXPECT_EQ(CounterOf(st, v1::TOKENS), kRequests * kAnswerWords);

  // The server saw each conversation's turns 1 to 3, once per conversation.
  const std::vector<uint64_t> after = WsChatTurns();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i] - before[i], i < kTurns ? uint64_t{kClients * kConversations} : 0u)
        << "turn " << i + 1;
  }
  // And the run's table has them by turn (the emulator's promptTokens counts
  // the message sent).
  ASSERT_EQ(st.turns_size(), kTurns);
  for (const v1::TurnStats& turn : st.turns()) {
    EXPECT_EQ(turn.requests(), static_cast<uint64_t>(kClients * kConversations));
    EXPECT_EQ(turn.input_tokens(), kQuestionWords * kClients * kConversations);
    EXPECT_EQ(turn.tokens(), kAnswerWords * kClients * kConversations);
  }
}

class PhasesTest : public testing_util::StackTest {
 protected:
  void SetUp() override {
    testing_util::StackOptions options;
    options.workers = 2;
    StartStack(options);
  }

  static uint64_t Accounted(const v1::RunStats& st) {
    uint64_t failed = 0;
    for (v1::Counter c : {v1::CONNECT_FAILED, v1::HTTP_4XX, v1::HTTP_5XX, v1::RATE_LIMITED,
                          v1::PROTOCOL_ERROR, v1::TIMEOUT, v1::DISCONNECTED}) {
      failed += CounterOf(st, c);
    }
    return CounterOf(st, v1::REQUESTS_OK) + failed +
           CounterOf(st, v1::REQUESTS_CANCELLED) +
           CounterOf(st, v1::LOST) +
           CounterOf(st, v1::DROPPED) +
           CounterOf(st, v1::UNFINISHED);
  }

  static uint64_t MetricCount(const v1::RunStats& st, const std::string& name) {
    for (const v1::MetricStats& m : st.metrics()) {
      if (m.metric() == name) {
        return m.count();
      }
    }
    return 0;
  }

  uint64_t EmulatorRequests() {
    std::map<int64_t, testing_util::EmulatorStats> by_pid;
    EXPECT_TRUE(testing_util::CollectEmulatorStats(emulator_port_, 1, absl::Seconds(10), &by_pid));
    return by_pid.empty() ? 0 : by_pid.begin()->second.RequestsOf("OPENAI_CHAT");
  }

  v1::RunSpec Spec() {
    v1::RunSpec spec;
    spec.set_name("phases");
    v1::Target* t = spec.mutable_target();
    t->set_protocol(v1::OPENAI_CHAT);
    t->set_url(EmulatorUrl());
    t->set_model("emu-model");
    t->set_prompt("alpha beta gamma");
    t->set_max_tokens(static_cast<int32_t>(kAnswerWords));
    spec.mutable_emulation()->mutable_token_delay()->set_nanos(1000 * 1000);
    return spec;
  }
};

TEST_F(PhasesTest, WarmupRequestsAreRunButCountedApart) {
  v1::RunSpec spec = Spec();
  auto* closed = spec.mutable_load()->mutable_closed();
  closed->set_clients(3);
  closed->set_cycles_per_client(4);
  closed->set_max_concurrent(3);
  // Split over the clients: 2, 2 and 1, on top of their 4 cycles.
  spec.mutable_warmup()->set_requests(5);
  const uint64_t before = EmulatorRequests();

  const v1::Run started = StartRun(spec);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  const v1::RunStats& st = run.stats();
  EXPECT_EQ(CounterOf(st, v1::WARMUP_REQUESTS), 5u);
  EXPECT_EQ(CounterOf(st, v1::WARMUP_FAILED), 0u);
  EXPECT_EQ(CounterOf(st, v1::WARMUP_TOKENS), 5u * kAnswerWords);
  EXPECT_EQ(CounterOf(st, v1::OFFERED), 12u);
  EXPECT_EQ(CounterOf(st, v1::REQUESTS_OK), 12u);
  EXPECT_EQ(CounterOf(st, v1::CYCLES), 12u);
  EXPECT_EQ(CounterOf(st, v1::TOKENS), 12u * kAnswerWords);
  EXPECT_EQ(CounterOf(st, v1::INPUT_TOKENS), 12u * kQuestionWords);
  EXPECT_EQ(MetricCount(st, "ttft"), 12u);
  EXPECT_EQ(MetricCount(st, "e2e"), 12u);
  EXPECT_EQ(CounterOf(st, v1::SESSIONS_OPENED), 3u);
  EXPECT_EQ(Accounted(st), CounterOf(st, v1::OFFERED));
  EXPECT_EQ(run.progress().cycles_done(), 12);
  // The target saw every one of them.
  EXPECT_EQ(EmulatorRequests() - before, 17u);
}

TEST_F(PhasesTest, TimedWarmupAndCooldownKeepTheIdentityExact) {
  v1::RunSpec spec = Spec();
  auto* d = spec.mutable_load()->mutable_duration();
  d->set_connections(2);
  d->mutable_duration()->set_seconds(3);
  spec.mutable_warmup()->mutable_duration()->set_nanos(800 * 1000 * 1000);
  spec.mutable_cooldown()->mutable_duration()->set_nanos(800 * 1000 * 1000);
  const uint64_t before = EmulatorRequests();

  const v1::Run started = StartRun(spec);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  const v1::RunStats& st = run.stats();
  const uint64_t warm = CounterOf(st, v1::WARMUP_REQUESTS);
  const uint64_t cool = CounterOf(st, v1::COOLDOWN_REQUESTS);
  const uint64_t ok = CounterOf(st, v1::REQUESTS_OK);
  EXPECT_GT(warm, 0u);
  EXPECT_GT(cool, 0u);
  EXPECT_GT(ok, 0u);
  EXPECT_EQ(Accounted(st), CounterOf(st, v1::OFFERED));
  EXPECT_EQ(CounterOf(st, v1::WARMUP_TOKENS), warm * kAnswerWords);
  EXPECT_EQ(CounterOf(st, v1::COOLDOWN_TOKENS), cool * kAnswerWords);
  EXPECT_EQ(CounterOf(st, v1::TOKENS), ok * kAnswerWords);
  EXPECT_EQ(MetricCount(st, "ttft"), ok);
  // Every request the target answered is in exactly one of the three parts.
  EXPECT_EQ(EmulatorRequests() - before,
            ok + warm + cool + CounterOf(st, v1::UNFINISHED) + CounterOf(st, v1::DROPPED));
}

TEST_F(PhasesTest, OpenModelArrivalsTakeThePhaseOfTheirTime) {
  v1::RunSpec spec = Spec();
  auto* o = spec.mutable_load()->mutable_open();
  o->set_rate_per_second(40);
  o->mutable_duration()->set_seconds(2);
  o->set_distribution(v1::UNIFORM);
  spec.mutable_warmup()->mutable_duration()->set_nanos(500 * 1000 * 1000);
  spec.mutable_cooldown()->mutable_duration()->set_nanos(500 * 1000 * 1000);
  const uint64_t before = EmulatorRequests();

  const v1::Run started = StartRun(spec);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  const v1::RunStats& st = run.stats();
  const uint64_t warm = CounterOf(st, v1::WARMUP_REQUESTS);
  const uint64_t cool = CounterOf(st, v1::COOLDOWN_REQUESTS);
  const uint64_t offered = CounterOf(st, v1::OFFERED);
  // 80 equally spaced arrivals: about a quarter in each phase, half counted.
  EXPECT_NEAR(static_cast<double>(warm), 20, 2);
  EXPECT_NEAR(static_cast<double>(cool), 20, 2);
  EXPECT_NEAR(static_cast<double>(offered), 40, 2);
  EXPECT_NEAR(static_cast<double>(warm + cool + offered), 80, 1);
  EXPECT_EQ(Accounted(st), offered);
  EXPECT_EQ(CounterOf(st, v1::DROPPED), 0u);
  EXPECT_EQ(MetricCount(st, "ttft"), CounterOf(st, v1::REQUESTS_OK));
  EXPECT_EQ(EmulatorRequests() - before,
            CounterOf(st, v1::REQUESTS_OK) + warm + cool + CounterOf(st, v1::UNFINISHED));
}

}  // namespace
}  // namespace llmload
