// `llmload report`, `llmload compare` and per-request records against the
// real services: runs on the emulator, then every service but the emulator
// and the workers restarted, then the reports made from what was stored.
//
//  - The CSV parses and its numbers equal GetRunStats for the same run.
//  - The JSON has the documented schema and agrees with GetRunStats.
//  - The HTML is one file that fetches nothing and leaks no secret.
//  - Per-request records: one per request, and percentiles computed from
//    them agree with the run's within the histogram's resolution.
//  - compare flags a planted regression (a larger token delay) and exits 1
//    over the bound; between two runs of the same spec it flags nothing.

#include <cstdlib>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "lib/histogram/histogram.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "services/common/grpc_util.h"
#include "tests/testing/mono_clock.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::RunShell;
using testing_util::ShellResult;

constexpr char kSecret[] = "Bearer s3cr3t-token-value";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

double ToDouble(const std::string& s) {
  double v = 0;
  EXPECT_TRUE(absl::SimpleAtod(s, &v)) << "not a number: '" << s << "'";
  return v;
}

// Nearest-rank percentile of `values` (sorted), as Histogram::Percentile ranks.
double NearestRank(const std::vector<double>& sorted, double p) {
  const auto n = static_cast<double>(sorted.size());
  const auto rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(p / 100 * n)));
  return sorted[std::min(rank, sorted.size()) - 1];
}

class ReportTest : public testing_util::StackTest {
 protected:
  void SetUp() override {
    // The key lives only in the workers' environment; the spec names it.
    ASSERT_EQ(setenv("LLMLOAD_TEST_REPORT_TOKEN", kSecret, 1), 0);
    StartStack(testing_util::StackOptions());
  }

  v1::RunSpec Spec(double token_delay_s) const {
    v1::RunSpec spec;
    spec.set_name("report-test");
    spec.mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
    spec.mutable_target()->set_url(EmulatorUrl());
    (*spec.mutable_target()->mutable_headers_from_env())["Authorization"] =
        "LLMLOAD_TEST_REPORT_TOKEN";
    v1::DurationLoad* d = spec.mutable_load()->mutable_duration();
    d->set_connections(4);
    d->mutable_duration()->set_seconds(5);
    spec.mutable_emulation()->set_length_words(10);
    spec.mutable_emulation()->mutable_token_delay()->set_nanos(
        static_cast<int32_t>(token_delay_s * 1e9));
    spec.mutable_records()->set_sample_rate(1);
    (*spec.mutable_labels())["team"] = "infra";
    return spec;
  }

  std::string RunToEnd(const v1::RunSpec& spec) {
    const v1::Run started = StartRun(spec);
    const v1::Run done = WaitForEnd(started.id(), absl::Seconds(60));
    EXPECT_EQ(done.state(), v1::COMPLETED) << done.error();
    return started.id();
  }

  // Kills the collector and the orchestrator (the harshest restart) and
  // starts them again on the same ports and databases: the reports below
  // come from what they stored.
  void RestartServices() {
    collector_->Kill();
    orchestrator_->Kill();
    StartCollector();
    orchestrator_ = testing_util::ChildProcess::Start(
        BinPath("llmload-orchestrator"),
        {absl::StrCat("--grpc_address=127.0.0.1:", orchestrator_port_),
         absl::StrCat("--collector=127.0.0.1:", collector_port_)},
        dir_ + "/orchestrator-2.log", dir_);
    ASSERT_TRUE(testing_util::WaitForTcp(orchestrator_port_, absl::Seconds(20)));
  }

  v1::RunStats Stats(const std::string& run_id) {
    auto stub = v1::Collector::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", collector_port_)));
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
    v1::GetRunStatsRequest req;
    req.set_run_id(run_id);
    req.set_per_worker(true);
    req.set_windows(true);
    v1::RunStats stats;
    grpc::Status st = stub->GetRunStats(&ctx, req, &stats);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return stats;
  }

  std::string Cli() const {
    return absl::StrCat(BinPath("llmload"), " --orchestrator 127.0.0.1:", orchestrator_port_,
                        " --collector 127.0.0.1:", collector_port_);
  }
};

