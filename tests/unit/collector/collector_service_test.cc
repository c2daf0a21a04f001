// In-process gRPC tests of the Collector service: a CollectorServer on a
// fake store whose commits the test can hold back.

#include "services/collector/collector_service.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "services/collector/collector_server.h"
#include "tests/unit/collector/batch_util.h"
#include "tests/unit/collector/fake_store.h"
#include "tests/testing/mono_clock.h"

namespace llmload::collector {
namespace {

using ::testing::HasSubstr;
using batch_util::MakeSampleBatch;
using batch_util::SampleGenerator;

constexpr absl::Duration kTimeout = absl::Seconds(20);

void SetDeadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(testing_util::GrpcDeadline(kTimeout));
}

// An Ingest stream with a reader thread that collects acks.
class IngestClient {
 public:
  explicit IngestClient(v1::Collector::Stub* stub) {
    SetDeadline(ctx_);
    stream_ = stub->Ingest(&ctx_);
    reader_ = std::thread([this] {
      v1::IngestAck ack;
      while (stream_->Read(&ack)) {
        absl::MutexLock lock(&mu_);
        acks_.push_back(ack);
      }
      absl::MutexLock lock(&mu_);
      reads_done_ = true;
    });
  }
  ~IngestClient() {
    if (!finished_) {
      ctx_.TryCancel();
      Finish();
    }
  }

  bool Write(const v1::SampleBatch& b) { return stream_->Write(b); }

  // True once `n` acks arrived within `timeout`.
  bool WaitForAcks(size_t n, absl::Duration timeout = kTimeout) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return acks_.size() >= n || reads_done_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return acks_.size() >= n;
  }
  std::vector<v1::IngestAck> acks() {
    absl::MutexLock lock(&mu_);
    return acks_;
  }
  void WritesDone() {
    stream_->WritesDone();
    writes_done_ = true;
  }
  grpc::Status Finish() {
    if (!writes_done_) {
      stream_->WritesDone();
    }
    reader_.join();
    finished_ = true;
    return stream_->Finish();
  }
  void Cancel() { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SampleBatch, v1::IngestAck>> stream_;
  std::thread reader_;
  bool finished_ = false;
  bool writes_done_ = false;
  absl::Mutex mu_;
  std::vector<v1::IngestAck> acks_ ABSL_GUARDED_BY(mu_);
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
};

class CollectorServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override { Stop(); }

  void Start(size_t max_in_flight = 64) {
    auto store = std::make_unique<FakeStore>();
    store_ = store.get();
    CollectorConfig config;
    config.grpc_address = "127.0.0.1:0";
    config.metrics_address = "";
    config.db_path = "(fake store)";
    config.max_in_flight_per_stream = max_in_flight;
    auto server = CollectorServer::Create(config, std::move(store));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Collector::NewStub(server_->InProcessChannel());
  }
  // The server owns the store and closes it on Shutdown.
  void Stop() {
    if (server_ != nullptr) {
      store_->OpenGate();
      server_->Shutdown(absl::Seconds(1));
      server_.reset();
      store_ = nullptr;
    }
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

  FakeStore* store_ = nullptr;
  std::unique_ptr<CollectorServer> server_;
  std::unique_ptr<v1::Collector::Stub> stub_;
  SampleGenerator gen_{17};
};

TEST_F(CollectorServiceTest, AcksOnlyAfterTheBatchIsStoredAndApplied) {
  metrics::MetricSet reference;
  const v1::SampleBatch batch = MakeSampleBatch(gen_, 50, "run-1", "w1", 1, reference);
  store_->CloseGate();
  IngestClient client(stub_.get());
  ASSERT_TRUE(client.Write(batch));
  // The batch reached the store, which holds the commit back.
  ASSERT_TRUE(store_->WaitForInsertCalls(1, kTimeout));
  EXPECT_FALSE(client.WaitForAcks(1, absl::Milliseconds(300)));
  EXPECT_EQ(Stats("run-1").status().code(), absl::StatusCode::kNotFound);  // not applied yet

  store_->OpenGate();
  ASSERT_TRUE(client.WaitForAcks(1));
  const v1::IngestAck ack = client.acks()[0];
  EXPECT_EQ(ack.run_id(), "run-1");
  EXPECT_EQ(ack.worker_id(), "w1");
  EXPECT_EQ(ack.sequence(), 1u);
  EXPECT_FALSE(ack.duplicate());
  EXPECT_TRUE(ack.error().empty());
  EXPECT_EQ(store_->NumStored(), 1u);
  // Applied before the ack went out.
  absl::StatusOr<v1::RunStats> stats = Stats("run-1");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->batches(), 1u);
  EXPECT_TRUE(client.Finish().ok());
}

