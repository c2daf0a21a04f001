// What the collector keeps for reports: the generator's health per window,
// the merged histograms of the run and of each window, and per-request
// records (stored with their batches, capped per run, served in pages and
// still there after a restart).

#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "services/collector/collector_server.h"
#include "services/collector/ingest_pipeline.h"
#include "services/collector/run_registry.h"
#include "services/collector/store.h"
#include "services/collector/time_series.h"
#include "tests/testing/mono_clock.h"
#include "tests/unit/collector/batch_util.h"
#include "tests/unit/collector/fake_store.h"

namespace llmload::collector {
namespace {

using ::testing::HasSubstr;
using batch_util::MakeBatch;
using batch_util::MakeSampleBatch;
using batch_util::SampleGenerator;

constexpr int64_t kS = 1'000'000;
constexpr int64_t kEpochUs = 1'700'000'000'000'000;

v1::SampleBatch HealthBatch(const std::string& worker, uint64_t seq, int64_t start_us,
                            int64_t sessions, double cpu, double lag) {
  metrics::MetricSet set;
  set.RecordUs(v1::TTFT, 1000 * seq);
  set.Add(v1::REQUESTS_OK);
  v1::SampleBatch b = MakeBatch("r", worker, seq, set);
  b.set_interval_start_us(start_us);
  b.set_interval_end_us(start_us + kS / 4);
  b.set_active_sessions(sessions);
  b.set_worker_cpu_percent(cpu);
  b.set_worker_loop_lag_ms(lag);
  return b;
}

std::array<uint64_t, metrics::kNumMetrics> Counts(const v1::SampleBatch& b) {
  metrics::MetricSet set;
  EXPECT_TRUE(set.MergeBatch(b).ok());
  std::array<uint64_t, metrics::kNumMetrics> counts{};
  for (v1::Metric m : metrics::AllMetrics()) {
    counts[m] = set.Hist(m).Count();
  }
  return counts;
}

TEST(ReportDataTest, WindowsCarryTheGeneratorsHealthPerWorker) {
  TimeSeries ts;
  // Window 0: worker a twice (its later batch's gauge counts, the largest
  // cpu and lag), worker b once. Window 1: only b.
  for (const v1::SampleBatch& b :
       {HealthBatch("a", 2, kEpochUs + kS / 2, 7, 40, 3), HealthBatch("a", 1, kEpochUs, 5, 90, 1),
        HealthBatch("b", 1, kEpochUs, 4, 10, 60), HealthBatch("b", 2, kEpochUs + kS, 3, 20, 2)}) {
    ts.Add(b, Counts(b));
  }
  const std::vector<v1::WindowStats> w = ts.Build();
  ASSERT_EQ(w.size(), 2u);
  ASSERT_EQ(w[0].workers_size(), 2);
  EXPECT_EQ(w[0].workers(0).worker_id(), "a");
  EXPECT_EQ(w[0].workers(0).active_sessions(), 7);  // sequence 2, though it came first
  EXPECT_DOUBLE_EQ(w[0].workers(0).cpu_percent(), 90);
  EXPECT_DOUBLE_EQ(w[0].workers(0).loop_lag_ms(), 3);
  EXPECT_EQ(w[0].active_sessions(), 7 + 4);
  EXPECT_DOUBLE_EQ(w[0].max_cpu_percent(), 90);
  EXPECT_DOUBLE_EQ(w[0].max_loop_lag_ms(), 60);
  ASSERT_EQ(w[1].workers_size(), 1);
  EXPECT_EQ(w[1].active_sessions(), 3);
  EXPECT_DOUBLE_EQ(w[1].max_loop_lag_ms(), 2);
  EXPECT_EQ(w[0].histograms_size(), 0);  // only on request
}

TEST(ReportDataTest, HealthSurvivesMergingIntoCoarserWindows) {
  TimeSeries ts({{kS, 5 * kS}, {10 * kS, 0}});
  uint64_t seq = 0;
  for (int sec = 0; sec < 10; ++sec) {
    const v1::SampleBatch b =
        HealthBatch("a", ++seq, kEpochUs + sec * kS, sec, sec == 3 ? 99 : 10, sec == 4 ? 70 : 1);
    ts.Add(b, Counts(b));
  }
  // Data 30 s later ages the first ten seconds into one 10 s window.
  const v1::SampleBatch late = HealthBatch("a", ++seq, kEpochUs + 30 * kS, 1, 1, 1);
  ts.Add(late, Counts(late));
  const std::vector<v1::WindowStats> w = ts.Build(/*histograms=*/true);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_DOUBLE_EQ(w[0].width_seconds(), 10);
  EXPECT_EQ(w[0].active_sessions(), 9);  // the latest gauge of the ten
  EXPECT_DOUBLE_EQ(w[0].max_cpu_percent(), 99);
  EXPECT_DOUBLE_EQ(w[0].max_loop_lag_ms(), 70);
  // The window's histogram holds its ten samples.
  ASSERT_EQ(w[0].histograms_size(), 1);
  EXPECT_EQ(w[0].histograms(0).metric(), v1::TTFT);
  absl::StatusOr<histogram::Histogram> h = histogram::Histogram::Decode(w[0].histograms(0).encoded());
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->Count(), 10u);
  EXPECT_EQ(h->Min(), 1000u);
  EXPECT_EQ(h->Max(), 10000u);
}

TEST(ReportDataTest, RunHistogramsEqualTheReferenceAndWindowsAddUpToThem) {
  RunRegistry registry;
  SampleGenerator gen(21);
  metrics::MetricSet reference;
  for (uint64_t seq = 1; seq <= 4; ++seq) {
    ASSERT_TRUE(registry.Apply(MakeSampleBatch(gen, 50, "r", "w1", seq, reference)).ok());
    ASSERT_TRUE(registry.Apply(MakeSampleBatch(gen, 30, "r", "w2", seq, reference, seq == 4)).ok());
  }
  absl::StatusOr<v1::RunStats> stats = registry.GetRunStats("r", true, true, true);
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->histograms_size(), stats->metrics_size());
  for (const v1::HistogramDelta& d : stats->histograms()) {
    absl::StatusOr<histogram::Histogram> h = histogram::Histogram::Decode(d.encoded());
    ASSERT_TRUE(h.ok());
    EXPECT_TRUE(*h == reference.Hist(d.metric())) << metrics::MetricName(d.metric());
    histogram::Histogram sum;
    for (const v1::WindowStats& w : stats->windows()) {
      for (const v1::HistogramDelta& wd : w.histograms()) {
        if (wd.metric() == d.metric()) {
          ASSERT_TRUE(sum.MergeEncoded(wd.encoded()).ok());
        }
      }
    }
    EXPECT_TRUE(sum == reference.Hist(d.metric())) << metrics::MetricName(d.metric());
  }
  // Without the flag the answer stays small.
  absl::StatusOr<v1::RunStats> plain = registry.GetRunStats("r", true, true);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->histograms_size(), 0);
  EXPECT_EQ(plain->windows(0).histograms_size(), 0);
}

