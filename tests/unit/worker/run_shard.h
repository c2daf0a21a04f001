// File: run_shard.h
//
// What the session-driver tests share: run one shard assignment on one
// event loop until every session has ended (or 20 s have passed), and hand
// back what it measured.

#pragma once

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/worker/event_loops.h"
#include "services/worker/shard.h"
#include "tests/testing/mono_clock.h"

namespace llmload::worker {

inline metrics::MetricSet RunToEnd(const v1::ShardAssignment& assignment) {
  EventLoops loops(1);
  auto runner = ShardRunner::Create(loops, assignment);
  EXPECT_TRUE(runner.ok()) << runner.status();
  metrics::MetricSet m;
  if (!runner.ok()) {
    return m;
  }
  (*runner)->Start();
  const absl::Time deadline = testing_util::MonoNow() + absl::Seconds(20);
  while (!(*runner)->Finished() && testing_util::MonoNow() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_TRUE((*runner)->Finished());
  (*runner)->CutInto(m);
  runner->reset();
  loops.Stop();
  return m;
}

}  // namespace llmload::worker
