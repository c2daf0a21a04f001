#include "services/worker/batch_shipper.h"

#include <map>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "services/common/grpc_util.h"

namespace llmload::worker {
namespace {

// A collector that acks batches, remembers what it applied, and can be told
// to break the stream after receiving some batches without acking them, or
// to reject given batches as invalid (answered with an error, never applied).
class FakeCollector final : public v1::Collector::Service {
 public:
  grpc::Status Ingest(grpc::ServerContext* ctx,
                      grpc::ServerReaderWriter<v1::IngestAck, v1::SampleBatch>* stream) override {
    v1::SampleBatch batch;
    while (stream->Read(&batch)) {
      bool drop = false;
      {
        absl::MutexLock lock(&mu_);
        ++received_;
        if (break_after_ > 0 && --break_after_ == 0) {
          drop = true;  // received, not acked: the worker must resend it
        }
      }
      if (drop) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected stream failure");
      }
      v1::IngestAck ack;
      ack.set_run_id(batch.run_id());
      ack.set_worker_id(batch.worker_id());
      ack.set_sequence(batch.sequence());
      {
        absl::MutexLock lock(&mu_);
        auto key = std::make_pair(batch.run_id(), batch.sequence());
        if (auto it = reject_.find(key); it != reject_.end()) {
          ack.set_error(it->second);
        } else {
          ack.set_duplicate(applied_.count(key) != 0);
          applied_.insert(key);
        }
      }
      if (!stream->Write(ack)) {
        break;
      }
    }
    return grpc::Status::OK;
  }

  // The collector's answer to batch `sequence` of `run` is `reason`.
  void Reject(const std::string& run, uint64_t sequence, const std::string& reason) {
    absl::MutexLock lock(&mu_);
    reject_[{run, sequence}] = reason;
  }
  void BreakAfter(int n) {
    absl::MutexLock lock(&mu_);
    break_after_ = n;
  }
  std::set<std::pair<std::string, uint64_t>> applied() {
    absl::MutexLock lock(&mu_);
    return applied_;
  }
  int received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

 private:
  absl::Mutex mu_;
  std::set<std::pair<std::string, uint64_t>> applied_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, uint64_t>, std::string> reject_ ABSL_GUARDED_BY(mu_);
  int received_ ABSL_GUARDED_BY(mu_) = 0;
  int break_after_ ABSL_GUARDED_BY(mu_) = 0;
};

class BatchShipperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = StartGrpcServer("127.0.0.1:0", {&collector_}, &port_);
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override { server_->Shutdown(); }

  static v1::SampleBatch Batch(const std::string& run) {
    v1::SampleBatch b;
    b.set_run_id(run);
    b.set_worker_id("w");
    return b;
  }
  // A batch that measured 5 ok and 2 timed-out requests, with 7 ttft and 20
  // itl samples.
  static v1::SampleBatch MeasuredBatch(const std::string& run) {
    metrics::MetricSet set;
    for (uint64_t i = 1; i <= 7; ++i) {
      set.RecordUs(v1::TTFT, 1000 * i);
    }
    for (uint64_t i = 1; i <= 20; ++i) {
      set.RecordUs(v1::ITL, 100 * i);
    }
    set.Add(v1::REQUESTS_OK, 5);
    set.Add(v1::TIMEOUT, 2);
    set.Add(v1::TOKENS, 27);
    v1::SampleBatch b = Batch(run);
    set.AppendTo(b);
    return b;
  }
  std::string Address() const { return "127.0.0.1:" + std::to_string(port_); }

