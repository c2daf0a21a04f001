// spec.targetMetrics end to end: the collector scrapes the emulator's
// GET /metrics during the run; WatchRun shows the series live, and the
// run's statistics hold the target's own count of what the run sent, equal
// to the client-side count. All on 127.0.0.1; the emulator is fresh per
// test, so its counters hold this run's requests only.

#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "tests/testing/emulator_stats.h"
#include "tests/testing/mono_clock.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

constexpr int kClients = 3;
constexpr int kCycles = 4;
constexpr uint64_t kRequests = kClients * kCycles;
constexpr uint64_t kWords = 8;  // tokens per response

const char kRequestsSeries[] = "llmload_emulator_requests_total";
const char kTokensSeries[] = "llmload_emulator_tokens_sent_total";

const v1::TargetSeries* Find(const google::protobuf::RepeatedPtrField<v1::TargetSeries>& all,
                             const std::string& name) {
  for (const v1::TargetSeries& s : all) {
    if (s.name() == name) {
      return &s;
    }
  }
  return nullptr;
}

class TargetMetricsTest : public testing_util::StackTest {
 protected:
  void SetUp() override {
    testing_util::StackOptions options;
    options.workers = 2;
    StartStack(options);
  }

  // The spec as a user writes it (proto3 JSON), so the field names are
  // checked too. Each request takes about kWords x 0.1 s, so the run lasts
  // a few seconds: long enough for WatchRun's once-a-second updates.
  v1::RunSpec Spec(const std::string& metrics_path) {
    const std::string json = absl::StrCat(
        R"({"name": "target-metrics", "target": )",
        testing_util::EmulatorTargetJson("OPENAI_CHAT", emulator_port_),
        R"(, "load": {"closed": {"clients": )", kClients, R"(, "cyclesPerClient": )", kCycles,
        R"(}}, "emulation": {"lengthWords": )", kWords,
        R"(, "tokenDelay": "0.1s"}, "targetMetrics": {"url": "http://127.0.0.1:)",
        emulator_port_, metrics_path, R"(", "series": [")", kRequestsSeries,
        R"({protocol=\"OPENAI_CHAT\"}", ")", kTokensSeries,
        R"({protocol=\"OPENAI_CHAT\"}"], "interval": "0.2s"}})");
    v1::RunSpec spec;
    const auto status = google::protobuf::util::JsonStringToMessage(json, &spec);
    EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
    return spec;
  }
};

TEST_F(TargetMetricsTest, RunStatsHoldTheTargetsOwnCountsLiveAndAtTheEnd) {
  const v1::Run started = StartRun(Spec("/metrics"));
  ASSERT_FALSE(started.id().empty());

  grpc::ClientContext ctx;
  ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(60)));
  v1::WatchRunRequest req;
  req.set_id(started.id());
  auto reader = stub_->WatchRun(&ctx, req);
  v1::RunUpdate update;
  int live_with_series = 0;
  double live_requests_max = 0;
  while (reader->Read(&update)) {
    if (update.run().state() != v1::RUNNING) {
      continue;
    }
    if (const v1::TargetSeries* s = Find(update.live().target_series(), kRequestsSeries)) {
      ++live_with_series;
      live_requests_max = std::max(live_requests_max, s->value());
      EXPECT_EQ(s->type(), "counter");
    }
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_GE(live_with_series, 1) << "WatchRun never showed the target's series while running";
  EXPECT_GT(live_requests_max, 0);
  EXPECT_LE(live_requests_max, static_cast<double>(kRequests));

  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  ASSERT_EQ(CounterOf(run.stats(), v1::REQUESTS_OK), kRequests);
  const uint64_t client_tokens = CounterOf(run.stats(), v1::TOKENS);
  EXPECT_EQ(client_tokens, kRequests * kWords);

  std::map<int64_t, testing_util::EmulatorStats> by_pid;
  ASSERT_TRUE(testing_util::CollectEmulatorStats(emulator_port_, 1, absl::Seconds(10), &by_pid));
  ASSERT_EQ(by_pid.size(), 1u);
  const testing_util::EmulatorStats& emulator = by_pid.begin()->second;
  EXPECT_EQ(emulator.RequestsOf("OPENAI_CHAT"), kRequests);
  EXPECT_EQ(emulator.tokens_sent.at("OPENAI_CHAT"), kRequests * kWords);

  // The final scrape came after the last request: exact counts.
  ASSERT_EQ(run.stats().target_series_size(), 2) << run.stats().DebugString();
  const v1::TargetSeries* requests = Find(run.stats().target_series(), kRequestsSeries);
  ASSERT_NE(requests, nullptr);
  EXPECT_EQ(requests->value(), static_cast<double>(kRequests));
  EXPECT_EQ(requests->max(), static_cast<double>(kRequests));
  EXPECT_EQ(requests->type(), "counter");
  EXPECT_GE(requests->samples(), 3u);
  EXPECT_LE(requests->increase(), static_cast<double>(kRequests));
  EXPECT_EQ(requests->selector(),
            absl::StrCat(kRequestsSeries, "{protocol=\"OPENAI_CHAT\"}"));
  ASSERT_EQ(requests->labels_size(), 2);
  EXPECT_EQ(requests->labels(0).name(), "process");
  EXPECT_EQ(requests->labels(0).value(), "0");
  EXPECT_EQ(requests->labels(1).name(), "protocol");
  EXPECT_EQ(requests->labels(1).value(), "OPENAI_CHAT");
  const v1::TargetSeries* tokens = Find(run.stats().target_series(), kTokensSeries);
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->value(), static_cast<double>(client_tokens));

  // The collector's windows carry the series too.
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", collector_port_),
                                     grpc::InsecureChannelCredentials());
  auto collector = v1::Collector::NewStub(channel);
  grpc::ClientContext stats_ctx;
  stats_ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(10)));
  v1::GetRunStatsRequest stats_req;
  stats_req.set_run_id(run.id());
  stats_req.set_windows(true);
  v1::RunStats stats;
  ASSERT_TRUE(collector->GetRunStats(&stats_ctx, stats_req, &stats).ok());
  int windows_with_series = 0;
  double last_window_value = -1;
  for (const v1::WindowStats& w : stats.windows()) {
    if (const v1::TargetSeries* s = Find(w.target_series(), kRequestsSeries)) {
      ++windows_with_series;
      EXPECT_GE(s->value(), last_window_value);  // a counter never goes back
      last_window_value = s->value();
    }
  }
  EXPECT_GE(windows_with_series, 2);
}

TEST_F(TargetMetricsTest, AFailingScrapeNeverFailsTheRun) {
  v1::RunSpec spec = Spec("/no-such-metrics");  // the emulator answers 404
  spec.mutable_load()->mutable_closed()->set_cycles_per_client(1);
  spec.mutable_emulation()->mutable_token_delay()->set_nanos(10 * 1000 * 1000);
  spec.mutable_emulation()->mutable_token_delay()->set_seconds(0);
  const v1::Run started = StartRun(spec);
  const v1::Run run = WaitForEnd(started.id(), absl::Seconds(30));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  EXPECT_EQ(CounterOf(run.stats(), v1::REQUESTS_OK), uint64_t{kClients});
  EXPECT_EQ(run.stats().target_series_size(), 0);
}

}  // namespace
}  // namespace llmload