TEST_F(CollectorServiceTest, DuplicateBatchIsAckedAsDuplicateAndChangesNothing) {
  metrics::MetricSet reference;
  const v1::SampleBatch batch = MakeSampleBatch(gen_, 50, "run-1", "w1", 1, reference);
  IngestClient client(stub_.get());
  ASSERT_TRUE(client.Write(batch));
  ASSERT_TRUE(client.WaitForAcks(1));
  absl::StatusOr<v1::RunStats> before = Stats("run-1", true);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(client.Write(batch));
  ASSERT_TRUE(client.WaitForAcks(2));
  EXPECT_TRUE(client.acks()[1].duplicate());
  EXPECT_TRUE(client.acks()[1].error().empty());
  EXPECT_EQ(client.acks()[1].sequence(), 1u);
  absl::StatusOr<v1::RunStats> after = Stats("run-1", true);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*before, *after));
  EXPECT_EQ(store_->NumStored(), 1u);
  EXPECT_EQ(server_->counters().duplicate.load(), 1u);
  EXPECT_TRUE(client.Finish().ok());
}

TEST_F(CollectorServiceTest, InvalidBatchGetsAnErrorAckAndTheStreamGoesOn) {
  metrics::MetricSet reference;
  v1::SampleBatch bad = MakeSampleBatch(gen_, 10, "run-1", "w1", 1, reference);
  bad.mutable_histograms(0)->set_encoded("garbage");
  metrics::MetricSet good_ref;
  const v1::SampleBatch good = MakeSampleBatch(gen_, 10, "run-1", "w1", 1, good_ref);
  v1::SampleBatch no_run = good;
  no_run.clear_run_id();

  IngestClient client(stub_.get());
  ASSERT_TRUE(client.Write(bad));
  ASSERT_TRUE(client.Write(no_run));
  ASSERT_TRUE(client.Write(good));
  ASSERT_TRUE(client.WaitForAcks(3));
  const auto acks = client.acks();
  EXPECT_FALSE(acks[0].error().empty());
  EXPECT_EQ(acks[0].sequence(), 1u);
  EXPECT_THAT(acks[1].error(), HasSubstr("run_id is empty"));
  EXPECT_TRUE(acks[2].error().empty());
  EXPECT_FALSE(acks[2].duplicate());
  absl::StatusOr<v1::RunStats> stats = Stats("run-1");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->batches(), 1u);
  EXPECT_EQ(stats->counters().at("requests_ok"), good_ref.Get(v1::REQUESTS_OK));
  EXPECT_EQ(server_->counters().rejected.load(), 2u);
  EXPECT_TRUE(client.Finish().ok());
}

TEST_F(CollectorServiceTest, PipelinedStreamIsAckedInOrderWithFlowControl) {
  Stop();
  Start(/*max_in_flight=*/4);
  metrics::MetricSet reference;
  IngestClient client(stub_.get());
  constexpr int kBatches = 300;
  for (int i = 1; i <= kBatches; ++i) {
    ASSERT_TRUE(client.Write(MakeSampleBatch(gen_, 3, "run-p", i % 2 ? "a" : "b",
                                             static_cast<uint64_t>((i + 1) / 2), reference)));
  }
  ASSERT_TRUE(client.WaitForAcks(kBatches));
  const auto acks = client.acks();
  for (int i = 0; i < kBatches; ++i) {
    EXPECT_EQ(acks[static_cast<size_t>(i)].sequence(), static_cast<uint64_t>((i + 2) / 2));
    EXPECT_FALSE(acks[static_cast<size_t>(i)].duplicate());
  }
  EXPECT_TRUE(client.Finish().ok());
  absl::StatusOr<v1::RunStats> stats = Stats("run-p");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->batches(), static_cast<uint64_t>(kBatches));
  EXPECT_EQ(stats->counters().at("requests_ok"), reference.Get(v1::REQUESTS_OK));
}