v1::RequestRecord Record(int32_t client, int64_t index, v1::Counter outcome = v1::REQUESTS_OK) {
  v1::RequestRecord r;
  r.set_start_us(kEpochUs + index);
  r.set_intended_start_us(kEpochUs + index);
  r.set_ttft_us(1000 + index);
  r.set_e2e_us(5000 + index);
  r.set_tokens(10);
  r.set_chunks(10);
  r.set_outcome(outcome);
  r.set_client_id(client);
  r.set_request_index(index);
  return r;
}

TEST(ReportDataTest, BadRecordsRejectTheBatch) {
  metrics::MetricSet set;
  v1::SampleBatch b = MakeBatch("r", "w", 1, set);
  *b.add_records() = Record(1, 1);
  EXPECT_TRUE(RunRegistry::Validate(b).ok());
  b.mutable_records(0)->set_outcome(v1::TOKENS);
  EXPECT_THAT(std::string(RunRegistry::Validate(b).message()), HasSubstr("outcome"));
  b.mutable_records(0)->set_outcome(v1::TIMEOUT);
  b.mutable_records(0)->set_e2e_us(-1);
  EXPECT_THAT(std::string(RunRegistry::Validate(b).message()), HasSubstr("records"));
  b.mutable_records(0)->set_e2e_us(1);
  b.mutable_records(0)->set_worker_id("spoofed");
  EXPECT_THAT(std::string(RunRegistry::Validate(b).message()), HasSubstr("worker_id"));
}