TEST_F(ReportTest, ReportsRecordsAndComparisonsFromStoredResultsAfterRestarts) {
  const std::string a = RunToEnd(Spec(0.005));
  const std::string b = RunToEnd(Spec(0.005));
  const std::string slow = RunToEnd(Spec(0.03));  // the planted regression
  RestartServices();
  const std::string cli = Cli();

  // ---- CSV: parses, and equals GetRunStats.
  const v1::RunStats stats = Stats(a);
  ASSERT_GT(stats.windows_size(), 2);
  const std::string csv_path = dir_ + "/a.csv";
  ShellResult r = RunShell(absl::StrCat(cli, " report ", a, " -o ", csv_path));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::vector<std::string> lines = Lines(ReadFile(csv_path));
  ASSERT_GT(lines.size(), 10u);
  const std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < header.size(); ++i) {
    col[header[i]] = i;
  }
  for (const char* c : {"scope", "worker_id", "window_start_us", "metric", "kind", "count",
                        "value", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"}) {
    ASSERT_TRUE(col.count(c)) << "column " << c << " in " << lines[0];
  }
  int run_latency_rows = 0;
  int run_counter_rows = 0;
  int window_latency_rows = 0;
  std::map<std::string, int> worker_rows;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> f = absl::StrSplit(lines[i], ',');
    ASSERT_EQ(f.size(), header.size()) << lines[i];
    const std::string& scope = f[col["scope"]];
    const std::string& metric = f[col["metric"]];
    const std::string& kind = f[col["kind"]];
    if (scope == "run" && kind == "latency") {
      ++run_latency_rows;
      const v1::MetricStats* m = nullptr;
      for (const v1::MetricStats& s : stats.metrics()) {
        m = s.metric() == metric ? &s : m;
      }
      ASSERT_NE(m, nullptr) << metric;
      EXPECT_EQ(ToDouble(f[col["count"]]), static_cast<double>(m->count())) << metric;
      EXPECT_EQ(ToDouble(f[col["mean_ms"]]), m->mean_ms()) << metric;
      EXPECT_EQ(ToDouble(f[col["min_ms"]]), m->min_ms()) << metric;
      EXPECT_EQ(ToDouble(f[col["p50_ms"]]), m->p50_ms()) << metric;
      EXPECT_EQ(ToDouble(f[col["p90_ms"]]), m->p90_ms()) << metric;
      EXPECT_EQ(ToDouble(f[col["p95_ms"]]), m->p95_ms()) << metric;
      EXPECT_EQ(ToDouble(f[col["p99_ms"]]), m->p99_ms()) << metric;
      EXPECT_EQ(ToDouble(f[col["p999_ms"]]), m->p999_ms()) << metric;
      EXPECT_EQ(ToDouble(f[col["max_ms"]]), m->max_ms()) << metric;
    } else if (scope == "run" && kind == "counter") {
      ++run_counter_rows;
      ASSERT_TRUE(stats.counters().count(metric)) << metric;
      EXPECT_EQ(ToDouble(f[col["value"]]), static_cast<double>(stats.counters().at(metric)))
          << metric;
    } else if (scope == "window" && kind == "latency") {
      ++window_latency_rows;
    } else if (scope == "worker") {
      ++worker_rows[f[col["worker_id"]]];
    }
  }
  EXPECT_EQ(run_latency_rows, stats.metrics_size());
  EXPECT_EQ(run_counter_rows, static_cast<int>(stats.counters().size()));
  int window_metrics = 0;
  for (const v1::WindowStats& w : stats.windows()) {
    window_metrics += w.metrics_size();
  }
  EXPECT_EQ(window_latency_rows, window_metrics);
  EXPECT_EQ(worker_rows.size(), static_cast<size_t>(stats.workers_size()));

  // ---- JSON: the documented schema, the same numbers.
  r = RunShell(absl::StrCat(cli, " report ", a, " --format json"), /*with_stderr=*/false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  boost::system::error_code ec;
  const boost::json::value json = boost::json::parse(r.output, ec);
  ASSERT_FALSE(ec) << r.output.substr(0, 500);
  const boost::json::object& root = json.as_object();
  EXPECT_EQ(root.at("schema").as_string(), "llmload.report/v1");
  EXPECT_EQ(root.at("run").at("id").as_string(), a);
  EXPECT_EQ(root.at("run").at("state").as_string(), "COMPLETED");
  EXPECT_EQ(root.at("run").at("labels").at("team").as_string(), "infra");
  EXPECT_EQ(root.at("summary").at("requests_ok").as_int64(),
            static_cast<int64_t>(stats.counters().at("requests_ok")));
  EXPECT_EQ(root.at("windows").as_array().size(), static_cast<size_t>(stats.windows_size()));
  EXPECT_EQ(root.at("workers").as_array().size(), 2u);
  EXPECT_FALSE(root.at("events").as_array().empty());
  EXPECT_FALSE(root.at("distributions").as_array().empty());
  EXPECT_EQ(r.output.find("s3cr3t"), std::string::npos);

  // ---- HTML: one file, nothing fetched, no secret.
  const std::string html_path = dir_ + "/a.html";
  r = RunShell(absl::StrCat(cli, " report ", a, " -o ", html_path));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string html = ReadFile(html_path);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(html.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_NE(html.find("data-chart=\"ttft\""), std::string::npos);

  // ---- Per-request records: one per request; their percentiles agree with
  // the run's within the histogram's resolution.
  for (const char* ext : {"jsonl", "csv"}) {
    const std::string path = absl::StrCat(dir_, "/records.", ext);
    r = RunShell(absl::StrCat(cli, " report ", a, " -o /dev/null --records ", path));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::vector<std::string> rec = Lines(ReadFile(path));
    if (std::string(ext) == "csv") {
      ASSERT_FALSE(rec.empty());
      EXPECT_EQ(rec[0].rfind("worker_id,client_id,request_index,start_us", 0), 0u) << rec[0];
      rec.erase(rec.begin());
    }
    uint64_t failed = 0;
    for (const auto& [name, value] : stats.counters()) {
      if (name == "connect_failed" || name == "http_4xx" || name == "http_5xx" ||
          name == "rate_limited" || name == "protocol_error" || name == "timeout" ||
          name == "disconnected") {
        failed += value;
      }
    }
    EXPECT_EQ(rec.size(), stats.counters().at("requests_ok") + failed) << ext;
    EXPECT_EQ(stats.records(), rec.size());
    if (std::string(ext) != "jsonl") {
      continue;
    }
    std::vector<double> ttft;
    std::vector<double> e2e;
    std::map<std::string, int> per_worker;
    for (const std::string& line : rec) {
      const boost::json::object o = boost::json::parse(line).as_object();
      ++per_worker[std::string(o.at("worker_id").as_string())];
      EXPECT_GT(o.at("start_us").as_int64(), 0);
      EXPECT_GE(o.at("start_us").as_int64(), o.at("intended_start_us").as_int64());
      if (o.at("outcome").as_string() == "requests_ok") {
        ttft.push_back(o.at("ttft_ms").to_number<double>());
        e2e.push_back(o.at("e2e_ms").to_number<double>());
        EXPECT_EQ(o.at("tokens").as_int64(), 10);
      }
    }
    EXPECT_EQ(per_worker.size(), 2u);
    std::sort(ttft.begin(), ttft.end());
    std::sort(e2e.begin(), e2e.end());
    for (const auto& [name, values] :
         std::vector<std::pair<std::string, std::vector<double>>>{{"ttft", ttft}, {"e2e", e2e}}) {
      const v1::MetricStats* m = MetricOf(stats, name == "ttft" ? v1::TTFT : v1::E2E);
      ASSERT_NE(m, nullptr);
      ASSERT_EQ(values.size(), m->count()) << name;
      for (const auto& [p, want] : std::vector<std::pair<double, double>>{
               {50, m->p50_ms()}, {90, m->p90_ms()}, {99, m->p99_ms()}}) {
        const double got = NearestRank(values, p);
        // A bucket's midpoint is within kRelativeError of every value in it,
        // plus the microsecond the records are rounded to.
        EXPECT_NEAR(got, want, want * histogram::Histogram::kRelativeError + 0.001)
            << name << " p" << p;
      }
    }
  }

  // ---- compare: the same spec twice flags nothing. On the medians: a tail
  // percentile of a 5 ms token gap moves with the load of a shared CI
  // machine between two runs (that flaked), which is what the tail of two
  // real runs does too.
  r = RunShell(absl::StrCat(cli, " compare ", a, " ", b,
                            " --max-regression 10 --only ttft:p50 --only itl:p50 --only e2e:p50"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("regression ("), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0 regression(s), 0 improvement(s)"), std::string::npos) << r.output;
  // A larger token delay: inter-token latency and e2e regress, beyond the
  // bound, so the exit status says so.
  r = RunShell(absl::StrCat(cli, " compare ", a, " ", slow, " --max-regression 10 --json"),
               /*with_stderr=*/false);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const boost::json::object cmp = boost::json::parse(r.output).as_object();
  EXPECT_EQ(cmp.at("schema").as_string(), "llmload.compare/v1");
  EXPECT_TRUE(cmp.at("failed").as_bool());
  bool itl_p50 = false;
  bool e2e_p50 = false;
  for (const boost::json::value& row : cmp.at("rows").as_array()) {
    const boost::json::object& o = row.as_object();
    const bool regression = o.at("mark").is_string() && o.at("mark").as_string() == "regression";
    if (o.at("metric").as_string() == "itl" && o.at("stat").as_string() == "p50") {
      itl_p50 = regression && o.at("over_bound").as_bool();
    }
    if (o.at("metric").as_string() == "e2e" && o.at("stat").as_string() == "p50") {
      e2e_p50 = regression;
    }
  }
  EXPECT_TRUE(itl_p50) << r.output;
  EXPECT_TRUE(e2e_p50) << r.output;

  // Unknown runs and bad flags are clear errors.
  r = RunShell(absl::StrCat(cli, " report run-nope"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("no stored results for run run-nope"), std::string::npos) << r.output;
  r = RunShell(absl::StrCat(cli, " report ", a, " --format pdf"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--format: expected text, json, csv or html"), std::string::npos);
}

}  // namespace
}  // namespace llmload
