#include "services/collector/run_registry.h"

#include <algorithm>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/unit/collector/batch_util.h"

namespace llmload::collector {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using batch_util::MakeBatch;
using batch_util::MakeSampleBatch;
using batch_util::SampleGenerator;

// The statistics a single process that saw every sample would report.
void ExpectMetricsEqual(const google::protobuf::RepeatedPtrField<v1::MetricStats>& got,
                        const metrics::MetricSet& reference) {
  std::vector<v1::MetricStats> want;
  for (v1::Metric m : metrics::AllMetrics()) {
    if (!reference.Hist(m).Empty()) {
      want.push_back(metrics::Summarize(m, reference.Hist(m)));
    }
  }
  ASSERT_EQ(got.size(), static_cast<int>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(got[static_cast<int>(i)], want[i]))
        << got[static_cast<int>(i)].DebugString() << " vs " << want[i].DebugString();
  }
}

TEST(SequenceSetTest, TracksOutOfOrderSequences) {
  SequenceSet s;
  EXPECT_TRUE(s.Insert(3));
  EXPECT_TRUE(s.Insert(1));
  EXPECT_EQ(s.watermark(), 1u);
  EXPECT_FALSE(s.Contains(2));
  EXPECT_TRUE(s.Contains(3));
  EXPECT_TRUE(s.Insert(2));
  EXPECT_EQ(s.watermark(), 3u);
  EXPECT_FALSE(s.Insert(2));
  EXPECT_FALSE(s.Insert(3));
  EXPECT_EQ(s.size(), 3u);
}

TEST(RunRegistryTest, MergesBatchesExactlyInAnyOrder) {
  SampleGenerator gen(7);
  metrics::MetricSet reference;
  std::map<std::string, metrics::MetricSet> worker_reference;
  std::vector<v1::SampleBatch> batches;
  for (const std::string worker : {"w1", "w2", "w3"}) {
    for (uint64_t seq = 1; seq <= 5; ++seq) {
      metrics::MetricSet both;
      batches.push_back(MakeSampleBatch(gen, 50 + static_cast<int>(seq) * 13, "run-1", worker,
                                        seq, both, seq == 5));
      reference.Merge(both);
      worker_reference[worker].Merge(both);
    }
  }
  // A fixed interleaving that is neither per worker nor per sequence.
  std::vector<size_t> order(batches.size());
  for (size_t i = 0; i < order.size(); ++i) {
    order[i] = (i * 7) % order.size();
  }
  RunRegistry registry;
  for (size_t i : order) {
    absl::StatusOr<ApplyResult> r = registry.Apply(batches[i]);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, ApplyResult::kApplied);
  }

  absl::StatusOr<v1::RunStats> stats = registry.GetRunStats("run-1", /*per_worker=*/true);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->run_id(), "run-1");
  EXPECT_EQ(stats->batches(), 15u);
  EXPECT_TRUE(stats->complete());
  ExpectMetricsEqual(stats->metrics(), reference);
  for (v1::Counter c : metrics::AllCounters()) {
    EXPECT_EQ(stats->counters().at(std::string(metrics::CounterName(c))), reference.Get(c))
        << metrics::CounterName(c);
  }
  ASSERT_EQ(stats->workers_size(), 3);
  for (const v1::WorkerStats& w : stats->workers()) {
    SCOPED_TRACE(w.worker_id());
    EXPECT_EQ(w.batches(), 5u);
    EXPECT_TRUE(w.final());
    ExpectMetricsEqual(w.metrics(), worker_reference[w.worker_id()]);
    EXPECT_EQ(w.counters().at("requests_ok"), worker_reference[w.worker_id()].Get(v1::REQUESTS_OK));
  }
  // The merged histograms are the reference's, bucket for bucket.
  registry.ForEachRun([&](const std::string& id, const RunState& run) {
    EXPECT_EQ(id, "run-1");
    for (v1::Metric m : metrics::AllMetrics()) {
      EXPECT_TRUE(run.merged->Hist(m) == reference.Hist(m)) << metrics::MetricName(m);
    }
  });
}

