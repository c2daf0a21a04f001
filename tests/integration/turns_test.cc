// Multi-turn conversations end to end: the real emulator, collector,
// orchestrator and two workers on loopback ports. Each session holds
// conversations of three turns; the SSE providers resend the history with
// the answers received, so the emulator's prompt token count (every
// message's words) grows by the previous turn's question and answer, and
// the run's per-turn table shows exactly that, whichever worker runs which
// client.

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/common/grpc_util.h"
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

}  // namespace
}  // namespace llmload
