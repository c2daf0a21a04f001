#include "services/collector/collector_server.h"

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
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
