// Integration: the real llmload-collector binary on loopback ports with a
// temp database. Batches go over real gRPC; the collector is SIGKILLed right
// after acking and must report every acked batch exactly after a restart.

#include <sys/wait.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "tests/testing/process.h"
#include "tests/unit/collector/batch_util.h"
#include "tests/testing/mono_clock.h"

namespace llmload {
namespace {

using ::testing::HasSubstr;
using collector::batch_util::MakeSampleBatch;
using collector::batch_util::SampleGenerator;

constexpr absl::Duration kTimeout = absl::Seconds(20);

void SetDeadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(testing_util::GrpcDeadline(kTimeout));
}

class Collector {
 public:
  Collector(const std::string& dir, const std::string& db, int run,
            const std::vector<std::string>& extra_flags = {})
      : grpc_port_(testing_util::FreePort()), metrics_port_(testing_util::FreePort()) {
    std::vector<std::string> args = {
        "--grpc_address=127.0.0.1:" + std::to_string(grpc_port_),
        "--metrics_address=127.0.0.1:" + std::to_string(metrics_port_), "--db_path=" + db,
        // The batches' intervals are from 2023: keep finished runs on
        // /metrics (retention counts from a run's last interval).
        "--shutdown_grace_ms=500", "--run_retention_seconds=1000000000"};
    args.insert(args.end(), extra_flags.begin(), extra_flags.end());
    process_ = testing_util::ChildProcess::Start(testing_util::BinPath("llmload-collector"),
                                                 args,
                                                 dir + "/collector." + std::to_string(run) +
                                                     ".log",
                                                 dir);
  }

  ::testing::AssertionResult WaitReady() {
    if (auto r = testing_util::WaitForTcp(grpc_port_, kTimeout); !r) {
      return r << "\n" << process_->ReadLog();
    }
    if (auto r = testing_util::WaitForTcp(metrics_port_, kTimeout); !r) {
      return r << "\n" << process_->ReadLog();
    }
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(grpc_port_),
                                   grpc::InsecureChannelCredentials());
    if (!channel_->WaitForConnected(testing_util::GrpcDeadline(kTimeout))) {
      return ::testing::AssertionFailure() << "gRPC not connected\n" << process_->ReadLog();
    }
    stub_ = v1::Collector::NewStub(channel_);
    return ::testing::AssertionSuccess();
  }

  absl::StatusOr<v1::RunStats> Stats(const std::string& run_id, bool per_worker = false) {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::GetRunStatsRequest req;
    req.set_run_id(run_id);
    req.set_per_worker(per_worker);
    v1::RunStats resp;
    grpc::Status s = stub_->GetRunStats(&ctx, req, &resp);
    if (!s.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    }
    return resp;
  }

  std::string Metrics() {
    int status = 0;
    std::string body = testing_util::HttpGet(metrics_port_, "/metrics", &status);
    EXPECT_EQ(status, 200);
    return body;
  }

  v1::Collector::Stub* stub() { return stub_.get(); }
  testing_util::ChildProcess& process() { return *process_; }

 private:
  int grpc_port_;
  int metrics_port_;
  std::unique_ptr<testing_util::ChildProcess> process_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Collector::Stub> stub_;
};

// Writes every batch on one Ingest stream and reads one ack per batch.
std::vector<v1::IngestAck> Ingest(v1::Collector::Stub* stub,
                                  const std::vector<v1::SampleBatch>& batches) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  auto stream = stub->Ingest(&ctx);
  std::vector<v1::IngestAck> acks;
  std::thread reader([&] {
    v1::IngestAck ack;
    while (acks.size() < batches.size() && stream->Read(&ack)) {
      acks.push_back(ack);
    }
  });
  for (const auto& b : batches) {
    if (!stream->Write(b)) {
      break;
    }
  }
  reader.join();
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  return acks;
}

// The value of the sample line that starts with `prefix` ("name{labels}").
std::optional<double> SampleValue(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix + " ", 0) == 0) {
      return std::strtod(line.c_str() + prefix.size() + 1, nullptr);
    }
  }
  return std::nullopt;
}

