#include "services/worker/batch_shipper.h"

#include <map>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "services/common/grpc_util.h"

namespace llmload::worker {
namespace {

// A collector that acks batches, remembers what it applied, and can be told
// to break the stream after receiving some batches without acking them.
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
        ack.set_duplicate(applied_.count(key) != 0);
        applied_.insert(key);
      }
      if (!stream->Write(ack)) {
        break;
      }
    }
    return grpc::Status::OK;
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

}  // namespace
}  // namespace llmload::worker
