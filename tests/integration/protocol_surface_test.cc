// Each protocol's wider surface end to end: the real emulator, collector,
// orchestrator and two workers on loopback ports.
//
//   OPENAI_RESPONSES  POST /v1/responses, streamed and not: exact requests,
//                     output tokens (one word per output_text.delta) and
//                     input tokens (the target's usage.input_tokens).
//   WS_CHAT tools     options.tools: the emulator runs each tool (tool_call
//                     start + complete, then tool_result) before the text;
//                     the worker counts distinct tool calls and results and
//                     times the first of each, merged by the collector.
//   REALM functions   target.realmFunction: health, metadata and pipeline
//                     calls (the emulator's /stats counts each function it
//                     answered) and generate without streaming.

#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "tests/testing/emulator_stats.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

constexpr int kClients = 4;
constexpr int kCycles = 5;
constexpr uint64_t kRequests = kClients * kCycles;

class ProtocolSurfaceTest : public testing_util::StackTest {
 protected:
  void SetUp() override {
    testing_util::StackOptions options;
    options.workers = 2;
    StartStack(options);
  }

  v1::RunSpec Spec(v1::Protocol protocol, const std::string& url) {
    v1::RunSpec spec;
    spec.set_name(absl::StrCat("surface-", v1::Protocol_Name(protocol)));
    spec.mutable_target()->set_protocol(protocol);
    spec.mutable_target()->set_url(url);
    spec.mutable_target()->set_model("emu-model");
    spec.mutable_target()->set_prompt("one two three four");  // 4 input tokens
    auto* closed = spec.mutable_load()->mutable_closed();
    closed->set_clients(kClients);
    closed->set_cycles_per_client(kCycles);
    closed->set_max_concurrent(kClients);
    spec.mutable_emulation()->mutable_token_delay()->set_nanos(1000 * 1000);
    return spec;
  }

  v1::Run Run(const v1::RunSpec& spec) {
    const v1::Run started = StartRun(spec);
    const v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
    EXPECT_EQ(run.state(), v1::COMPLETED) << run.error();
    EXPECT_EQ(CounterOf(run.stats(), v1::REQUESTS_OK), kRequests);
    EXPECT_EQ(CounterOf(run.stats(), v1::PROTOCOL_ERROR), 0u);
    EXPECT_EQ(CounterOf(run.stats(), v1::HTTP_5XX), 0u);
    return run;
  }

  // Realm calls of `function` (health, metadata, pipeline) the emulator
  // has answered so far.
  uint64_t EmulatorRealmCalls(const std::string& function) {
    std::map<int64_t, testing_util::EmulatorStats> by_pid;
    EXPECT_TRUE(testing_util::CollectEmulatorStats(emulator_port_, 1, absl::Seconds(10), &by_pid));
    uint64_t n = 0;
    for (const auto& [pid, stats] : by_pid) {
      auto it = stats.realm_functions.find(function);
      n += it == stats.realm_functions.end() ? 0 : it->second;
    }
    return n;
  }

  // Requests of `protocol` the emulator has answered so far.
  uint64_t EmulatorRequests(const std::string& protocol) {
    std::map<int64_t, testing_util::EmulatorStats> by_pid;
    EXPECT_TRUE(testing_util::CollectEmulatorStats(emulator_port_, 1, absl::Seconds(10), &by_pid));
    uint64_t n = 0;
    for (const auto& [pid, stats] : by_pid) {
      n += stats.RequestsOf(protocol);
    }
    return n;
  }
};

TEST_F(ProtocolSurfaceTest, OpenAiResponsesStreamsExactTokens) {
  v1::RunSpec spec = Spec(v1::OPENAI_RESPONSES, EmulatorUrl());
  spec.mutable_target()->set_max_tokens(7);  // max_output_tokens: the emulator's length
  const v1::Run run = Run(spec);
  EXPECT_EQ(CounterOf(run.stats(), v1::TOKENS), kRequests * 7);
  // Every delta is one word: one content event per token.
  EXPECT_EQ(CounterOf(run.stats(), v1::CHUNKS), kRequests * 7);
  EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS), kRequests * 4);
  EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS_ESTIMATED), 0u);  // usage.input_tokens
  const v1::MetricStats* ttft = MetricOf(run.stats(), v1::TTFT);
  ASSERT_NE(ttft, nullptr);
  EXPECT_EQ(ttft->count(), kRequests);
  EXPECT_EQ(EmulatorRequests("OPENAI_RESPONSES"), kRequests);
  EXPECT_EQ(EmulatorRequests("OPENAI_CHAT"), 0u);
}

TEST_F(ProtocolSurfaceTest, OpenAiResponsesWithoutStreaming) {
  v1::RunSpec spec = Spec(v1::OPENAI_RESPONSES, EmulatorUrl());
  spec.mutable_target()->set_max_tokens(5);
  spec.mutable_target()->set_no_stream(true);
  const v1::Run run = Run(spec);
  EXPECT_EQ(CounterOf(run.stats(), v1::TOKENS), kRequests * 5);
  EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS), kRequests * 4);
  EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS_ESTIMATED), 0u);
  EXPECT_EQ(EmulatorRequests("OPENAI_RESPONSES"), kRequests);
}