void ExpectStatsMatch(const v1::RunStats& stats, const metrics::MetricSet& reference,
                      uint64_t batches) {
  EXPECT_EQ(stats.batches(), batches);
  std::vector<v1::MetricStats> want;
  for (v1::Metric m : metrics::AllMetrics()) {
    if (!reference.Hist(m).Empty()) {
      want.push_back(metrics::Summarize(m, reference.Hist(m)));
    }
  }
  ASSERT_EQ(stats.metrics_size(), static_cast<int>(want.size()));
  for (int i = 0; i < stats.metrics_size(); ++i) {
    const auto& got = stats.metrics(i);
    const auto& w = want[static_cast<size_t>(i)];
    SCOPED_TRACE(w.metric());
    EXPECT_EQ(got.metric(), w.metric());
    EXPECT_EQ(got.count(), w.count());
    EXPECT_EQ(got.min_ms(), w.min_ms());
    EXPECT_EQ(got.mean_ms(), w.mean_ms());
    EXPECT_EQ(got.p50_ms(), w.p50_ms());
    EXPECT_EQ(got.p90_ms(), w.p90_ms());
    EXPECT_EQ(got.p95_ms(), w.p95_ms());
    EXPECT_EQ(got.p99_ms(), w.p99_ms());
    EXPECT_EQ(got.p999_ms(), w.p999_ms());
    EXPECT_EQ(got.max_ms(), w.max_ms());
  }
  for (v1::Counter c : metrics::AllCounters()) {
    EXPECT_EQ(stats.counters().at(std::string(metrics::CounterName(c))), reference.Get(c))
        << metrics::CounterName(c);
  }
}

class CollectorIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir("collector_it_");
    ASSERT_FALSE(dir_.empty());
    db_ = dir_ + "/collector.db";
  }

  std::string dir_;
  std::string db_;
};