  FakeCollector collector_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(BatchShipperTest, NumbersBatchesPerRunAndTracksAcks) {
  BatchShipper shipper(Address(), 100);
  EXPECT_EQ(shipper.Enqueue(Batch("a")), 1u);
  EXPECT_EQ(shipper.Enqueue(Batch("a")), 2u);
  EXPECT_EQ(shipper.Enqueue(Batch("b")), 1u);
  ASSERT_TRUE(shipper.Flush(absl::Seconds(10)));
  EXPECT_TRUE(shipper.AllAcked("a"));
  EXPECT_TRUE(shipper.AllAcked("b"));
  EXPECT_EQ(shipper.AckedSequence("a"), 2u);
  EXPECT_EQ(shipper.AckedSequence("b"), 1u);
  EXPECT_EQ(collector_.applied(),
            (std::set<std::pair<std::string, uint64_t>>{{"a", 1}, {"a", 2}, {"b", 1}}));
}

TEST_F(BatchShipperTest, ResendsWhatWasNotAckedAfterABrokenStream) {
  collector_.BreakAfter(3);  // the third batch is received, then the stream dies
  BatchShipper shipper(Address(), 100);
  for (int i = 0; i < 10; ++i) {
    shipper.Enqueue(Batch("run"));
  }
  ASSERT_TRUE(shipper.Flush(absl::Seconds(15)));
  std::set<std::pair<std::string, uint64_t>> want;
  for (uint64_t s = 1; s <= 10; ++s) {
    want.insert({"run", s});
  }
  EXPECT_EQ(collector_.applied(), want);
  EXPECT_GT(collector_.received(), 10);  // something was sent twice
  EXPECT_EQ(shipper.Unacked(), 0u);
}

TEST_F(BatchShipperTest, KeepsBatchesWhileTheCollectorIsAwayAndDeliversThemLater) {
  FakeCollector late;
  int late_port = 0;
  // Reserve a port by starting and stopping a server on it.
  {
    auto tmp = StartGrpcServer("127.0.0.1:0", {&late}, &late_port);
    tmp->Shutdown();
  }
  BatchShipper shipper("127.0.0.1:" + std::to_string(late_port), 100);
  shipper.Enqueue(Batch("r"));
  shipper.Enqueue(Batch("r"));
  EXPECT_FALSE(shipper.Flush(absl::Milliseconds(500)));
  EXPECT_FALSE(shipper.AllAcked("r"));
  EXPECT_EQ(shipper.Unacked(), 2u);
  int bound = 0;
  auto server = StartGrpcServer("127.0.0.1:" + std::to_string(late_port), {&late}, &bound);
  ASSERT_EQ(bound, late_port);
  ASSERT_TRUE(shipper.Flush(absl::Seconds(15)));
  EXPECT_EQ(late.applied().size(), 2u);
  shipper.Stop();  // ends the stream the server would otherwise wait for
  server->Shutdown();
}

TEST_F(BatchShipperTest, BoundedQueueDropsTheOldestAndCountsIt) {
  // Point at a port where nothing listens so nothing is acked.
  int dead_port = 0;
  {
    FakeCollector tmp_svc;
    auto tmp = StartGrpcServer("127.0.0.1:0", {&tmp_svc}, &dead_port);
    tmp->Shutdown();
  }
  BatchShipper shipper("127.0.0.1:" + std::to_string(dead_port), 3);
  for (int i = 0; i < 5; ++i) {
    shipper.Enqueue(Batch("r"));
  }
  EXPECT_EQ(shipper.Unacked(), 3u);
  EXPECT_EQ(shipper.DroppedBatches("r"), 2u);
}

TEST_F(BatchShipperTest, CountsWhatTheCollectorRejectsAndWhy) {
  // The collector's own reasons (services/collector/run_registry.cc): a
  // stepped wall clock, and a total that would overflow.
  const std::string stepped = "interval_end_us is before interval_start_us";
  const std::string overflow = "ttft: merging would overflow the run's total";
  collector_.Reject("run", 2, stepped);
  collector_.Reject("run", 3, stepped);
  collector_.Reject("run", 5, overflow);
  BatchShipper shipper(Address(), 100);
  for (int i = 0; i < 5; ++i) {
    shipper.Enqueue(MeasuredBatch("run"));
  }
  shipper.Enqueue(MeasuredBatch("other"));
  ASSERT_TRUE(shipper.Flush(absl::Seconds(10)));

  // A rejected batch is answered for good: nothing is left to resend...
  EXPECT_TRUE(shipper.AllAcked("run"));
  EXPECT_EQ(shipper.Unacked(), 0u);
  EXPECT_EQ(collector_.applied(),
            (std::set<std::pair<std::string, uint64_t>>{{"run", 1}, {"run", 4}, {"other", 1}}));
  // ...but it is counted, with what it held and the collector's reasons.
  const BatchShipper::Rejections rejected = shipper.Rejected("run");
  EXPECT_EQ(rejected.batches, 3u);
  EXPECT_EQ(rejected.requests, 3u * 7);
  EXPECT_EQ(rejected.samples, 3u * 27);
  EXPECT_EQ(rejected.reason, stepped + "; " + overflow);
  EXPECT_EQ(shipper.Rejected("other").batches, 0u);
  EXPECT_TRUE(shipper.Rejected("other").reason.empty());
}

TEST_F(BatchShipperTest, KeepsAFewDistinctReasons) {
  for (uint64_t s = 1; s <= 6; ++s) {
    collector_.Reject("run", s, s == 6 ? "reason 1" : "reason " + std::to_string(s));
  }
  BatchShipper shipper(Address(), 100);
  for (int i = 0; i < 6; ++i) {
    shipper.Enqueue(Batch("run"));
  }
  ASSERT_TRUE(shipper.Flush(absl::Seconds(10)));
  const BatchShipper::Rejections rejected = shipper.Rejected("run");
  EXPECT_EQ(rejected.batches, 6u);
  EXPECT_EQ(rejected.requests, 0u);
  EXPECT_EQ(rejected.samples, 0u);
  EXPECT_EQ(rejected.reason, "reason 1; reason 2; reason 3; and other reasons");
}

}  // namespace
}  // namespace llmload::worker
