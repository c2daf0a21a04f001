#include "services/orchestrator/run_state.h"

#include "gtest/gtest.h"

namespace llmload::orchestrator {
namespace {

v1::Run TwoShardRun() {
  v1::RunSpec spec;
  spec.mutable_load()->mutable_closed()->set_clients(10);
  spec.mutable_load()->mutable_closed()->set_cycles_per_client(3);
  std::vector<planning::ShardPlan> plan(2);
  plan[0] = {0, "a", 0, 6, 2, 0};
  plan[1] = {1, "b", 6, 4, 1, 0};
  return NewRun("run-1", spec, plan, google::protobuf::Timestamp());
}

TEST(RunStateTest, NewRunIsPendingWithAssignedShards) {
  const v1::Run run = TwoShardRun();
  EXPECT_EQ(run.state(), v1::PENDING);
  ASSERT_EQ(run.shards_size(), 2);
  EXPECT_EQ(run.shards(0).state(), v1::SHARD_ASSIGNED);
  EXPECT_EQ(run.shards(0).progress().cycles_total(), 18);
  EXPECT_EQ(run.shards(1).progress().cycles_total(), 12);
  EXPECT_EQ(run.progress().cycles_total(), 30);
}

TEST(RunStateTest, SumProgressAddsShards) {
  v1::Run run = TwoShardRun();
  run.mutable_shards(0)->mutable_progress()->set_cycles_done(5);
  run.mutable_shards(0)->mutable_progress()->set_tokens(100);
  run.mutable_shards(1)->mutable_progress()->set_cycles_done(7);
  run.mutable_shards(1)->mutable_progress()->set_tokens(1);
  SumProgress(&run);
  EXPECT_EQ(run.progress().cycles_done(), 12);
  EXPECT_EQ(run.progress().tokens(), 101);
  EXPECT_EQ(run.progress().cycles_total(), 30);
}

TEST(RunStateTest, DecideState) {
  v1::Run run = TwoShardRun();
  run.set_state(v1::RUNNING);
  EXPECT_EQ(DecideState(run, false), v1::RUNNING);
  run.mutable_shards(0)->set_state(v1::SHARD_DONE);
  EXPECT_EQ(DecideState(run, false), v1::RUNNING);
  run.mutable_shards(1)->set_state(v1::SHARD_DONE);
  EXPECT_EQ(DecideState(run, false), v1::COMPLETED);
  EXPECT_EQ(DecideState(run, true), v1::CANCELLED);  // stop requested: done counts as settled
  run.mutable_shards(1)->set_state(v1::SHARD_CANCELLED);
  EXPECT_EQ(DecideState(run, true), v1::CANCELLED);
  // Cancelled without a stop, lost or drained: its work moves on; the run
  // goes on until that is settled, then counts it as done.
  EXPECT_EQ(DecideState(run, false), v1::RUNNING);
  for (v1::ShardState ended : {v1::SHARD_CANCELLED, v1::SHARD_LOST, v1::SHARD_DRAINED}) {
    run.mutable_shards(1)->set_state(ended);
    run.mutable_shards(1)->set_settled(false);
    EXPECT_EQ(DecideState(run, false), v1::RUNNING) << v1::ShardState_Name(ended);
    EXPECT_EQ(DecideState(run, true), v1::CANCELLED) << v1::ShardState_Name(ended);
    run.mutable_shards(1)->set_settled(true);
    EXPECT_EQ(DecideState(run, false), v1::COMPLETED) << v1::ShardState_Name(ended);
  }
  run.mutable_shards(1)->set_state(v1::SHARD_FAILED);
  EXPECT_EQ(DecideState(run, false), v1::FAILED);
  run.set_state(v1::COMPLETED);
  EXPECT_EQ(DecideState(run, false), v1::COMPLETED);  // terminal stays terminal
}

TEST(RunStateTest, FinishRunSetsErrorAndEvent) {
  v1::Run run = TwoShardRun();
  google::protobuf::Timestamp now;
  now.set_seconds(42);
  FinishRun(&run, v1::FAILED, now, "boom");
  EXPECT_EQ(run.state(), v1::FAILED);
  EXPECT_EQ(run.finished_at().seconds(), 42);
  EXPECT_EQ(run.error(), "boom");
  ASSERT_GT(run.events_size(), 0);
  EXPECT_EQ(run.events(run.events_size() - 1).message(), "run FAILED: boom");
}

TEST(RunStateTest, DescribeShard) {
  const v1::Run run = TwoShardRun();
  EXPECT_EQ(DescribeShard(run.shards(1)), "b: clients 6-9 (concurrency 1)");
}

}  // namespace
}  // namespace llmload::orchestrator