TEST_F(CollectorIntegrationTest, AckedBatchesSurviveSigkillAndDuplicatesAreDetected) {
  const std::string run = "it-run-1";
  SampleGenerator gen(99);
  metrics::MetricSet reference;
  std::vector<v1::SampleBatch> batches;
  for (uint64_t seq = 1; seq <= 20; ++seq) {
    for (const std::string worker : {"worker-a", "worker-b"}) {
      batches.push_back(MakeSampleBatch(gen, 40, run, worker, seq, reference, seq == 20,
                                        static_cast<int64_t>(seq)));
    }
  }

  auto first = std::make_unique<Collector>(dir_, db_, 1);
  ASSERT_TRUE(first->WaitReady());
  const std::vector<v1::IngestAck> acks = Ingest(first->stub(), batches);
  ASSERT_EQ(acks.size(), batches.size());
  for (size_t i = 0; i < acks.size(); ++i) {
    EXPECT_EQ(acks[i].sequence(), batches[i].sequence());
    EXPECT_EQ(acks[i].worker_id(), batches[i].worker_id());
    EXPECT_FALSE(acks[i].duplicate());
    EXPECT_TRUE(acks[i].error().empty()) << acks[i].error();
  }

  // The same sequence again: a duplicate ack, and nothing changes.
  const std::vector<v1::IngestAck> dup = Ingest(first->stub(), {batches[5]});
  ASSERT_EQ(dup.size(), 1u);
  EXPECT_TRUE(dup[0].duplicate());
  absl::StatusOr<v1::RunStats> stats = first->Stats(run, /*per_worker=*/true);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ExpectStatsMatch(*stats, reference, batches.size());
  EXPECT_TRUE(stats->complete());
  EXPECT_EQ(stats->workers_size(), 2);
  EXPECT_EQ(stats->active_sessions(), 40);  // each worker's gauge at sequence 20

  // An invalid batch is answered with an error and changes nothing.
  v1::SampleBatch bad = batches[0];
  bad.set_sequence(1000);
  bad.mutable_histograms(0)->set_encoded("not a histogram");
  const std::vector<v1::IngestAck> rejected = Ingest(first->stub(), {bad});
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_FALSE(rejected[0].error().empty());
  EXPECT_EQ(first->Stats(run)->batches(), batches.size());

  // Acked means durable: kill -9 at once, then restart on the same database.
  first->process().Kill();
  first.reset();
  auto second = std::make_unique<Collector>(dir_, db_, 2);
  ASSERT_TRUE(second->WaitReady());
  stats = second->Stats(run, true);
  ASSERT_TRUE(stats.ok()) << stats.status() << "\n" << second->process().ReadLog();
  ExpectStatsMatch(*stats, reference, batches.size());
  EXPECT_TRUE(stats->complete());
  EXPECT_EQ(stats->active_sessions(), 40);
  EXPECT_THAT(second->process().ReadLog(), HasSubstr("batches=40"));

  // Deduplication survives the restart too.
  const std::vector<v1::IngestAck> dup_after = Ingest(second->stub(), {batches[7]});
  ASSERT_EQ(dup_after.size(), 1u);
  EXPECT_TRUE(dup_after[0].duplicate());
  EXPECT_EQ(second->Stats(run)->batches(), batches.size());

  // /metrics reports the run with the histogram's exact quantiles.
  const std::string text = second->Metrics();
  const histogram::Histogram& ttft = reference.Hist(v1::TTFT);
  const auto p99 = SampleValue(text, "llmload_ttft_seconds{run_id=\"" + run + "\",quantile=\"0.99\"}");
  ASSERT_TRUE(p99.has_value()) << text;
  EXPECT_DOUBLE_EQ(*p99, static_cast<double>(ttft.Percentile(99)) / 1e6);
  const auto p50 = SampleValue(text, "llmload_ttft_seconds{run_id=\"" + run + "\",quantile=\"0.5\"}");
  ASSERT_TRUE(p50.has_value());
  EXPECT_DOUBLE_EQ(*p50, static_cast<double>(ttft.Percentile(50)) / 1e6);
  const auto count = SampleValue(text, "llmload_ttft_seconds_count{run_id=\"" + run + "\"}");
  ASSERT_TRUE(count.has_value());
  EXPECT_EQ(*count, static_cast<double>(ttft.Count()));
  EXPECT_TRUE(SampleValue(text, "llmload_itl_seconds{run_id=\"" + run + "\",quantile=\"0.999\"}"));
  EXPECT_TRUE(SampleValue(text, "llmload_e2e_seconds{run_id=\"" + run + "\",quantile=\"0.9\"}"));
  const auto ok = SampleValue(text, "llmload_requests_total{run_id=\"" + run + "\",outcome=\"ok\"}");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, static_cast<double>(reference.Get(v1::REQUESTS_OK)));
  const auto tokens = SampleValue(text, "llmload_tokens_total{run_id=\"" + run + "\"}");
  ASSERT_TRUE(tokens.has_value());
  EXPECT_EQ(*tokens, static_cast<double>(reference.Get(v1::TOKENS)));
  EXPECT_EQ(SampleValue(text, "llmload_active_sessions{run_id=\"" + run + "\"}"), 40.0);
  EXPECT_EQ(SampleValue(text, "llmload_collector_batches_total{result=\"duplicate\"}"), 1.0);

  // SIGTERM: a clean exit.
  const int status = second->process().Stop(absl::Seconds(10));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(CollectorIntegrationTest, KillRightAfterEachAckLosesNothing) {
  // Several rounds: ingest a few batches, SIGKILL as soon as the acks are in,
  // restart; every acked batch is there each time.
  const std::string run = "it-run-2";
  SampleGenerator gen(5);
  metrics::MetricSet reference;
  uint64_t seq = 0;
  uint64_t acked = 0;
  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE(round);
    Collector c(dir_, db_, 10 + round);
    ASSERT_TRUE(c.WaitReady());
    if (round > 1) {
      absl::StatusOr<v1::RunStats> stats = c.Stats(run);
      ASSERT_TRUE(stats.ok()) << stats.status();
      ExpectStatsMatch(*stats, reference, acked);
    }
    std::vector<v1::SampleBatch> batches;
    for (int i = 0; i < 5; ++i) {
      batches.push_back(MakeSampleBatch(gen, 25, run, "w", ++seq, reference));
    }
    const std::vector<v1::IngestAck> acks = Ingest(c.stub(), batches);
    ASSERT_EQ(acks.size(), batches.size());
    acked += acks.size();
    c.process().Kill();
  }
  Collector last(dir_, db_, 20);
  ASSERT_TRUE(last.WaitReady());
  absl::StatusOr<v1::RunStats> stats = last.Stats(run);
  ASSERT_TRUE(stats.ok());
  ExpectStatsMatch(*stats, reference, acked);
}