TEST(RunRegistryTest, ThroughputUsesTheSpanOfAllIntervals) {
  RunRegistry registry;
  metrics::MetricSet set;
  set.Add(v1::REQUESTS_OK, 30);
  set.Add(v1::TOKENS, 600);
  set.Add(v1::CYCLES, 3);
  set.Add(v1::BYTES_IN, 9000);
  // Sequences 1..3 of one worker: one second each, so 3 s in all.
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    ASSERT_TRUE(registry.Apply(MakeBatch("r", "w", seq, set)).ok());
  }
  absl::StatusOr<v1::RunStats> stats = registry.GetRunStats("r", false);
  ASSERT_TRUE(stats.ok());
  EXPECT_DOUBLE_EQ(stats->duration_seconds(), 3.0);
  EXPECT_DOUBLE_EQ(stats->throughput().requests_per_sec(), 30.0);
  EXPECT_DOUBLE_EQ(stats->throughput().tokens_per_sec(), 600.0);
  EXPECT_DOUBLE_EQ(stats->throughput().cycles_per_sec(), 3.0);
  EXPECT_DOUBLE_EQ(stats->throughput().bytes_in_per_sec(), 9000.0);
  EXPECT_EQ(stats->workers_size(), 0);
  EXPECT_TRUE(stats->metrics().empty());  // no latency samples, no metric entries
}

TEST(RunRegistryTest, BatchesWithoutIntervalDoNotStretchTheDuration) {
  RunRegistry registry;
  metrics::MetricSet set;
  set.Add(v1::REQUESTS_OK, 10);
  ASSERT_TRUE(registry.Apply(MakeBatch("r", "w", 1, set)).ok());
  v1::SampleBatch no_interval = MakeBatch("r", "w", 2, set, /*final=*/true);
  no_interval.clear_interval_start_us();
  no_interval.clear_interval_end_us();
  ASSERT_TRUE(registry.Apply(no_interval).ok());
  absl::StatusOr<v1::RunStats> stats = registry.GetRunStats("r", false);
  ASSERT_TRUE(stats.ok());
  EXPECT_DOUBLE_EQ(stats->duration_seconds(), 1.0);
  EXPECT_DOUBLE_EQ(stats->throughput().requests_per_sec(), 20.0);
}

TEST(RunRegistryTest, DuplicateBatchChangesNothing) {
  SampleGenerator gen(1);
  metrics::MetricSet reference;
  RunRegistry registry;
  v1::SampleBatch batch = MakeSampleBatch(gen, 100, "r", "w", 1, reference);
  ASSERT_EQ(*registry.Apply(batch), ApplyResult::kApplied);
  absl::StatusOr<v1::RunStats> before = registry.GetRunStats("r", true);
  ASSERT_TRUE(before.ok());
  EXPECT_TRUE(registry.Contains("r", "w", 1));
  EXPECT_FALSE(registry.Contains("r", "w", 2));
  EXPECT_FALSE(registry.Contains("r", "other", 1));

  absl::StatusOr<ApplyResult> again = registry.Apply(batch);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, ApplyResult::kDuplicate);
  // Same key, different content: still a duplicate, still nothing changes.
  metrics::MetricSet ignored;
  EXPECT_EQ(*registry.Apply(MakeSampleBatch(gen, 10, "r", "w", 1, ignored)),
            ApplyResult::kDuplicate);
  absl::StatusOr<v1::RunStats> after = registry.GetRunStats("r", true);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(*before, *after));
  EXPECT_EQ(registry.NumBatches(), 1u);
}