TEST_F(ProtocolSurfaceTest, WsChatToolCallsAndResultsAreCountedAndTimed) {
  v1::RunSpec spec = Spec(v1::WS_CHAT, absl::StrCat("ws://127.0.0.1:", emulator_port_, "/api/ws"));
  spec.mutable_target()->set_max_tokens(3);
  spec.mutable_target()->add_tools("search");
  spec.mutable_target()->add_tools("calc");
  spec.mutable_target()->add_tools("fetch");
  const v1::Run run = Run(spec);
  // Three tools per request: three distinct toolCallIds (each announced by
  // a start and a complete frame) and three tool_result frames.
  EXPECT_EQ(CounterOf(run.stats(), v1::TOOL_CALLS), kRequests * 3);
  EXPECT_EQ(CounterOf(run.stats(), v1::TOOL_RESULTS), kRequests * 3);
  EXPECT_EQ(CounterOf(run.stats(), v1::TOKENS), kRequests * 3);
  for (v1::Metric m : {v1::TIME_TO_TOOL_CALL, v1::TIME_TO_TOOL_RESULT}) {
    const v1::MetricStats* s = MetricOf(run.stats(), m);
    ASSERT_NE(s, nullptr) << v1::Metric_Name(m);
    EXPECT_EQ(s->count(), kRequests) << v1::Metric_Name(m);  // one per request
  }
  // The tools run before the answer's text: time to tool_result <= ttft.
  const v1::MetricStats* result = MetricOf(run.stats(), v1::TIME_TO_TOOL_RESULT);
  const v1::MetricStats* ttft = MetricOf(run.stats(), v1::TTFT);
  ASSERT_NE(ttft, nullptr);
  EXPECT_LE(result->min_ms(), ttft->max_ms());
}

TEST_F(ProtocolSurfaceTest, WsChatWithoutToolsHasNoToolFrames) {
  v1::RunSpec spec = Spec(v1::WS_CHAT, absl::StrCat("ws://127.0.0.1:", emulator_port_, "/api/ws"));
  spec.mutable_target()->set_max_tokens(3);
  const v1::Run run = Run(spec);
  EXPECT_EQ(CounterOf(run.stats(), v1::TOOL_CALLS), 0u);
  EXPECT_EQ(CounterOf(run.stats(), v1::TOOL_RESULTS), 0u);
  const v1::MetricStats* s = MetricOf(run.stats(), v1::TIME_TO_TOOL_CALL);
  EXPECT_TRUE(s == nullptr || s->count() == 0u);
}

// Realm calls other than a streamed generate (target.realmFunction): each
// request calls the spec's function; the emulator's own count of the calls
// it answered is the ground truth. health and metadata carry no prompt and
// produce no tokens; a pipeline's output text is not a token stream.
TEST_F(ProtocolSurfaceTest, RealmHealthMetadataAndPipelineCalls) {
  const std::string url = absl::StrCat("ws://127.0.0.1:", emulator_port_, "/");
  struct Case {
    v1::RealmFunction function;
    const char* name;
  };
  for (const Case& c : {Case{v1::REALM_HEALTH, "health"}, Case{v1::REALM_METADATA, "metadata"},
                        Case{v1::REALM_PIPELINE, "pipeline"}}) {
    SCOPED_TRACE(c.name);
    const uint64_t before = EmulatorRealmCalls(c.name);
    const uint64_t generates_before = EmulatorRequests("REALM");
    v1::RunSpec spec = Spec(v1::REALM, url);
    spec.mutable_target()->set_realm_function(c.function);
    if (c.function == v1::REALM_PIPELINE) {
      spec.mutable_target()->set_realm_pipeline("summarize");
    }
    const v1::Run run = Run(spec);
    EXPECT_EQ(EmulatorRealmCalls(c.name) - before, kRequests);
    EXPECT_EQ(EmulatorRequests("REALM") - generates_before, 0u);  // no generate went out
    EXPECT_EQ(CounterOf(run.stats(), v1::TOKENS), 0u);
    EXPECT_EQ(CounterOf(run.stats(), v1::CHUNKS), 0u);
    const v1::MetricStats* e2e = MetricOf(run.stats(), v1::E2E);
    ASSERT_NE(e2e, nullptr);
    EXPECT_EQ(e2e->count(), kRequests);
    const v1::MetricStats* ttft = MetricOf(run.stats(), v1::TTFT);
    EXPECT_TRUE(ttft == nullptr || ttft->count() == 0u);
    // The pipeline's input is the prompt (its tokens estimated: a pipeline
    // reports none, ceil(18 bytes / 4) = 5); health and metadata send none.
    const uint64_t input = c.function == v1::REALM_PIPELINE ? kRequests * 5 : 0u;
    EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS), input);
    EXPECT_EQ(CounterOf(run.stats(), v1::INPUT_TOKENS_ESTIMATED), input);
  }
}

TEST_F(ProtocolSurfaceTest, RealmGenerateWithoutStreaming) {
  v1::RunSpec spec = Spec(v1::REALM, absl::StrCat("ws://127.0.0.1:", emulator_port_, "/"));
  spec.mutable_target()->set_max_tokens(6);
  spec.mutable_target()->set_no_stream(true);
  const uint64_t generates_before = EmulatorRequests("REALM");
  const v1::Run run = Run(spec);
  EXPECT_EQ(EmulatorRequests("REALM") - generates_before, kRequests);
  // One complete answer per request: its tokens_generated, no streamed
  // chunk, so no time to first token.
  EXPECT_EQ(CounterOf(run.stats(), v1::TOKENS), kRequests * 6);
  EXPECT_EQ(CounterOf(run.stats(), v1::CHUNKS), 0u);
  const v1::MetricStats* ttft = MetricOf(run.stats(), v1::TTFT);
  EXPECT_TRUE(ttft == nullptr || ttft->count() == 0u);
  const v1::MetricStats* e2e = MetricOf(run.stats(), v1::E2E);
  ASSERT_NE(e2e, nullptr);
  EXPECT_EQ(e2e->count(), kRequests);
}

}  // namespace
}  // namespace llmload