TEST_F(CollectorIntegrationTest, GroupCommitAcksOnlyDurableBatches) {
  // Four workers' streams at once into groups of up to 16 batches: fewer
  // commits than batches, and every acked batch survives a SIGKILL that
  // follows the last ack at once.
  const std::string run = "it-run-group";
  SampleGenerator gen(17);
  metrics::MetricSet reference;
  constexpr int kWorkers = 4;
  constexpr uint64_t kPerWorker = 40;
  std::vector<std::vector<v1::SampleBatch>> per_worker(kWorkers);
  for (uint64_t seq = 1; seq <= kPerWorker; ++seq) {
    for (int w = 0; w < kWorkers; ++w) {
      per_worker[static_cast<size_t>(w)].push_back(
          MakeSampleBatch(gen, 10, run, "w" + std::to_string(w), seq, reference));
    }
  }
  auto first = std::make_unique<Collector>(dir_, db_, 30,
                                           std::vector<std::string>{"--max_group_commit=16"});
  ASSERT_TRUE(first->WaitReady());
  std::vector<std::vector<v1::IngestAck>> acks(kWorkers);
  std::vector<std::thread> streams;
  for (size_t w = 0; w < kWorkers; ++w) {
    streams.emplace_back([&, w] { acks[w] = Ingest(first->stub(), per_worker[w]); });
  }
  for (std::thread& t : streams) {
    t.join();
  }
  for (size_t w = 0; w < kWorkers; ++w) {
    ASSERT_EQ(acks[w].size(), kPerWorker);
    for (const v1::IngestAck& ack : acks[w]) {
      EXPECT_TRUE(ack.error().empty()) << ack.error();
      EXPECT_FALSE(ack.duplicate());
    }
  }
  const std::string text = first->Metrics();
  const auto commits = SampleValue(text, "llmload_collector_commits_total");
  ASSERT_TRUE(commits.has_value()) << text;
  EXPECT_GE(*commits, static_cast<double>(kWorkers * kPerWorker) / 16);
  EXPECT_LT(*commits, static_cast<double>(kWorkers * kPerWorker));
  first->process().Kill();
  first.reset();

  Collector second(dir_, db_, 31);
  ASSERT_TRUE(second.WaitReady());
  absl::StatusOr<v1::RunStats> stats = second.Stats(run);
  ASSERT_TRUE(stats.ok()) << stats.status() << "\n" << second.process().ReadLog();
  ExpectStatsMatch(*stats, reference, kWorkers * kPerWorker);
}