TEST(RunRegistryTest, InvalidBatchesAreRejectedAndChangeNothing) {
  SampleGenerator gen(3);
  metrics::MetricSet reference;
  RunRegistry registry;
  const v1::SampleBatch good = MakeSampleBatch(gen, 20, "r", "w", 1, reference);
  ASSERT_TRUE(registry.Apply(good).ok());
  absl::StatusOr<v1::RunStats> before = registry.GetRunStats("r", true);
  ASSERT_TRUE(before.ok());

  struct Case {
    const char* name;
    v1::SampleBatch batch;
    const char* error;
  };
  std::vector<Case> cases;
  metrics::MetricSet scratch;
  const v1::SampleBatch next = MakeSampleBatch(gen, 20, "r", "w", 2, scratch);
  {
    v1::SampleBatch b = next;
    b.clear_run_id();
    cases.push_back({"empty run", b, "run_id is empty"});
  }
  {
    v1::SampleBatch b = next;
    b.clear_worker_id();
    cases.push_back({"empty worker", b, "worker_id is empty"});
  }
  {
    v1::SampleBatch b = next;
    b.set_sequence(0);
    cases.push_back({"sequence 0", b, "sequence"});
  }
  {
    v1::SampleBatch b = next;
    b.set_run_id(std::string(RunRegistry::kMaxIdBytes + 1, 'x'));
    cases.push_back({"long run id", b, "longer than"});
  }
  {
    v1::SampleBatch b = next;
    b.mutable_histograms(0)->mutable_encoded()->back() ^= 0x7f;
    cases.push_back({"corrupt histogram", b, "connect"});
  }
  {
    v1::SampleBatch b = next;
    b.mutable_histograms(1)->set_encoded("\x01\x05");
    cases.push_back({"truncated histogram", b, "truncated"});
  }
  {
    v1::SampleBatch b = next;
    b.mutable_histograms(0)->set_metric(static_cast<v1::Metric>(42));
    cases.push_back({"unknown metric", b, "unknown metric"});
  }
  {
    v1::SampleBatch b = next;
    b.mutable_counters(0)->set_counter(static_cast<v1::Counter>(99));
    cases.push_back({"unknown counter", b, "unknown counter"});
  }
  {
    v1::SampleBatch b = next;
    b.set_interval_end_us(b.interval_start_us() - 1);
    cases.push_back({"interval backwards", b, "before interval_start_us"});
  }
  {
    v1::SampleBatch b = next;
    b.set_interval_start_us(0);
    cases.push_back({"half interval", b, "both"});
  }
  {
    v1::SampleBatch b = next;
    b.set_active_sessions(-1);
    cases.push_back({"negative gauge", b, "active_sessions"});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::Status v = RunRegistry::Validate(c.batch);
    EXPECT_FALSE(v.ok());
    EXPECT_THAT(std::string(v.message()), HasSubstr(c.error));
    absl::StatusOr<ApplyResult> r = registry.Apply(c.batch);
    EXPECT_FALSE(r.ok());
  }
  absl::StatusOr<v1::RunStats> after = registry.GetRunStats("r", true);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(*before, *after));
  EXPECT_EQ(registry.NumRuns(), 1u);
  // A rejected batch does not use up its sequence: the good version applies.
  EXPECT_TRUE(RunRegistry::Validate(next).ok());
  EXPECT_EQ(*registry.Apply(next), ApplyResult::kApplied);
}

TEST(RunRegistryTest, CheckPredictsApplyAndChangesNothing) {
  SampleGenerator gen(13);
  metrics::MetricSet reference;
  RunRegistry registry;
  const v1::SampleBatch first = MakeSampleBatch(gen, 10, "r", "w", 1, reference);
  EXPECT_EQ(*registry.Check(first), ApplyResult::kApplied);
  EXPECT_EQ(registry.NumRuns(), 0u);
  ASSERT_EQ(*registry.Apply(first), ApplyResult::kApplied);
  EXPECT_EQ(*registry.Check(first), ApplyResult::kDuplicate);
  v1::SampleBatch bad = first;
  bad.set_sequence(2);
  bad.mutable_histograms(0)->set_encoded("x");
  EXPECT_FALSE(registry.Check(bad).ok());
  EXPECT_EQ(registry.NumBatches(), 1u);
}

TEST(RunRegistryTest, DecodedBatchChecksAndAppliesLikeTheBatch) {
  SampleGenerator gen(29);
  metrics::MetricSet reference;
  RunRegistry by_batch;
  RunRegistry by_decoded;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    for (const std::string& worker : std::vector<std::string>{"a", "b"}) {
      const v1::SampleBatch b = MakeSampleBatch(gen, 30, "r", worker, seq, reference);
      ASSERT_EQ(*by_batch.Apply(b), ApplyResult::kApplied);
      absl::StatusOr<DecodedBatch> decoded = RunRegistry::Decode(b);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      EXPECT_EQ(decoded->totals().count[v1::TTFT], 30u);
      ASSERT_EQ(*by_decoded.Check(*decoded), ApplyResult::kApplied);
      ASSERT_EQ(*by_decoded.Apply(*decoded), ApplyResult::kApplied);
      EXPECT_EQ(*by_decoded.Check(*decoded), ApplyResult::kDuplicate);
      EXPECT_EQ(*by_decoded.Apply(*decoded), ApplyResult::kDuplicate);
    }
  }
  absl::StatusOr<v1::RunStats> a = by_batch.GetRunStats("r", true, true, true);
  absl::StatusOr<v1::RunStats> b = by_decoded.GetRunStats("r", true, true, true);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(*a, *b));
  int compared = 0;
  for (const v1::MetricStats& m : b->metrics()) {
    if (m.metric() == "ttft") {
      EXPECT_EQ(m.count(), reference.Hist(v1::TTFT).Count());
      ++compared;
    }
  }
  EXPECT_EQ(compared, 1);
}

