#include "services/collector/collector_server.h"

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "tests/unit/collector/batch_util.h"
#include "tests/testing/mono_clock.h"

namespace llmload::collector {
namespace {

using ::testing::HasSubstr;
using batch_util::MakeSampleBatch;
using batch_util::SampleGenerator;

TEST(CollectorConfigTest, ValidateNamesTheBadField) {
  CollectorConfig ok;
  EXPECT_TRUE(ValidateConfig(ok).ok());
  CollectorConfig c = ok;
  c.grpc_address.clear();
  EXPECT_THAT(std::string(ValidateConfig(c).message()), HasSubstr("grpc_address"));
  c = ok;
  c.db_path.clear();
  EXPECT_THAT(std::string(ValidateConfig(c).message()), HasSubstr("db_path"));
  c = ok;
  c.max_group_commit = 0;
  EXPECT_THAT(std::string(ValidateConfig(c).message()), HasSubstr("max_group_commit"));
  c = ok;
  c.max_in_flight_per_stream = 0;
  EXPECT_THAT(std::string(ValidateConfig(c).message()), HasSubstr("max_in_flight_per_stream"));
  c = ok;
  c.metrics_address.clear();  // disables the endpoint: fine
  EXPECT_TRUE(ValidateConfig(c).ok());
}

class CollectorServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("collector_server_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    config_.grpc_address = "127.0.0.1:0";
    config_.metrics_address = "127.0.0.1:0";
    config_.db_path = (dir_ / "collector.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  CollectorConfig config_;
};

TEST_F(CollectorServerTest, StoresInSqliteAndReplaysInTheNextInstance) {
  SampleGenerator gen(12);
  metrics::MetricSet reference;
  const v1::SampleBatch batch = MakeSampleBatch(gen, 30, "r", "w", 1, reference, true);
  {
    auto server = CollectorServer::Create(config_);
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_GT((*server)->grpc_port(), 0);
    EXPECT_GT((*server)->metrics_port(), 0);
    auto stub = v1::Collector::NewStub((*server)->InProcessChannel());
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
    auto stream = stub->Ingest(&ctx);
    ASSERT_TRUE(stream->Write(batch));
    v1::IngestAck ack;
    ASSERT_TRUE(stream->Read(&ack));
    EXPECT_FALSE(ack.duplicate());
    EXPECT_TRUE(ack.error().empty());
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
    (*server)->Shutdown(absl::Seconds(1));
  }
  config_.metrics_address = "";
  auto again = CollectorServer::Create(config_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->replayed_batches(), 1u);
  absl::StatusOr<v1::RunStats> stats = (*again)->registry().GetRunStats("r", false);
  ASSERT_TRUE(stats.ok());
  EXPECT_TRUE(stats->complete());
  EXPECT_EQ(stats->counters().at("requests_ok"), reference.Get(v1::REQUESTS_OK));
}

TEST_F(CollectorServerTest, SealsFenceLateBatchesAndSurviveARestart) {
  SampleGenerator gen(13);
  metrics::MetricSet reference;
  v1::SampleBatch first = MakeSampleBatch(gen, 10, "r", "w", 1, reference);
  first.set_epoch(4);
  // Three more requests offered than ended: in flight at the loss.
  uint64_t ended = 0;
  for (const v1::CounterDelta& c : first.counters()) {
    if (c.counter() == v1::REQUESTS_OK || metrics::IsRequestFailureCounter(c.counter())) {
      ended += c.value();
    }
  }
  v1::CounterDelta* offered = first.add_counters();
  offered->set_counter(v1::OFFERED);
  offered->set_value(ended + 3);
  v1::SampleBatch late = MakeSampleBatch(gen, 10, "r", "w", 2, reference, true);
  late.set_epoch(4);
  v1::SealShardRequest seal;
  seal.set_run_id("r");
  seal.set_worker_id("w");
  seal.set_epoch(4);
  auto ingest = [](v1::Collector::Stub& stub, const v1::SampleBatch& b) {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
    auto stream = stub.Ingest(&ctx);
    EXPECT_TRUE(stream->Write(b));
    v1::IngestAck ack;
    EXPECT_TRUE(stream->Read(&ack));
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
    return ack;
  };
  uint64_t lost = 0;
  {
    auto server = CollectorServer::Create(config_);
    ASSERT_TRUE(server.ok()) << server.status();
    auto stub = v1::Collector::NewStub((*server)->InProcessChannel());
    EXPECT_FALSE(ingest(*stub, first).fenced());
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
    v1::SealedShard sealed;
    ASSERT_TRUE(stub->SealShard(&ctx, seal, &sealed).ok());
    EXPECT_EQ(sealed.batches(), 1u);
    lost = sealed.lost();
    EXPECT_EQ(lost, 3u);
    const v1::IngestAck ack = ingest(*stub, late);
    EXPECT_TRUE(ack.fenced());
    EXPECT_EQ(ack.epoch(), 4u);
    (*server)->Shutdown(absl::Seconds(1));
  }
  auto again = CollectorServer::Create(config_);
  ASSERT_TRUE(again.ok()) << again.status();
  auto stub = v1::Collector::NewStub((*again)->InProcessChannel());
  EXPECT_TRUE(ingest(*stub, late).fenced());  // still sealed
  grpc::ClientContext ctx;
  v1::GetRunStatsRequest req;
  req.set_run_id("r");
  v1::RunStats stats;
  ASSERT_TRUE(stub->GetRunStats(&ctx, req, &stats).ok());
  EXPECT_EQ(stats.counters().at("lost"), lost);  // counted once, as before
  grpc::ClientContext ctx2;
  v1::SealedShard resealed;
  ASSERT_TRUE(stub->SealShard(&ctx2, seal, &resealed).ok());
  EXPECT_EQ(resealed.lost(), lost);
  (*again)->Shutdown(absl::Seconds(1));
}

TEST_F(CollectorServerTest, ShutdownEndsIdleIngestStreamsWithoutWaitingOutTheGrace) {
  // Without the /metrics endpoint: stopping it waits for civetweb's listener
  // thread, which polls in 2 s slices, so it alone took up to 2 s and left
  // the bound below a few milliseconds of margin.
  config_.metrics_address.clear();
  auto server = CollectorServer::Create(config_);
  ASSERT_TRUE(server.ok()) << server.status();
  // Over TCP like a worker: gRPC's in-process transport ends open streams at
  // shutdown by itself, so through InProcessChannel() this test passed even
  // with the drain removed.
  auto stub = v1::Collector::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->grpc_port()),
                          grpc::InsecureChannelCredentials()));
  SampleGenerator gen(14);
  metrics::MetricSet reference;
  const v1::SampleBatch batch = MakeSampleBatch(gen, 5, "r", "w", 1, reference);
  grpc::ClientContext ctx;
  auto stream = stub->Ingest(&ctx);
  ASSERT_TRUE(stream->Write(batch));
  v1::IngestAck ack;
  ASSERT_TRUE(stream->Read(&ack));  // acked; the stream now idles
  const absl::Time start = testing_util::MonoNow();
  (*server)->Shutdown(absl::Seconds(10));
  EXPECT_LT(testing_util::MonoNow() - start, absl::Seconds(2));
  EXPECT_FALSE(stream->Read(&ack));
  EXPECT_FALSE(stream->Finish().ok());
}

TEST_F(CollectorServerTest, MetricsPortInUseFailsCleanly) {
  auto first = CollectorServer::Create(config_);
  ASSERT_TRUE(first.ok()) << first.status();
  CollectorConfig second = config_;
  second.db_path = (dir_ / "other.db").string();
  second.metrics_address = "127.0.0.1:" + std::to_string((*first)->metrics_port());
  auto failed = CollectorServer::Create(second);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("metrics"));
}

}  // namespace
}  // namespace llmload::collector
