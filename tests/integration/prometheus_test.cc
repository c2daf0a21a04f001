// The collector's /metrics through a real Prometheus server: the real
// collector binary ingests a two-worker run over gRPC Ingest (batch by batch,
// exactly as workers ship them), a real worker serves its own /metrics, and
// Prometheus (Debian package `prometheus`) scrapes both every second on
// loopback. Through Prometheus' HTTP API the test checks that
//  - every exact-quantile series equals the collector's GetRunStats value,
//  - every PromQL expression of every panel of every dashboard in
//    deploy/grafana/dashboards returns data for the run.
//
// Without a prometheus binary the test skips locally and FAILS under CI=true.

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "boost/json.hpp"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "services/common/grpc_util.h"
#include "tests/testing/process.h"
#include "tests/testing/mono_clock.h"

namespace llmload {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing_util::BinPath;
using testing_util::ChildProcess;
using testing_util::FreePort;

constexpr char kRunId[] = "prom-run-1";

std::optional<std::string> FindPrometheus() {
  if (const char* env = std::getenv("PROMETHEUS_BIN"); env != nullptr && *env != '\0') {
    return std::string(env);
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = dir + "/prometheus";
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return std::nullopt;
}

std::string UrlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// Deterministic latencies over several orders of magnitude (microseconds).
class Samples {
 public:
  explicit Samples(uint64_t seed) : state_(seed * 2654435761u + 1) {}
  uint64_t Next() {
    state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    const uint64_t r = state_ >> 33;
    const uint64_t scale = uint64_t{1} << (6 + r % 16);  // 64 us .. 2 s
    return 1 + (r / 16) % scale + scale / 2;
  }

 private:
  uint64_t state_;
};

// Every panel's targets[].expr, rows' nested panels included.
void CollectExprs(const json::value& panels, const std::string& file,
                  std::vector<std::pair<std::string, std::string>>& out) {
  if (!panels.is_array()) {
    return;
  }
  for (const json::value& p : panels.as_array()) {
    const json::object& panel = p.as_object();
    const std::string title =
        panel.contains("title") ? std::string(panel.at("title").as_string()) : "";
    if (panel.contains("targets")) {
      for (const json::value& t : panel.at("targets").as_array()) {
        if (t.as_object().contains("expr")) {
          out.emplace_back(file + ": " + title, std::string(t.at("expr").as_string()));
        }
      }
    }
    if (panel.contains("panels")) {
      CollectExprs(panel.at("panels"), file, out);
    }
  }
}

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::optional<std::string> prometheus = FindPrometheus();
    if (!prometheus.has_value()) {
      const char* ci = std::getenv("CI");
      if (ci != nullptr && std::string(ci) == "true") {
        FAIL() << "prometheus is not installed (apt-get install prometheus); CI must run this test";
      }
      GTEST_SKIP() << "prometheus is not installed (apt-get install prometheus)";
    }
    dir_ = testing_util::MakeTempDir("prometheus");
    ASSERT_FALSE(dir_.empty());
    collector_port_ = FreePort();
    metrics_port_ = FreePort();
    worker_metrics_port_ = FreePort();
    prometheus_port_ = FreePort();
    collector_ = ChildProcess::Start(
        BinPath("llmload-collector"),
        {absl::StrCat("--grpc_address=127.0.0.1:", collector_port_),
         absl::StrCat("--metrics_address=127.0.0.1:", metrics_port_), "--db_path=collector.db"},
        dir_ + "/collector.log", dir_);
    // A real worker for the fleet dashboard's process-health series; it has
    // no orchestrator to attach to, which is fine for its /metrics.
    worker_ = ChildProcess::Start(
        BinPath("llmload-worker"),
        {absl::StrCat("--orchestrator=127.0.0.1:", FreePort()),
         absl::StrCat("--collector=127.0.0.1:", collector_port_), "--worker_id=fleet-worker",
         "--threads=1", absl::StrCat("--metrics_address=127.0.0.1:", worker_metrics_port_)},
        dir_ + "/worker.log", dir_);
    ASSERT_TRUE(testing_util::WaitForTcp(collector_port_, absl::Seconds(20)));
    ASSERT_TRUE(testing_util::WaitForTcp(metrics_port_, absl::Seconds(20)));
    ASSERT_TRUE(testing_util::WaitForTcp(worker_metrics_port_, absl::Seconds(20)));

    const std::string config = dir_ + "/prometheus.yml";
    std::ofstream(config) << "global:\n"
                          << "  scrape_interval: 1s\n"
                          << "  evaluation_interval: 1s\n"
                          << "scrape_configs:\n"
                          << "  - job_name: llmload-collector\n"
                          << "    static_configs:\n"
                          << "      - targets: ['127.0.0.1:" << metrics_port_ << "']\n"
                          << "  - job_name: llmload-worker\n"
                          << "    static_configs:\n"
                          << "      - targets: ['127.0.0.1:" << worker_metrics_port_ << "']\n";
    prometheus_ = ChildProcess::Start(
        *prometheus,
        {"--config.file=" + config, "--storage.tsdb.path=" + dir_ + "/tsdb",
         absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port_)},
        dir_ + "/prometheus.log", dir_);
    ASSERT_TRUE(testing_util::WaitForTcp(prometheus_port_, absl::Seconds(30)));
    stub_ = v1::Collector::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", collector_port_)));
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const auto& [name, p] : std::map<std::string, ChildProcess*>{
               {"collector", collector_.get()},
               {"worker", worker_.get()},
               {"prometheus", prometheus_.get()}}) {
        if (p != nullptr) {
          std::string log = p->ReadLog();
          if (log.size() > 3000) {
            log = log.substr(log.size() - 3000);
          }
          std::cerr << "---- " << name << " log ----\n" << log << "\n";
        }
      }
    }
    if (prometheus_) prometheus_->Stop();
    if (worker_) worker_->Stop();
    if (collector_) collector_->Stop();
  }

  // /api/v1/query: the result vector, or nullopt when the query failed.
  std::optional<json::array> Query(const std::string& promql) {
    int status = 0;
    const std::string body = testing_util::HttpGet(
        prometheus_port_, "/api/v1/query?query=" + UrlEncode(promql), &status);
    if (status != 200) {
      last_error_ = absl::StrCat("HTTP ", status, ": ", body);
      return std::nullopt;
    }
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    if (ec || !v.is_object() || v.at("status").as_string() != "success") {
      last_error_ = body;
      return std::nullopt;
    }
    const json::object& data = v.at("data").as_object();
    if (data.at("resultType").as_string() == "scalar") {
      return json::array{data.at("result")};
    }
    return data.at("result").as_array();
  }

  // The value of a single-series instant query.
  std::optional<double> Scalar(const std::string& promql) {
    std::optional<json::array> r = Query(promql);
    if (!r.has_value() || r->size() != 1) {
      return std::nullopt;
    }
    const json::value& sample = (*r)[0].is_object() ? (*r)[0].at("value") : (*r)[0];
    return std::strtod(std::string(sample.as_array()[1].as_string()).c_str(), nullptr);
  }

  ::testing::AssertionResult WaitForValue(const std::string& promql, double at_least,
                                          absl::Duration timeout) {
    const absl::Time deadline = testing_util::MonoNow() + timeout;
    std::optional<double> v;
    while (testing_util::MonoNow() < deadline) {
      v = Scalar(promql);
      if (v.has_value() && *v >= at_least) {
        return ::testing::AssertionSuccess();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return ::testing::AssertionFailure()
           << promql << " did not reach " << at_least << " (last: "
           << (v.has_value() ? std::to_string(*v) : "no data") << ", " << last_error_ << ")";
  }

  std::string dir_;
  int collector_port_ = 0;
  int metrics_port_ = 0;
  int worker_metrics_port_ = 0;
  int prometheus_port_ = 0;
  std::unique_ptr<ChildProcess> collector_;
  std::unique_ptr<ChildProcess> worker_;
  std::unique_ptr<ChildProcess> prometheus_;
  std::unique_ptr<v1::Collector::Stub> stub_;
  std::string last_error_;
};

TEST_F(PrometheusTest, ExactQuantilesAndEveryDashboardPanelThroughARealPrometheus) {
  ASSERT_TRUE(WaitForValue("up{job=\"llmload-collector\"}", 1, absl::Seconds(30)));
  ASSERT_TRUE(WaitForValue("up{job=\"llmload-worker\"}", 1, absl::Seconds(30)));

  // Two workers, six intervals each, shipped as the run goes: Prometheus
  // scrapes between intervals, so rates and windows see a moving run.
  grpc::ClientContext ctx;
  auto stream = stub_->Ingest(&ctx);
  Samples gen(17);
  constexpr int kIntervals = 6;
  uint64_t applied = 0;
  for (int seq = 1; seq <= kIntervals; ++seq) {
    // wall clock: batch timestamps are Unix times, as workers send them.
    const int64_t now_us = absl::ToUnixMicros(absl::Now());  // wall clock
    for (const char* worker : {"w-a", "w-b"}) {
      metrics::MetricSet set;
      for (v1::Metric m : metrics::AllMetrics()) {
        for (int i = 0; i < 300; ++i) {
          set.RecordUs(m, gen.Next());
        }
      }
      set.Add(v1::REQUESTS_OK, 300);
      set.Add(v1::GOOD, 280);
      set.Add(v1::OFFERED, 305);
      set.Add(v1::DROPPED, 1);
      set.Add(v1::TIMEOUT, 3);
      set.Add(v1::HTTP_5XX, 2);
      set.Add(v1::TOKENS, 300 * 40);
      set.Add(v1::INPUT_TOKENS, 300 * 25);
      set.Add(v1::INPUT_TOKENS_ESTIMATED, 300 * 5);
      set.Add(v1::REQUESTS_CANCELLED, 4);
      set.Add(v1::UNFINISHED, seq == kIntervals ? 2 : 0);
      set.Add(v1::CHUNKS, 300 * 40);
      set.Add(v1::BYTES_IN, 300 * 4000);
      set.Add(v1::BYTES_OUT, 300 * 200);
      set.Add(v1::SESSIONS_OPENED, seq == 1 ? 20 : 0);
      set.Add(v1::RECONNECTS, seq == 3 ? 1 : 0);
      set.Add(v1::CYCLES, 300);
      v1::SampleBatch batch;
      batch.set_run_id(kRunId);
      batch.set_worker_id(worker);
      batch.set_sequence(static_cast<uint64_t>(seq));
      batch.set_interval_start_us(now_us - 1'000'000);
      batch.set_interval_end_us(now_us);
      batch.set_active_sessions(seq == kIntervals ? 0 : 20);
      batch.set_final(seq == kIntervals);
      batch.set_protocol("CENTRIFUGO_EMULATOR");
      batch.set_worker_cpu_percent(35.5);
      batch.set_worker_loop_lag_ms(1.5);
      set.AppendTo(batch);
      ASSERT_TRUE(stream->Write(batch));
      v1::IngestAck ack;
      ASSERT_TRUE(stream->Read(&ack));
      ASSERT_TRUE(ack.error().empty()) << ack.error();
      ++applied;
    }
    // Paced by Prometheus itself: the next interval waits for a scrape of
    // this one.
    ASSERT_TRUE(WaitForValue("llmload_collector_batches_total{result=\"applied\"}",
                             static_cast<double>(applied), absl::Seconds(20)));
  }
  stream->WritesDone();
  ASSERT_TRUE(stream->Finish().ok());

  const std::string run_sel = absl::StrCat("run_id=\"", kRunId, "\"");
  ASSERT_TRUE(WaitForValue("llmload_run_complete{" + run_sel + "}", 1, absl::Seconds(20)));

  // The exact quantiles in Prometheus equal GetRunStats', metric by metric.
  grpc::ClientContext stats_ctx;
  v1::GetRunStatsRequest req;
  req.set_run_id(kRunId);
  req.set_windows(true);
  v1::RunStats stats;
  ASSERT_TRUE(stub_->GetRunStats(&stats_ctx, req, &stats).ok());
  ASSERT_EQ(stats.metrics_size(), static_cast<int>(metrics::AllMetrics().size()));
  EXPECT_EQ(stats.protocol(), "CENTRIFUGO_EMULATOR");
  EXPECT_GE(stats.windows_size(), 1);
  int compared = 0;
  for (const v1::MetricStats& ms : stats.metrics()) {
    SCOPED_TRACE(ms.metric());
    const std::string family = "llmload_" + ms.metric() + "_seconds";
    for (const auto& [quantile, ms_value] :
         std::vector<std::pair<std::string, double>>{{"0.5", ms.p50_ms()},
                                                     {"0.9", ms.p90_ms()},
                                                     {"0.95", ms.p95_ms()},
                                                     {"0.99", ms.p99_ms()},
                                                     {"0.999", ms.p999_ms()}}) {
      const std::string q = family + "{" + run_sel +
                            ",protocol=\"CENTRIFUGO_EMULATOR\",quantile=\"" + quantile + "\"}";
      const std::optional<double> got = Scalar(q);
      ASSERT_TRUE(got.has_value()) << q << ": " << last_error_;
      const double want = ms_value / 1000.0;
      EXPECT_NEAR(*got, want, want * 1e-12) << q;
      ++compared;
    }
    const std::optional<double> count = Scalar(family + "_count{" + run_sel + "}");
    ASSERT_TRUE(count.has_value());
    EXPECT_EQ(*count, static_cast<double>(ms.count()));
    // The classic histogram holds the same samples (one series per worker
    // by default: their sum is the run's).
    const std::optional<double> inf = Scalar("sum(llmload_" + ms.metric() +
                                             "_histogram_seconds_bucket{" + run_sel +
                                             ",le=\"+Inf\"})");
    ASSERT_TRUE(inf.has_value());
    EXPECT_EQ(*inf, static_cast<double>(ms.count()));
  }
  EXPECT_EQ(compared, 5 * static_cast<int>(metrics::AllMetrics().size()));
  EXPECT_EQ(Scalar("llmload_requests_total{" + run_sel + ",outcome=\"ok\"}"),
            static_cast<double>(stats.counters().at("requests_ok")));

  // Every panel of every dashboard returns data for the run.
  const fs::path dashboards =
      fs::path(LLMLOAD_SOURCE_DIR) / "deploy/grafana/dashboards";
  std::vector<std::pair<std::string, std::string>> exprs;
  int files = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(dashboards)) {
    if (e.path().extension() != ".json") {
      continue;
    }
    ++files;
    std::ifstream in(e.path());
    std::stringstream text;
    text << in.rdbuf();
    boost::system::error_code ec;
    const json::value dash = json::parse(text.str(), ec);
    ASSERT_FALSE(ec) << e.path() << ": " << ec.message();
    CollectExprs(dash.at("panels"), e.path().filename().string(), exprs);
  }
  EXPECT_GE(files, 2);
  EXPECT_GE(exprs.size(), 20u);
  for (const auto& [where, expr] : exprs) {
    const std::string promql = absl::StrReplaceAll(
        expr, {{"$run_id", kRunId}, {"$__rate_interval", "1m"}, {"$__interval", "5s"},
               {"$__range", "5m"}});
    std::optional<json::array> r = Query(promql);
    ASSERT_TRUE(r.has_value()) << where << ": " << promql << ": " << last_error_;
    EXPECT_FALSE(r->empty()) << where << ": " << promql << " returned no data";
  }
}

}  // namespace
}  // namespace llmload