TEST(RunRegistryTest, DecodeRefusesAMetricWhoseDeltasOverflowTogether) {
  // Two deltas of one metric, each valid, whose sums overflow 64 bits
  // together: refused whole by Decode, so nothing is applied.
  histogram::Histogram big;
  big.Record(histogram::Histogram::kMaxValue, uint64_t{1} << 31);  // sum just under 2^64
  v1::SampleBatch batch;
  batch.set_run_id("r");
  batch.set_worker_id("w");
  batch.set_sequence(1);
  for (int i = 0; i < 2; ++i) {
    v1::HistogramDelta* d = batch.add_histograms();
    d->set_metric(v1::TTFT);
    d->set_encoded(big.Encode());
  }
  absl::StatusOr<DecodedBatch> decoded = RunRegistry::Decode(batch);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("ttft"));
  RunRegistry registry;
  EXPECT_FALSE(registry.Apply(batch).ok());
  EXPECT_EQ(registry.NumRuns(), 0u);
}

TEST(RunRegistryTest, RunningTotalOverflowIsRefusedWhole) {
  RunRegistry registry;
  metrics::MetricSet near_max;
  near_max.Add(v1::REQUESTS_OK, std::numeric_limits<uint64_t>::max() - 5);
  near_max.RecordUs(v1::TTFT, 1000);
  ASSERT_TRUE(registry.Apply(MakeBatch("r", "w", 1, near_max)).ok());
  absl::StatusOr<v1::RunStats> before = registry.GetRunStats("r", true);
  ASSERT_TRUE(before.ok());

  metrics::MetricSet more;
  more.Add(v1::REQUESTS_OK, 10);
  more.RecordUs(v1::TTFT, 2000);  // would merge fine on its own
  const v1::SampleBatch overflowing = MakeBatch("r", "w2", 1, more);
  EXPECT_TRUE(RunRegistry::Validate(overflowing).ok());  // fine in isolation
  absl::StatusOr<ApplyResult> check = registry.Check(overflowing);
  EXPECT_EQ(check.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(check.status().message()), HasSubstr("requests_ok"));
  absl::StatusOr<ApplyResult> applied = registry.Apply(overflowing);
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kDataLoss);
  absl::StatusOr<v1::RunStats> after = registry.GetRunStats("r", true);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(*before, *after));  // ttft untouched too
  EXPECT_FALSE(registry.Contains("r", "w2", 1));
}

TEST(RunRegistryTest, CompleteOnlyWhenEveryWorkerSentItsFinalBatch) {
  RunRegistry registry;
  metrics::MetricSet set;
  set.Add(v1::REQUESTS_OK, 1);
  ASSERT_TRUE(registry.Apply(MakeBatch("r", "a", 1, set, false, 4)).ok());
  ASSERT_TRUE(registry.Apply(MakeBatch("r", "b", 1, set, false, 6)).ok());
  EXPECT_FALSE(registry.GetRunStats("r", false)->complete());
  EXPECT_EQ(registry.GetRunStats("r", false)->active_sessions(), 10);
  ASSERT_TRUE(registry.Apply(MakeBatch("r", "a", 2, set, true, 0)).ok());
  EXPECT_FALSE(registry.GetRunStats("r", false)->complete());
  EXPECT_EQ(registry.GetRunStats("r", false)->active_sessions(), 6);
  ASSERT_TRUE(registry.Apply(MakeBatch("r", "b", 2, set, true, 0)).ok());
  EXPECT_TRUE(registry.GetRunStats("r", false)->complete());
  EXPECT_EQ(registry.GetRunStats("r", false)->active_sessions(), 0);
}

TEST(RunRegistryTest, GaugeComesFromTheHighestSequence) {
  RunRegistry registry;
  metrics::MetricSet set;
  ASSERT_TRUE(registry.Apply(MakeBatch("r", "w", 2, set, false, 5)).ok());
  ASSERT_TRUE(registry.Apply(MakeBatch("r", "w", 1, set, false, 9)).ok());  // late arrival
  EXPECT_EQ(registry.GetRunStats("r", false)->active_sessions(), 5);
}

TEST(RunRegistryTest, GetRunStatsErrors) {
  RunRegistry registry;
  absl::StatusOr<v1::RunStats> empty = registry.GetRunStats("", false);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<v1::RunStats> missing = registry.GetRunStats("nope-123", false);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("nope-123"));
}

