// A load generator that is the bottleneck says so: a worker whose event
// loops are stalled on purpose (the test hook LLMLOAD_TEST_STALL_LOOPS_MS,
// compiled into test builds only) flags the run while it is running —
// WatchRun shows it live — and the finished run keeps the flag, an event and
// a warning; `llmload report --format json` carries it. (That a busy but
// healthy worker is not flagged is unit-tested with scripted heartbeats: a
// real worker's lag depends on how loaded the machine is.)

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/mono_clock.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

v1::RunSpec Spec(const std::string& url) {
  v1::RunSpec spec;
  spec.set_name("saturation");
  spec.mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
  spec.mutable_target()->set_url(url);
  // 2 clients x 4 requests of 30 tokens 10 ms apart: about 1.2 s, several
  // heartbeats.
  spec.mutable_load()->mutable_closed()->set_clients(2);
  spec.mutable_load()->mutable_closed()->set_cycles_per_client(4);
  spec.mutable_emulation()->set_length_words(30);
  spec.mutable_emulation()->mutable_token_delay()->set_nanos(10000000);
  return spec;
}

class SaturationTest : public testing_util::StackTest {
 protected:
  void Start(bool stall) {
    testing_util::StackOptions options;
    options.workers = 1;
    if (stall) {
      options.worker_env = {"LLMLOAD_TEST_STALL_LOOPS_MS=200"};
    }
    StartStack(options);
  }

  static bool Mentions(const google::protobuf::RepeatedPtrField<std::string>& lines,
                       const std::string& needle) {
    for (const std::string& l : lines) {
      if (absl::StrContains(l, needle)) {
        return true;
      }
    }
    return false;
  }
};

TEST_F(SaturationTest, AStalledWorkerFlagsTheRunLiveAndInItsResult) {
  Start(/*stall=*/true);
  v1::Run started = StartRun(Spec(EmulatorUrl()));
  ASSERT_FALSE(started.id().empty());
  grpc::ClientContext ctx;
  ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(60)));
  v1::WatchRunRequest req;
  req.set_id(started.id());
  auto reader = stub_->WatchRun(&ctx, req);
  v1::RunUpdate update;
  bool flagged_while_running = false;
  while (reader->Read(&update)) {
    if (update.run().generator_saturated() && update.run().state() == v1::RUNNING) {
      flagged_while_running = true;
    }
  }
  EXPECT_TRUE(flagged_while_running) << "WatchRun never showed the flag during the run";
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  EXPECT_EQ(run.progress().requests_ok(), 8);  // the stall delays, loses nothing
  EXPECT_TRUE(run.generator_saturated());
  EXPECT_GT(run.max_loop_lag_ms(), 50);
  bool event = false;
  for (const v1::RunEvent& e : run.events()) {
    event = event || absl::StrContains(e.message(), "worker-0 saturated");
  }
  EXPECT_TRUE(event);
  EXPECT_TRUE(Mentions(run.warnings(), "the load generator, not the target, may be the limit"));

  testing_util::ShellResult json = testing_util::RunShell(
      absl::StrCat(testing_util::BinPath("llmload"), " report ", run.id(), " --format json",
                   " --orchestrator 127.0.0.1:", orchestrator_port_,
                   " --collector 127.0.0.1:", collector_port_),
      /*with_stderr=*/false);
  ASSERT_EQ(json.exit_code, 0) << json.output;
  EXPECT_NE(json.output.find("\"generator_saturated\": true"), std::string::npos) << json.output;
}

}  // namespace
}  // namespace llmload
