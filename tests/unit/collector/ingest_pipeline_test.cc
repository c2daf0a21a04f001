#include "services/collector/ingest_pipeline.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/collector/batch_util.h"
#include "tests/unit/collector/fake_store.h"

namespace llmload::collector {
namespace {

using batch_util::MakeSampleBatch;
using batch_util::SampleGenerator;

// Collects callback results in order.
class Results {
 public:
  IngestPipeline::Callback Add() {
    return [this](absl::StatusOr<v1::IngestAck> r) {
      absl::MutexLock lock(&mu_);
      results_.push_back(std::move(r));
    };
  }
  bool WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return results_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(10));
  }
  std::vector<absl::StatusOr<v1::IngestAck>> Get() {
    absl::MutexLock lock(&mu_);
    return results_;
  }

 private:
  absl::Mutex mu_;
  std::vector<absl::StatusOr<v1::IngestAck>> results_ ABSL_GUARDED_BY(mu_);
};

TEST(IngestPipelineTest, GroupCommitsAndClassifiesEveryBatch) {
  FakeStore store;
  RunRegistry registry;
  IngestCounters counters;
  IngestPipeline pipeline(&store, &registry, &counters);
  SampleGenerator gen(9);
  metrics::MetricSet ref;
  const v1::SampleBatch a = MakeSampleBatch(gen, 10, "r", "w", 1, ref);
  const v1::SampleBatch b = MakeSampleBatch(gen, 10, "r", "w", 2, ref);
  v1::SampleBatch bad = a;
  bad.set_sequence(0);

  // Hold the first commit so the rest queue up and go in one group.
  store.CloseGate();
  Results results;
  pipeline.Submit(a, results.Add());
  ASSERT_TRUE(store.WaitForInsertCalls(1, absl::Seconds(10)));
  pipeline.Submit(a, results.Add());    // duplicate of a stored batch
  pipeline.Submit(b, results.Add());
  pipeline.Submit(b, results.Add());    // duplicate within the group
  pipeline.Submit(bad, results.Add());  // rejected
  EXPECT_TRUE(results.Get().empty());  // nothing is acked before its commit
  store.OpenGate();
  ASSERT_TRUE(results.WaitFor(5));

  auto r = results.Get();
  ASSERT_TRUE(r[0].ok());
  EXPECT_FALSE(r[0]->duplicate());
  EXPECT_TRUE(r[0]->error().empty());
  ASSERT_TRUE(r[1].ok());
  EXPECT_TRUE(r[1]->duplicate());
  ASSERT_TRUE(r[2].ok());
  EXPECT_FALSE(r[2]->duplicate());
  EXPECT_EQ(r[2]->sequence(), 2u);
  ASSERT_TRUE(r[3].ok());
  EXPECT_TRUE(r[3]->duplicate());
  ASSERT_TRUE(r[4].ok());
  EXPECT_FALSE(r[4]->error().empty());
  EXPECT_EQ(r[4]->run_id(), "r");

  EXPECT_EQ(store.NumStored(), 2u);
  EXPECT_EQ(store.InsertCalls(), 2);  // a alone, then the group {b}
  EXPECT_EQ(counters.applied.load(), 2u);
  EXPECT_EQ(counters.duplicate.load(), 2u);
  EXPECT_EQ(counters.rejected.load(), 1u);
  EXPECT_EQ(registry.GetRunStats("r", false)->batches(), 2u);
}

TEST(IngestPipelineTest, StorageFailureAcksNothingAndAppliesNothing) {
  FakeStore store;
  RunRegistry registry;
  IngestCounters counters;
  IngestPipeline pipeline(&store, &registry, &counters);
  SampleGenerator gen(4);
  metrics::MetricSet ref;
  const v1::SampleBatch a = MakeSampleBatch(gen, 10, "r", "w", 1, ref);
  store.FailWith(absl::UnavailableError("disk full"));
  Results results;
  pipeline.Submit(a, results.Add());
  ASSERT_TRUE(results.WaitFor(1));
  ASSERT_FALSE(results.Get()[0].ok());
  EXPECT_EQ(results.Get()[0].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(registry.GetRunStats("r", false).ok());
  // Once storage works again the same batch goes through.
  store.FailWith(absl::OkStatus());
  pipeline.Submit(a, results.Add());
  ASSERT_TRUE(results.WaitFor(2));
  ASSERT_TRUE(results.Get()[1].ok());
  EXPECT_FALSE(results.Get()[1]->duplicate());
  EXPECT_EQ(registry.GetRunStats("r", false)->batches(), 1u);
}

TEST(IngestPipelineTest, StopDrainsTheQueueThenRefuses) {
  FakeStore store;
  RunRegistry registry;
  IngestCounters counters;
  IngestPipeline pipeline(&store, &registry, &counters);
  SampleGenerator gen(6);
  metrics::MetricSet ref;
  Results results;
  for (uint64_t seq = 1; seq <= 20; ++seq) {
    pipeline.Submit(MakeSampleBatch(gen, 3, "r", "w", seq, ref), results.Add());
  }
  pipeline.Stop();
  ASSERT_EQ(results.Get().size(), 20u);
  for (const auto& r : results.Get()) {
    EXPECT_TRUE(r.ok());
  }
  pipeline.Submit(MakeSampleBatch(gen, 3, "r", "w", 21, ref), results.Add());
  ASSERT_EQ(results.Get().size(), 21u);
  EXPECT_EQ(results.Get()[20].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.NumStored(), 20u);
}

}  // namespace
}  // namespace llmload::collector