TEST(RunRegistryTest, RunsAreSeparate) {
  SampleGenerator gen(11);
  metrics::MetricSet ref_a;
  metrics::MetricSet ref_b;
  RunRegistry registry;
  ASSERT_TRUE(registry.Apply(MakeSampleBatch(gen, 30, "a", "w", 1, ref_a)).ok());
  ASSERT_TRUE(registry.Apply(MakeSampleBatch(gen, 40, "b", "w", 1, ref_b)).ok());
  ExpectMetricsEqual(registry.GetRunStats("a", false)->metrics(), ref_a);
  ExpectMetricsEqual(registry.GetRunStats("b", false)->metrics(), ref_b);
  EXPECT_EQ(registry.NumRuns(), 2u);
}

}  // namespace
}  // namespace llmload::collector

namespace llmload::collector {
namespace {

TEST(RunRegistryRetentionTest, ArchivedRunsLeaveScrapesButKeepTheirExactStatistics) {
  RunRegistry registry;
  SampleGenerator gen(77);
  metrics::MetricSet reference;
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    v1::SampleBatch b = MakeSampleBatch(gen, 50, "done", "w1", seq, reference, seq == 3);
    b.set_protocol("OPENAI_CHAT");
    b.set_worker_cpu_percent(42.5);
    b.set_worker_loop_lag_ms(3.25);
    ASSERT_TRUE(registry.Apply(b).ok());
  }
  metrics::MetricSet live_ref;
  ASSERT_TRUE(registry.Apply(MakeSampleBatch(gen, 50, "live", "w1", 1, live_ref)).ok());
  absl::StatusOr<v1::RunStats> before = registry.GetRunStats("done", true, true);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->protocol(), "OPENAI_CHAT");
  EXPECT_EQ(before->workers(0).cpu_percent(), 42.5);
  EXPECT_EQ(before->workers(0).loop_lag_ms(), 3.25);
  EXPECT_EQ(before->windows_size(), 3);  // one 1 s window per batch

  // MakeBatch's intervals end in 2023: with a 1 h retention, "now" decides.
  const absl::Time end = absl::FromUnixMicros(1'700'000'000'000'000 + 3'000'000);
  EXPECT_EQ(registry.ArchiveFinished(end + absl::Minutes(59), absl::Hours(1)), 0u);
  EXPECT_EQ(registry.ArchiveFinished(end + absl::Minutes(61), absl::Hours(1)), 1u);
  EXPECT_EQ(registry.NumArchivedRuns(), 1u);  // "live" is not complete
  std::vector<std::string> live;
  registry.ForEachRun([&](const std::string& id, const RunState& run) {
    if (!run.archived()) {
      live.push_back(id);
    }
  });
  EXPECT_EQ(live, std::vector<std::string>{"live"});

  absl::StatusOr<v1::RunStats> after = registry.GetRunStats("done", true, true);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->archived());
  after->set_archived(false);
  EXPECT_TRUE(MessageDifferencer::Equals(*before, *after)) << after->DebugString();
  ExpectMetricsEqual(after->metrics(), reference);

  // A duplicate is still recognised; a late batch restores the run.
  v1::SampleBatch dup = MakeSampleBatch(gen, 5, "done", "w1", 2, reference);
  EXPECT_EQ(*registry.Apply(dup), ApplyResult::kDuplicate);
  metrics::MetricSet late_ref = reference;
  v1::SampleBatch late = MakeSampleBatch(gen, 5, "done", "w2", 1, late_ref, true);
  ASSERT_EQ(*registry.Apply(late), ApplyResult::kApplied);
  EXPECT_EQ(registry.NumArchivedRuns(), 0u);
  absl::StatusOr<v1::RunStats> restored = registry.GetRunStats("done", false);
  ASSERT_TRUE(restored.ok());
  EXPECT_FALSE(restored->archived());
}

TEST(RunRegistryRetentionTest, RejectsUnboundedProtocolLabels) {
  RunRegistry registry;
  metrics::MetricSet set;
  set.Add(v1::REQUESTS_OK, 1);
  v1::SampleBatch b = MakeBatch("r", "w", 1, set);
  b.set_protocol("not an \"enum\"");
  EXPECT_FALSE(RunRegistry::Validate(b).ok());
  b.set_protocol("WS_CHAT");
  b.set_worker_cpu_percent(-1);
  EXPECT_FALSE(RunRegistry::Validate(b).ok());
}

// ---- Shard streams and seals ----

