#include "services/orchestrator/run_store.h"

#include <stdlib.h>

#include <atomic>

#include "gtest/gtest.h"
#include "services/orchestrator/orchestrator_service.h"

namespace llmload::orchestrator {
namespace {

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = ::testing::TempDir() + "/" + prefix + "XXXXXX";
  char* dir = ::mkdtemp(tmpl.data());
  return dir != nullptr ? std::string(dir) : std::string();
}

v1::Run MakeRun(const std::string& id, v1::RunState state) {
  v1::Run run;
  run.set_id(id);
  run.set_state(state);
  run.mutable_created_at()->set_seconds(100);
  run.mutable_spec()->set_name("n-" + id);
  run.mutable_stats()->set_batches(9);  // never stored
  return run;
}

TEST(RunStoreTest, PutAndLoadRoundTrip) {
  const std::string path = MakeTempDir("runstore") + "/o.db";
  {
    auto store = RunStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Put(MakeRun("a", v1::RUNNING)).ok());
    ASSERT_TRUE((*store)->Put(MakeRun("b", v1::COMPLETED)).ok());
    ASSERT_TRUE((*store)->Put(MakeRun("a", v1::FAILED)).ok());  // replaces
  }
  auto store = RunStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto runs = (*store)->LoadAll();
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 2u);
  for (const v1::Run& run : *runs) {
    EXPECT_FALSE(run.has_stats());
    if (run.id() == "a") {
      EXPECT_EQ(run.state(), v1::FAILED);
    } else {
      EXPECT_EQ(run.state(), v1::COMPLETED);
      EXPECT_EQ(run.spec().name(), "n-b");
    }
  }
}

TEST(RunStoreTest, OpenFailsOnUnwritablePath) {
  auto store = RunStore::Open("/nonexistent-dir/x/o.db");
  EXPECT_FALSE(store.ok());
}

TEST(RunWriterTest, CoalescesAndRunsCallbacksAfterCommit) {
  const std::string path = MakeTempDir("runwriter") + "/o.db";
  auto store = RunStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  std::atomic<int> callbacks{0};
  {
    RunWriter writer(*std::move(store));
    for (int i = 0; i < 50; ++i) {
      v1::Run run = MakeRun("r" + std::to_string(i % 5), v1::RUNNING);
      run.mutable_progress()->set_cycles_done(i);
      writer.Enqueue(run, [&callbacks](absl::Status s) {
        EXPECT_TRUE(s.ok()) << s;
        ++callbacks;
      });
    }
    writer.Flush();
    EXPECT_EQ(callbacks.load(), 50);
    writer.Stop();
  }
  auto reopened = RunStore::Open(path);
  ASSERT_TRUE(reopened.ok());
  auto runs = (*reopened)->LoadAll();
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 5u);
  for (const v1::Run& run : *runs) {
    // The newest snapshot of each run won: i = 45..49.
    EXPECT_GE(run.progress().cycles_done(), 45);
  }
}

TEST(OrchestratorConfigTest, Validate) {
  OrchestratorConfig config;
  EXPECT_TRUE(Validate(config).ok());
  config.heartbeat_timeout = absl::ZeroDuration();
  EXPECT_EQ(Validate(config).code(), absl::StatusCode::kInvalidArgument);
  config = OrchestratorConfig();
  config.db_path = "";
  EXPECT_EQ(Validate(config).code(), absl::StatusCode::kInvalidArgument);
  config = OrchestratorConfig();
  config.heartbeat_interval = absl::Seconds(20);
  EXPECT_EQ(Validate(config).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace llmload::orchestrator