TEST(ReportDataTest, RecordsPastTheRunsCapAreDroppedBeforeTheyAreStored) {
  FakeStore store;
  RunRegistry registry;
  IngestCounters counters;
  {
    // The run already holds all but 3 records of its cap.
    metrics::MetricSet set;
    v1::SampleBatch first = MakeBatch("r", "w", 1, set);
    ASSERT_TRUE(registry.Apply(first).ok());
  }
  IngestPipeline pipeline(&store, &registry, &counters);
  // Two batches in flight together, 2 records each: the cap is counted
  // across the group. Shrink the room by storing nearly a full run first.
  const uint64_t room = registry.RecordRoom("r");
  EXPECT_EQ(room, RunRegistry::kMaxRecordsPerRun);
  metrics::MetricSet set;
  std::vector<v1::SampleBatch> batches;
  uint64_t seq = 2;
  uint64_t left = room - 3;
  while (left > 0) {
    v1::SampleBatch b = MakeBatch("r", "w", seq++, set);
    const uint64_t n = std::min<uint64_t>(left, RunRegistry::kMaxRecordsPerBatch);
    for (uint64_t i = 0; i < n; ++i) {
      *b.add_records() = Record(1, static_cast<int64_t>(i));
    }
    left -= n;
    batches.push_back(std::move(b));
  }
  for (int i = 0; i < 2; ++i) {
    v1::SampleBatch b = MakeBatch("r", "w", seq++, set);
    *b.add_records() = Record(2, 1);
    *b.add_records() = Record(2, 2);
    batches.push_back(std::move(b));
  }
  absl::Mutex mu;
  int acked = 0;
  for (v1::SampleBatch& b : batches) {
    pipeline.Submit(std::move(b), [&](absl::StatusOr<v1::IngestAck> ack) {
      EXPECT_TRUE(ack.ok() && ack->error().empty());
      absl::MutexLock lock(&mu);
      ++acked;
    });
  }
  pipeline.Stop();
  EXPECT_EQ(acked, static_cast<int>(batches.size()));
  absl::StatusOr<v1::RunStats> stats = registry.GetRunStats("r", false);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->records(), RunRegistry::kMaxRecordsPerRun);
  EXPECT_EQ(stats->records_dropped(), 1u);
  EXPECT_EQ(registry.RecordRoom("r"), 0u);
}

class ReportDataServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("report_data_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    config_.grpc_address = "127.0.0.1:0";
    config_.metrics_address = "";
    config_.db_path = (dir_ / "collector.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Every record of `run` over GetRunRecords, or the call's error.
  static grpc::Status ReadRecords(CollectorServer& server, const std::string& run,
                                  std::vector<v1::RequestRecord>* out, int* messages) {
    auto stub = v1::Collector::NewStub(server.InProcessChannel());
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
    v1::GetRunRecordsRequest req;
    req.set_run_id(run);
    auto reader = stub->GetRunRecords(&ctx, req);
    v1::RequestRecords page;
    while (reader->Read(&page)) {
      ++*messages;
      EXPECT_EQ(page.run_id(), run);
      for (const v1::RequestRecord& r : page.records()) {
        out->push_back(r);
      }
    }
    return reader->Finish();
  }

  static void Ingest(CollectorServer& server, const std::vector<v1::SampleBatch>& batches) {
    auto stub = v1::Collector::NewStub(server.InProcessChannel());
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
    auto stream = stub->Ingest(&ctx);
    for (const v1::SampleBatch& b : batches) {
      ASSERT_TRUE(stream->Write(b));
      v1::IngestAck ack;
      ASSERT_TRUE(stream->Read(&ack));
      ASSERT_TRUE(ack.error().empty()) << ack.error();
    }
    stream->WritesDone();
    ASSERT_TRUE(stream->Finish().ok());
  }

  std::filesystem::path dir_;
  CollectorConfig config_;
};

TEST_F(ReportDataServerTest, RecordsAreServedInPagesWithTheirWorkerAndSurviveARestart) {
  metrics::MetricSet set;
  std::vector<v1::SampleBatch> batches;
  int expected = 0;
  // 3 workers x 40 batches x 150 records: many pages and several messages;
  // another run's batches are interleaved and never served.
  for (uint64_t seq = 1; seq <= 40; ++seq) {
    for (const std::string w : {"w1", "w2", "w3"}) {
      v1::SampleBatch b = MakeBatch("r", w, seq, set, seq == 40);
      for (int i = 0; i < 150; ++i) {
        *b.add_records() = Record(static_cast<int32_t>(seq), i + 1,
                                  i % 50 == 0 ? v1::TIMEOUT : v1::REQUESTS_OK);
        ++expected;
      }
      batches.push_back(std::move(b));
      v1::SampleBatch other = MakeBatch("other", w, seq, set);
      *other.add_records() = Record(9999, 1);
      batches.push_back(std::move(other));
    }
  }
  for (int round = 0; round < 2; ++round) {
    auto server = CollectorServer::Create(config_);
    ASSERT_TRUE(server.ok()) << server.status();
    if (round == 0) {
      Ingest(**server, batches);
    } else {
      EXPECT_EQ((*server)->replayed_batches(), batches.size());
    }
    std::vector<v1::RequestRecord> records;
    int messages = 0;
    grpc::Status st = ReadRecords(**server, "r", &records, &messages);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(static_cast<int>(records.size()), expected);
    EXPECT_GT(messages, 1);
    int timeouts = 0;
    for (const v1::RequestRecord& r : records) {
      EXPECT_NE(r.client_id(), 9999);
      EXPECT_THAT(r.worker_id(), ::testing::AnyOf("w1", "w2", "w3"));
      timeouts += r.outcome() == v1::TIMEOUT ? 1 : 0;
    }
    EXPECT_EQ(timeouts, expected / 50);
    absl::StatusOr<v1::RunStats> stats = (*server)->registry().GetRunStats("r", false);
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->records(), static_cast<uint64_t>(expected));
    // Unknown and empty runs are errors, not empty streams.
    std::vector<v1::RequestRecord> none;
    EXPECT_EQ(ReadRecords(**server, "nope", &none, &messages).error_code(),
              grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(ReadRecords(**server, "", &none, &messages).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    (*server)->Shutdown(absl::Seconds(1));
  }
}

TEST_F(ReportDataServerTest, GetRunStatsCarriesHistogramsOnlyWhenAsked) {
  auto server = CollectorServer::Create(config_);
  ASSERT_TRUE(server.ok()) << server.status();
  SampleGenerator gen(4);
  metrics::MetricSet reference;
  Ingest(**server, {MakeSampleBatch(gen, 20, "r", "w", 1, reference, true)});
  auto stub = v1::Collector::NewStub((*server)->InProcessChannel());
  for (bool want : {false, true}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
    v1::GetRunStatsRequest req;
    req.set_run_id("r");
    req.set_windows(true);
    req.set_histograms(want);
    v1::RunStats stats;
    ASSERT_TRUE(stub->GetRunStats(&ctx, req, &stats).ok());
    EXPECT_EQ(stats.histograms_size() > 0, want);
    ASSERT_EQ(stats.windows_size(), 1);
    EXPECT_EQ(stats.windows(0).histograms_size() > 0, want);
  }
}

}  // namespace
}  // namespace llmload::collector