v1::SampleBatch CountersBatch(const std::string& worker, uint64_t epoch, uint64_t sequence,
                              uint64_t offered, uint64_t ok, uint64_t failed,
                              bool final = false) {
  metrics::MetricSet set;
  set.Add(v1::OFFERED, offered);
  set.Add(v1::REQUESTS_OK, ok);
  set.Add(v1::TIMEOUT, failed);
  v1::SampleBatch b = MakeBatch("run", worker, sequence, set, final);
  b.set_epoch(epoch);
  return b;
}

v1::SealShardRequest SealOf(const std::string& worker, uint64_t epoch) {
  v1::SealShardRequest r;
  r.set_run_id("run");
  r.set_worker_id(worker);
  r.set_epoch(epoch);
  return r;
}

TEST(RunRegistrySealTest, SealCountsLostRequestsOnceAndFencesLaterBatches) {
  RunRegistry registry;
  v1::SampleBatch b1 = CountersBatch("w1", 2, 1, 5, 3, 0);
  v1::ClientCycles* c = b1.add_clients();
  c->set_client(7);
  c->set_started(2);
  c->set_ended(1);
  ASSERT_EQ(*registry.Apply(b1), ApplyResult::kApplied);
  ASSERT_EQ(*registry.Apply(CountersBatch("w1", 2, 2, 1, 1, 1)), ApplyResult::kApplied);
  // Another worker's stream, and another epoch of the same worker, are apart.
  ASSERT_EQ(*registry.Apply(CountersBatch("w2", 1, 1, 4, 4, 0, true)), ApplyResult::kApplied);
  ASSERT_EQ(*registry.Apply(CountersBatch("w1", 5, 1, 2, 2, 0, true)), ApplyResult::kApplied);

  const v1::SealedShard sealed = registry.Seal(SealOf("w1", 2));
  EXPECT_EQ(sealed.batches(), 2u);
  EXPECT_EQ(sealed.last_sequence(), 2u);
  EXPECT_FALSE(sealed.final());
  EXPECT_EQ(sealed.lost(), 1u);  // 6 offered, 4 ok, 1 failed
  EXPECT_GT(sealed.last_interval_end_us(), 0);
  ASSERT_EQ(sealed.clients_size(), 1);
  EXPECT_EQ(sealed.clients(0).client(), 7);
  EXPECT_EQ(sealed.clients(0).started(), 2u);

  // A late batch of the sealed stream is refused; the other epoch is not.
  EXPECT_EQ(*registry.Check(CountersBatch("w1", 2, 3, 1, 1, 0)), ApplyResult::kFenced);
  EXPECT_EQ(*registry.Apply(CountersBatch("w1", 2, 3, 1, 1, 0)), ApplyResult::kFenced);
  EXPECT_EQ(*registry.Apply(CountersBatch("w1", 2, 2, 1, 1, 1)), ApplyResult::kDuplicate);
  EXPECT_EQ(*registry.Apply(CountersBatch("w1", 6, 1, 1, 1, 0, true)), ApplyResult::kApplied);

  // Sealing again answers the same and adds nothing.
  EXPECT_TRUE(MessageDifferencer::Equals(registry.Seal(SealOf("w1", 2)), sealed));
  absl::StatusOr<v1::RunStats> stats = registry.GetRunStats("run", true);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->counters().at("lost"), 1u);
  EXPECT_EQ(stats->counters().at("offered"), 6u + 4 + 2 + 1);
  // offered = ok + failed + lost (+ dropped + unfinished) holds exactly.
  EXPECT_EQ(stats->counters().at("offered"),
            stats->counters().at("requests_ok") + stats->counters().at("timeout") +
                stats->counters().at("lost"));
  EXPECT_TRUE(stats->complete());  // a sealed stream is done
  for (const v1::WorkerStats& w : stats->workers()) {
    if (w.worker_id() == "w1") {
      ASSERT_EQ(w.sealed_epochs_size(), 1);
      EXPECT_EQ(w.sealed_epochs(0), 2u);
    }
  }
}

TEST(RunRegistrySealTest, SealingAStreamWithNoBatchFencesIt) {
  RunRegistry registry;
  const v1::SealedShard sealed = registry.Seal(SealOf("w9", 4));
  EXPECT_EQ(sealed.batches(), 0u);
  EXPECT_EQ(sealed.lost(), 0u);
  EXPECT_EQ(*registry.Apply(CountersBatch("w9", 4, 1, 1, 1, 0)), ApplyResult::kFenced);
  EXPECT_FALSE(RunRegistry::ValidateSeal(v1::SealShardRequest()).ok());
}

}  // namespace
}  // namespace llmload::collector
