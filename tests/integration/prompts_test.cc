// Prompts end to end: the real emulator, collector, orchestrator and two
// workers on loopback ports. Synthetic prompts and max_tokens drawn from
// distributions, and a message-list dataset sampled at random, give exactly
// the input and output token counts the seeded draws predict, whichever
// worker runs which client; a target without usage gets estimated input
// tokens, and the count says so.

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/load/prompts.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/common/grpc_util.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

constexpr int kClients = 4;
constexpr int kCycles = 5;

// Whitespace-separated words: the emulator's token count of a text.
uint64_t Words(const std::string& text) {
  uint64_t n = 0;
  for (absl::string_view w : absl::StrSplit(text, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
    (void)w;
    ++n;
  }
  return n;
}

class PromptsTest : public testing_util::StackTest {
 protected:
  void SetUp() override {
    testing_util::StackOptions options;
    options.workers = 2;
    StartStack(options);
  }

  v1::RunSpec Spec(v1::Protocol protocol, const std::string& url) {
    v1::RunSpec spec;
    spec.set_name(absl::StrCat("prompts-", v1::Protocol_Name(protocol)));
    spec.mutable_target()->set_protocol(protocol);
    spec.mutable_target()->set_url(url);
    spec.mutable_target()->set_model("emu-model");
    auto* closed = spec.mutable_load()->mutable_closed();
    closed->set_clients(kClients);
    closed->set_cycles_per_client(kCycles);
    closed->set_max_concurrent(kClients);
    // No lengthWords: the emulator answers max_tokens words.
    spec.mutable_emulation()->mutable_token_delay()->set_nanos(1000 * 1000);
    return spec;
  }

  v1::Run Run(const v1::RunSpec& spec) {
    const v1::Run started = StartRun(spec);
    const v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
    EXPECT_EQ(run.state(), v1::COMPLETED) << run.error();
    EXPECT_EQ(CounterOf(run.stats(), v1::REQUESTS_OK), static_cast<uint64_t>(kClients * kCycles));
    return run;
  }
};

TEST_F(PromptsTest, SyntheticLengthsGiveThePredictedTokenCounts) {
  v1::RunSpec spec = Spec(v1::OPENAI_CHAT, EmulatorUrl());
  v1::Target* t = spec.mutable_target();
  t->set_prompt_seed(17);
  t->mutable_input_length()->set_kind(v1::LENGTH_UNIFORM);
  t->mutable_input_length()->set_min(3);
  t->mutable_input_length()->set_max(40);
  t->mutable_output_length()->set_kind(v1::LENGTH_NORMAL);
  t->mutable_output_length()->set_mean(12);
  t->mutable_output_length()->set_stddev(4);
  t->mutable_output_length()->set_max(25);
  // A drawn max_tokens is also the emulator's length, over emulation.lengthWords.
  spec.mutable_emulation()->set_length_words(100);

  // What every (client, request) draws, wherever it runs.
  const load::PromptPlan plan(*t);
  uint64_t input = 0;
  uint64_t output = 0;
  for (int32_t c = 0; c < kClients; ++c) {
    for (int64_t r = 1; r <= kCycles; ++r) {
      const load::PromptPick p = plan.Pick(c, r);
      EXPECT_EQ(Words(std::string(plan.SyntheticText(p))), static_cast<uint64_t>(p.words));
      input += static_cast<uint64_t>(p.words);
      output += static_cast<uint64_t>(p.max_tokens);
    }
  }
  ASSERT_GT(input, 0u);

  const v1::Run run = Run(spec);
  EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS), input);
  EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS_ESTIMATED), 0u);  // usage.prompt_tokens
  EXPECT_EQ(CounterOf(run.stats(), v1::TOKENS), output);
}

TEST_F(PromptsTest, RandomMessageListsGiveThePredictedTokenCounts) {
  v1::RunSpec spec = Spec(v1::ANTHROPIC_MESSAGES, EmulatorUrl());
  v1::Target* t = spec.mutable_target();
  t->set_max_tokens(6);
  t->set_prompt_order(v1::PROMPT_ORDER_RANDOM);
  t->set_prompt_seed(3);
  const std::vector<std::vector<std::pair<std::string, std::string>>> dataset = {
      {{"system", "Answer in one line."}, {"user", "What is TCP?"}},
      {{"user", "Name a prime."}, {"assistant", "Seven."}, {"user", "Another one please"}},
      {{"user", "Hello"}},
  };
  for (const auto& conversation : dataset) {
    v1::PromptConversation* c = t->add_prompt_messages();
    for (const auto& [role, content] : conversation) {
      v1::PromptMessage* m = c->add_messages();
      m->set_role(role);
      m->set_content(content);
    }
  }
  // The emulator counts the words of the system text and of every message.
  const load::PromptPlan plan(*t);
  uint64_t input = 0;
  for (int32_t c = 0; c < kClients; ++c) {
    for (int64_t r = 1; r <= kCycles; ++r) {
      for (const auto& [role, content] : dataset[plan.Pick(c, r).entry]) {
        input += Words(content);
      }
    }
  }

  const v1::Run run = Run(spec);
  EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS), input);
  EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS_ESTIMATED), 0u);
  EXPECT_EQ(CounterOf(run.stats(), v1::TOKENS), static_cast<uint64_t>(kClients * kCycles * 6));
}

TEST_F(PromptsTest, TargetsWithoutUsageGetEstimatedInputTokens) {
  // The LLM emulator API (CENTRIFUGO_EMULATOR) takes one question and
  // reports no usage: a conversation sends its last user message, counted as
  // ceil(bytes / 4).
  v1::RunSpec spec = Spec(v1::CENTRIFUGO_EMULATOR, EmulatorUrl());
  spec.mutable_emulation()->set_length_words(4);
  v1::Target* t = spec.mutable_target();
  const std::vector<std::string> last_user = {"abcdefghi", "a much longer question here"};
  for (const std::string& text : last_user) {
    v1::PromptConversation* c = t->add_prompt_messages();
    v1::PromptMessage* m = c->add_messages();
    m->set_role("user");
    m->set_content("an earlier turn that is not sent");
    m = c->add_messages();
    m->set_role("assistant");
    m->set_content("ok");
    m = c->add_messages();
    m->set_role("user");
    m->set_content(text);
  }
  uint64_t estimated = 0;
  for (int32_t c = 0; c < kClients; ++c) {
    for (int64_t r = 1; r <= kCycles; ++r) {
      estimated += (last_user[static_cast<size_t>((c + r - 1) % 2)].size() + 3) / 4;  // cycled
    }
  }

  const v1::Run run = Run(spec);
  EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS), estimated);
  EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS_ESTIMATED), estimated);
  EXPECT_EQ(CounterOf(run.stats(), v1::TOKENS), static_cast<uint64_t>(kClients * kCycles * 4));
}

}  // namespace
}  // namespace llmload