TEST_F(CollectorServiceTest, HalfCloseFinishesOkAfterTheLastAck) {
  metrics::MetricSet reference;
  store_->CloseGate();
  IngestClient client(stub_.get());
  ASSERT_TRUE(client.Write(MakeSampleBatch(gen_, 5, "r", "w", 1, reference)));
  ASSERT_TRUE(store_->WaitForInsertCalls(1, kTimeout));
  client.WritesDone();  // half-close while the batch is held
  store_->OpenGate();
  grpc::Status status = client.Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(client.acks().size(), 1u);
}

TEST_F(CollectorServiceTest, StorageFailureEndsTheStreamWithoutAnAck) {
  metrics::MetricSet reference;
  store_->FailWith(absl::UnavailableError("disk full"));
  IngestClient client(stub_.get());
  ASSERT_TRUE(client.Write(MakeSampleBatch(gen_, 5, "r", "w", 1, reference)));
  grpc::Status status = client.Finish();
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(client.acks().empty());
  EXPECT_EQ(Stats("r").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CollectorServiceTest, ClientCancelEndsTheStream) {
  metrics::MetricSet reference;
  store_->CloseGate();
  IngestClient client(stub_.get());
  ASSERT_TRUE(client.Write(MakeSampleBatch(gen_, 5, "r", "w", 1, reference)));
  ASSERT_TRUE(store_->WaitForInsertCalls(1, kTimeout));
  client.Cancel();
  store_->OpenGate();
  EXPECT_EQ(client.Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The batch was stored all the same; a resend is a duplicate.
  IngestClient again(stub_.get());
  ASSERT_TRUE(again.Write(MakeSampleBatch(gen_, 5, "r", "w", 1, reference)));
  ASSERT_TRUE(again.WaitForAcks(1));
  EXPECT_TRUE(again.acks()[0].duplicate());
  EXPECT_TRUE(again.Finish().ok());
}

TEST_F(CollectorServiceTest, GetRunStatsErrors) {
  absl::StatusOr<v1::RunStats> empty = Stats("");
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<v1::RunStats> unknown = Stats("no-such-run");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("no-such-run"));
}

TEST_F(CollectorServiceTest, GetRunStatsPerWorker) {
  metrics::MetricSet reference;
  IngestClient client(stub_.get());
  ASSERT_TRUE(client.Write(MakeSampleBatch(gen_, 5, "r", "w1", 1, reference, true, 2)));
  ASSERT_TRUE(client.Write(MakeSampleBatch(gen_, 5, "r", "w2", 1, reference, false, 3)));
  ASSERT_TRUE(client.WaitForAcks(2));
  absl::StatusOr<v1::RunStats> stats = Stats("r", true);
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->workers_size(), 2);
  EXPECT_EQ(stats->workers(0).worker_id(), "w1");
  EXPECT_TRUE(stats->workers(0).final());
  EXPECT_FALSE(stats->workers(1).final());
  EXPECT_FALSE(stats->complete());
  EXPECT_EQ(stats->active_sessions(), 5);
  EXPECT_EQ(Stats("r", false)->workers_size(), 0);
  EXPECT_TRUE(client.Finish().ok());
}