TEST_F(CollectorIntegrationTest, MetricsWorkerLabelFlagLeavesWorkerOffHistograms) {
  const std::string run = "it-run-labels";
  SampleGenerator gen(23);
  metrics::MetricSet reference;
  std::map<std::string, metrics::MetricSet> per_worker;
  std::vector<v1::SampleBatch> batches;
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    for (const std::string& worker : std::vector<std::string>{"wa", "wb"}) {
      v1::SampleBatch b = MakeSampleBatch(gen, 20, run, worker, seq, reference);
      ASSERT_TRUE(per_worker[worker].MergeBatch(b).ok());
      batches.push_back(std::move(b));
    }
  }
  const std::string bucket = "llmload_ttft_histogram_seconds_bucket{run_id=\"" + run + "\"";
  {
    Collector labelled(dir_, dir_ + "/labelled.db", 40);  // the default: per worker
    ASSERT_TRUE(labelled.WaitReady());
    ASSERT_EQ(Ingest(labelled.stub(), batches).size(), batches.size());
    const std::string text = labelled.Metrics();
    for (const auto& [worker, set] : per_worker) {
      EXPECT_EQ(SampleValue(text, bucket + ",worker_id=\"" + worker + "\",le=\"+Inf\"}"),
                static_cast<double>(set.Hist(v1::TTFT).Count()))
          << text;
    }
    EXPECT_EQ(SampleValue(text, bucket + ",le=\"+Inf\"}"), std::nullopt);
  }
  Collector unlabelled(dir_, dir_ + "/unlabelled.db", 41,
                       std::vector<std::string>{"--metrics_worker_label=false"});
  ASSERT_TRUE(unlabelled.WaitReady());
  ASSERT_EQ(Ingest(unlabelled.stub(), batches).size(), batches.size());
  const std::string text = unlabelled.Metrics();
  EXPECT_EQ(SampleValue(text, bucket + ",le=\"+Inf\"}"),
            static_cast<double>(reference.Hist(v1::TTFT).Count()))
      << text;
  EXPECT_THAT(text, ::testing::Not(HasSubstr(bucket + ",worker_id=")));
  // The summaries and the workers' health gauges are the same either way.
  EXPECT_TRUE(SampleValue(text, "llmload_ttft_seconds_count{run_id=\"" + run + "\"}").has_value());
  EXPECT_THAT(text, HasSubstr("llmload_run_worker_cpu_ratio{run_id=\"" + run +
                              "\",worker_id=\"wa\"}"));
}

TEST_F(CollectorIntegrationTest, WatchStreamsUntilTheRunIsComplete) {
  Collector c(dir_, db_, 1);
  ASSERT_TRUE(c.WaitReady());
  const std::string run = "it-watch";
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::WatchRunStatsRequest req;
  req.set_run_id(run);
  req.set_interval_ms(100);
  auto reader = c.stub()->WatchRunStats(&ctx, req);

  SampleGenerator gen(3);
  metrics::MetricSet reference;
  ASSERT_EQ(Ingest(c.stub(), {MakeSampleBatch(gen, 10, run, "w", 1, reference)}).size(), 1u);
  v1::RunStats s;
  ASSERT_TRUE(reader->Read(&s));
  EXPECT_EQ(s.run_id(), run);
  EXPECT_FALSE(s.complete());
  ASSERT_EQ(Ingest(c.stub(), {MakeSampleBatch(gen, 10, run, "w", 2, reference, true)}).size(),
            1u);
  v1::RunStats last;
  while (reader->Read(&s)) {
    last = s;
  }
  EXPECT_TRUE(last.complete());
  EXPECT_EQ(last.batches(), 2u);
  grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(CollectorIntegrationTest, UnknownRunIsNotFoundAndLogsWhereItListens) {
  Collector c(dir_, db_, 1);
  ASSERT_TRUE(c.WaitReady());
  absl::StatusOr<v1::RunStats> stats = c.Stats("missing-run");
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("missing-run"));
  EXPECT_EQ(c.Stats("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.process().ReadLog(), HasSubstr("Collector listening."));
  const int status = c.process().Stop(absl::Seconds(10));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(CollectorIntegrationTest, SecondCollectorOnTheSameDatabaseRefusesToStart) {
  Collector first(dir_, db_, 1);
  ASSERT_TRUE(first.WaitReady());
  Collector second(dir_, db_, 2);
  EXPECT_EQ(second.process().Wait(kTimeout), 1);
  EXPECT_THAT(second.process().ReadLog(), HasSubstr("another collector"));
}

}  // namespace
}  // namespace llmload