TEST_F(CollectorServiceTest, WatchWaitsForTheRunAndEndsWhenComplete) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::WatchRunStatsRequest req;
  req.set_run_id("watched");
  req.set_interval_ms(100);
  req.set_per_worker(true);
  auto reader = stub_->WatchRunStats(&ctx, req);

  std::vector<v1::RunStats> seen;
  absl::Mutex mu;
  std::thread watcher([&] {
    v1::RunStats s;
    while (reader->Read(&s)) {
      absl::MutexLock lock(&mu);
      seen.push_back(s);
    }
  });
  auto count_seen = [&] {
    absl::MutexLock lock(&mu);
    return seen.size();
  };

  metrics::MetricSet reference;
  IngestClient client(stub_.get());
  ASSERT_TRUE(client.Write(MakeSampleBatch(gen_, 5, "watched", "w", 1, reference)));
  ASSERT_TRUE(client.WaitForAcks(1));
  // At least two snapshots of the running run arrive, one interval apart.
  {
    absl::MutexLock lock(&mu);
    auto two = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return seen.size() >= 2; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&two), kTimeout));
  }
  ASSERT_TRUE(client.Write(MakeSampleBatch(gen_, 5, "watched", "w", 2, reference, true)));
  ASSERT_TRUE(client.WaitForAcks(2));
  watcher.join();  // the server ends the stream once the run is complete
  grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(count_seen(), 3u);
  for (size_t i = 0; i + 1 < seen.size(); ++i) {
    EXPECT_GE(seen[i].batches(), 1u);  // nothing before the run existed
    EXPECT_FALSE(seen[i].complete());
  }
  EXPECT_TRUE(seen.back().complete());
  EXPECT_EQ(seen.back().batches(), 2u);
  EXPECT_EQ(seen.back().workers_size(), 1);
  EXPECT_TRUE(client.Finish().ok());
}

TEST_F(CollectorServiceTest, WatchOfAnUnknownRunSendsNothingUntilTheClientGivesUp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(testing_util::GrpcDeadline(absl::Milliseconds(400)));
  v1::WatchRunStatsRequest req;
  req.set_run_id("never");
  req.set_interval_ms(100);
  auto reader = stub_->WatchRunStats(&ctx, req);
  v1::RunStats s;
  EXPECT_FALSE(reader->Read(&s));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

TEST_F(CollectorServiceTest, WatchWithEmptyRunIdIsInvalid) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::WatchRunStatsRequest req;
  auto reader = stub_->WatchRunStats(&ctx, req);
  v1::RunStats s;
  EXPECT_FALSE(reader->Read(&s));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CollectorServiceTest, ShutdownEndsOpenWatchesAndStreams) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::WatchRunStatsRequest req;
  req.set_run_id("never");
  auto reader = stub_->WatchRunStats(&ctx, req);
  IngestClient client(stub_.get());
  metrics::MetricSet reference;
  ASSERT_TRUE(client.Write(MakeSampleBatch(gen_, 5, "r", "w", 1, reference)));
  ASSERT_TRUE(client.WaitForAcks(1));
  const absl::Time start = testing_util::MonoNow();
  Stop();
  EXPECT_LT(testing_util::MonoNow() - start, absl::Seconds(5));
  v1::RunStats s;
  EXPECT_FALSE(reader->Read(&s));
  EXPECT_FALSE(reader->Finish().ok());
  EXPECT_FALSE(client.Finish().ok());
}

TEST_F(CollectorServiceTest, ReplaysStoredBatchesOnStart) {
  metrics::MetricSet reference;
  auto store = std::make_unique<FakeStore>();
  store->Preload(MakeSampleBatch(gen_, 20, "old", "w", 1, reference));
  store->Preload(MakeSampleBatch(gen_, 20, "old", "w", 2, reference, true));
  CollectorConfig config;
  config.grpc_address = "127.0.0.1:0";
  config.metrics_address = "";
  auto server = CollectorServer::Create(config, std::move(store));
  ASSERT_TRUE(server.ok());
  EXPECT_EQ((*server)->replayed_batches(), 2u);
  absl::StatusOr<v1::RunStats> stats = (*server)->registry().GetRunStats("old", false);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->batches(), 2u);
  EXPECT_TRUE(stats->complete());
  EXPECT_EQ(stats->counters().at("requests_ok"), reference.Get(v1::REQUESTS_OK));
  (*server)->Shutdown(absl::ZeroDuration());
}

TEST(WatchIntervalTest, DefaultsAndClamps) {
  EXPECT_EQ(WatchInterval(0), absl::Seconds(1));
  EXPECT_EQ(WatchInterval(5), absl::Milliseconds(100));
  EXPECT_EQ(WatchInterval(2500), absl::Milliseconds(2500));
  EXPECT_EQ(WatchInterval(600000), absl::Seconds(60));
}

}  // namespace
}  // namespace llmload::collector
