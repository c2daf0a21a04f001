#include "tools/llmload/run_report.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "boost/json.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"
#include "tools/llmload/compare.h"
#include "tools/llmload/json_writer.h"

namespace llmload::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kEpochUs = 1'700'000'000'000'000;

// A window of `n` samples per latency metric around `scale_us`, with
// `ok` requests and `timeouts` failures.
v1::WindowStats Window(int index, uint64_t scale_us, int n, uint64_t ok, uint64_t timeouts,
                       double lag_ms = 1, uint64_t seed = 1) {
  metrics::MetricSet set;
  uint64_t state = seed * 7919 + static_cast<uint64_t>(index) * 104729;
  for (v1::Metric m : {v1::TTFT, v1::ITL, v1::E2E}) {
    for (int i = 0; i < n; ++i) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      set.RecordUs(m, scale_us + (state >> 33) % (scale_us / 5 + 1));
    }
  }
  v1::WindowStats w;
  w.set_start_us(kEpochUs + index * 1'000'000);
  w.set_width_seconds(1);
  w.set_batches(2);
  for (v1::Metric m : {v1::TTFT, v1::ITL, v1::E2E}) {
    *w.add_metrics() = metrics::Summarize(m, set.Hist(m));
    v1::HistogramDelta* d = w.add_histograms();
    d->set_metric(m);
    d->set_encoded(set.Hist(m).Encode());
  }
  (*w.mutable_counters())["requests_ok"] = ok;
  (*w.mutable_counters())["tokens"] = ok * 10;
  if (timeouts > 0) {
    (*w.mutable_counters())["timeout"] = timeouts;
  }
  w.set_active_sessions(4);
  v1::WorkerWindow* ww = w.add_workers();
  ww->set_worker_id("w1");
  ww->set_active_sessions(4);
  ww->set_cpu_percent(30);
  ww->set_loop_lag_ms(lag_ms);
  w.set_max_cpu_percent(30);
  w.set_max_loop_lag_ms(lag_ms);
  return w;
}

// A run made of `windows` windows; its totals are the windows' merged.
v1::RunStats Stats(const std::string& id, int windows, uint64_t scale_us, uint64_t ok = 50,
                   uint64_t timeouts = 0, double lag_ms = 1, uint64_t seed = 1) {
  v1::RunStats s;
  s.set_run_id(id);
  metrics::MetricSet total;
  uint64_t all_ok = 0;
  uint64_t all_timeouts = 0;
  for (int i = 0; i < windows; ++i) {
    v1::WindowStats w = Window(i, scale_us, 200, ok, timeouts, lag_ms, seed);
    for (const v1::HistogramDelta& d : w.histograms()) {
      EXPECT_TRUE(total.Hist(d.metric()).MergeEncoded(d.encoded()).ok());
    }
    all_ok += ok;
    all_timeouts += timeouts;
    *s.add_windows() = std::move(w);
  }
  for (v1::Metric m : {v1::TTFT, v1::ITL, v1::E2E}) {
    *s.add_metrics() = metrics::Summarize(m, total.Hist(m));
    v1::HistogramDelta* d = s.add_histograms();
    d->set_metric(m);
    d->set_encoded(total.Hist(m).Encode());
  }
  for (v1::Counter c : metrics::AllCounters()) {
    (*s.mutable_counters())[std::string(metrics::CounterName(c))] = 0;
  }
  (*s.mutable_counters())["requests_ok"] = all_ok;
  (*s.mutable_counters())["tokens"] = all_ok * 10;
  (*s.mutable_counters())["timeout"] = all_timeouts;
  s.set_duration_seconds(windows);
  s.mutable_throughput()->set_requests_per_sec(static_cast<double>(all_ok) / windows);
  s.mutable_throughput()->set_tokens_per_sec(static_cast<double>(all_ok) * 10 / windows);
  v1::WorkerStats* w = s.add_workers();
  w->set_worker_id("w1");
  *w->mutable_metrics() = s.metrics();
  *w->mutable_counters() = s.counters();
  w->set_final(true);
  s.set_complete(true);
  return s;
}

ReportInput Input() {
  ReportInput in;
  in.stats = Stats("run-1", 5, 20000, 50, 1);
  v1::Run run;
  run.set_id("run-1");
  run.set_state(v1::COMPLETED);
  run.set_passed(true);
  run.mutable_spec()->set_name("nightly <soak> & \"more\"");
  run.mutable_spec()->mutable_target()->set_url(
      "https://user:pa55@api.example.test/v1?api_key=k3y&model=m#frag");
  (*run.mutable_spec()->mutable_target()->mutable_headers())["Authorization"] = "Bearer s3cr3t";
  (*run.mutable_spec()->mutable_labels())["team"] = "infra";
  v1::RunEvent* e = run.add_events();
  e->mutable_time()->set_seconds(kEpochUs / 1'000'000 + 2);
  e->set_message("worker w2 lost; its clients moved to w1");
  v1::ThresholdResult* t = run.add_threshold_results();
  t->mutable_threshold()->set_metric("ttft");
  t->set_passed(true);
  t->set_measured(23.5);
  t->set_description("ttft p95 = 23.50 ms (limit < 500.00 ms)");
  in.run = run;
  in.generated_at = absl::FromUnixSeconds(1'800'000'000);
  return in;
}

TEST(JsonWriterTest, WritesParseableIndentedJsonWithExactNumbers) {
  JsonWriter j;
  j.BeginObject();
  j.Key("s");
  j.String("a\"b\\c\n\x01");
  j.Key("n");
  j.Number(0.1);
  j.Key("inf");
  j.Number(1.0 / 0.0);
  j.Key("empty");
  j.BeginArray();
  j.EndArray();
  j.Key("list");
  j.BeginArray();
  j.Int(-3);
  j.Bool(true);
  j.Null();
  j.EndArray();
  j.EndObject();
  const std::string text = j.Take();
  const boost::json::value v = boost::json::parse(text);
  EXPECT_EQ(v.at("s").as_string(), "a\"b\\c\n\x01");
  EXPECT_EQ(v.at("n").as_double(), 0.1);
  EXPECT_TRUE(v.at("inf").is_null());
  EXPECT_TRUE(v.at("empty").as_array().empty());
  EXPECT_EQ(v.at("list").as_array().size(), 3u);
  EXPECT_THAT(text, HasSubstr("\n  \"n\": 0.1,\n"));
  EXPECT_EQ(ExactNumber(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(ExactNumber(12.345), "12.345");
}

TEST(RunReportTest, FormatsComeFromNamesAndExtensions) {
  EXPECT_EQ(*ParseReportFormat("html"), ReportFormat::kHtml);
  EXPECT_FALSE(ParseReportFormat("pdf").ok());
  EXPECT_EQ(ReportFormatFromPath("out/R.HTML"), ReportFormat::kHtml);
  EXPECT_EQ(ReportFormatFromPath("r.json"), ReportFormat::kJson);
  EXPECT_EQ(ReportFormatFromPath("r.csv"), ReportFormat::kCsv);
  EXPECT_EQ(ReportFormatFromPath("r.txt"), ReportFormat::kText);
  EXPECT_EQ(ReportFormatFromPath("r.pdf"), std::nullopt);
  EXPECT_EQ(RecordsFormatFromPath("x.csv"), RecordsFormat::kCsv);
  EXPECT_EQ(RecordsFormatFromPath("x.jsonl"), RecordsFormat::kJsonLines);
}

TEST(RunReportTest, RedactsHeadersUrlCredentialsAndSecretQueryValues) {
  const v1::RunSpec spec = RedactSpec(Input().run->spec());
  EXPECT_EQ(spec.target().headers().at("Authorization"), "REDACTED");
  EXPECT_EQ(spec.target().url(), "https://REDACTED@api.example.test/v1?api_key=REDACTED&model=m#frag");
  // Each of several target URLs likewise.
  v1::RunSpec several = Input().run->spec();
  several.mutable_target()->clear_url();
  several.mutable_target()->add_urls("http://127.0.0.1:1/v1");
  several.mutable_target()->add_urls("https://u:pa55@h.example.test/v1?token=k3y&model=m");
  const v1::RunSpec redacted = RedactSpec(several);
  ASSERT_EQ(redacted.target().urls_size(), 2);
  EXPECT_EQ(redacted.target().urls(0), "http://127.0.0.1:1/v1");
  EXPECT_EQ(redacted.target().urls(1), "https://REDACTED@h.example.test/v1?token=REDACTED&model=m");
  for (ReportFormat f :
       {ReportFormat::kText, ReportFormat::kJson, ReportFormat::kCsv, ReportFormat::kHtml}) {
    const std::string out = RenderReport(Input(), f);
    EXPECT_THAT(out, Not(HasSubstr("s3cr3t")));
    EXPECT_THAT(out, Not(HasSubstr("pa55")));
    EXPECT_THAT(out, Not(HasSubstr("k3y")));
  }
}

TEST(RunReportTest, JsonFollowsTheSchema) {
  const ReportInput in = Input();
  const boost::json::value v = boost::json::parse(RenderReport(in, ReportFormat::kJson));
  EXPECT_EQ(v.at("schema").as_string(), "llmload.report/v1");
  EXPECT_EQ(v.at("generated_at").as_string(), "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(v.at("run").at("id").as_string(), "run-1");
  EXPECT_TRUE(v.at("run").at("passed").as_bool());
  EXPECT_EQ(v.at("summary").at("requests_ok").as_int64(), 250);
  EXPECT_EQ(v.at("summary").at("requests_failed").as_int64(), 5);
  EXPECT_EQ(v.at("summary").at("input_tokens").as_int64(), 0);
  EXPECT_EQ(v.at("summary").at("input_tokens_estimated").as_int64(), 0);
  EXPECT_EQ(v.at("summary").at("input_tokens_per_sec").to_number<double>(), 0);
  EXPECT_EQ(v.at("thresholds").as_array().size(), 1u);
  ASSERT_EQ(v.at("windows").as_array().size(), 5u);
  const boost::json::value& w1 = v.at("windows").as_array()[1];
  EXPECT_EQ(w1.at("offset_seconds").to_number<double>(), 1);
  EXPECT_EQ(w1.at("requests_per_sec").to_number<double>(), 50);
  EXPECT_EQ(w1.at("counters").at("timeout").as_int64(), 1);
  EXPECT_EQ(w1.at("metrics").as_array()[0].at("p99_ms").to_number<double>(),
            in.stats.windows(1).metrics(0).p99_ms());
  // Distributions: bins of every sample.
  int64_t binned = 0;
  for (const boost::json::value& b : v.at("distributions").as_array()[0].at("bins").as_array()) {
    binned += b.at("count").as_int64();
  }
  EXPECT_EQ(binned, static_cast<int64_t>(in.stats.metrics(0).count()));
  EXPECT_EQ(v.at("events").as_array()[0].at("offset_seconds").to_number<double>(), 2);
  EXPECT_EQ(v.at("spec").at("name").as_string(), "nightly <soak> & \"more\"");
  // Without the orchestrator's record: nulls, and the note says why.
  ReportInput bare = Input();
  bare.run.reset();
  bare.notes.push_back("the orchestrator was not reachable");
  const boost::json::value b = boost::json::parse(RenderReport(bare, ReportFormat::kJson));
  EXPECT_TRUE(b.at("spec").is_null());
  EXPECT_TRUE(b.at("run").at("passed").is_null());
  EXPECT_EQ(b.at("notes").as_array()[0].as_string(), "the orchestrator was not reachable");
}

TEST(RunReportTest, CsvHasOneRowPerWindowAndMetricWithExactNumbers) {
  const ReportInput in = Input();
  const std::vector<std::string> lines =
      absl::StrSplit(RenderReport(in, ReportFormat::kCsv), '\n', absl::SkipEmpty());
  const size_t columns = std::vector<std::string>(absl::StrSplit(lines[0], ',')).size();
  int window_latency = 0;
  for (const std::string& line : lines) {
    const std::vector<std::string> f = absl::StrSplit(line, ',');
    ASSERT_EQ(f.size(), columns) << line;
    if (f[0] == "window" && f[6] == "latency") {
      ++window_latency;
    }
    if (f[0] == "run" && f[5] == "ttft") {
      EXPECT_EQ(f[7], std::to_string(in.stats.metrics(0).count()));
      EXPECT_EQ(f[12], ExactNumber(in.stats.metrics(0).p50_ms()));
    }
  }
  EXPECT_EQ(window_latency, 5 * 3);
}

TEST(RunReportTest, HtmlIsSelfContainedEscapedAndHasEveryChart) {
  const std::string html = RenderReport(Input(), ReportFormat::kHtml);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_THAT(html, HasSubstr("nightly &lt;soak&gt; &amp; &quot;more&quot;"));
  EXPECT_THAT(html, Not(HasSubstr("<soak>")));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("src=")));
  for (const char* id : {"ttft", "itl", "e2e", "generator-cpu", "generator-lag", "active-sessions",
                         "requests-per-sec", "tokens-per-sec", "errors", "dist-ttft", "dist-itl",
                         "dist-e2e"}) {
    EXPECT_THAT(html, HasSubstr(std::string("data-chart=\"") + id + "\"")) << id;
  }
  EXPECT_THAT(html, HasSubstr("class=\"verdict pass\">PASSED"));
  EXPECT_THAT(html, HasSubstr("worker w2 lost; its clients moved to w1"));
  EXPECT_THAT(html, HasSubstr("<line class=\"event\""));  // marked on the time charts
  EXPECT_THAT(html, HasSubstr(">timeout<"));              // an error class in its legend
}

// Input tokens and cancelled requests appear only in runs that have them.
TEST(RunReportTest, HtmlShowsInputTokensAndCancelledRequestsWhenTheRunHasThem) {
  ReportInput in = Input();
  std::string html = RenderReport(in, ReportFormat::kHtml);
  EXPECT_THAT(html, Not(HasSubstr("input tokens/s")));
  EXPECT_THAT(html, Not(HasSubstr("requests cancelled")));
  EXPECT_THAT(html, Not(HasSubstr("<title>input tokens</title>")));

  (*in.stats.mutable_counters())["input_tokens"] = 1000;  // over 5 s
  (*in.stats.mutable_counters())["requests_cancelled"] = 7;
  for (v1::WindowStats& w : *in.stats.mutable_windows()) {
    (*w.mutable_counters())["input_tokens"] = 200;
  }
  html = RenderReport(in, ReportFormat::kHtml);
  EXPECT_THAT(html, HasSubstr("<div class=\"label\">input tokens/s</div><div class=\"value\">200.0<"));
  EXPECT_THAT(html, HasSubstr("<div class=\"label\">requests cancelled</div><div class=\"value\">7<"));
  EXPECT_THAT(html, HasSubstr("<title>input tokens</title>"));

  (*in.stats.mutable_counters())["input_tokens_estimated"] = 10;
  html = RenderReport(in, ReportFormat::kHtml);
  EXPECT_THAT(html, HasSubstr("input tokens/s (part estimated)"));
}

TEST(RunReportTest, RecordsAsJsonLinesAndCsv) {
  v1::RequestRecord r;
  r.set_worker_id("w,1");
  r.set_client_id(3);
  r.set_request_index(2);
  r.set_start_us(10);
  r.set_intended_start_us(9);
  r.set_ttft_us(1500);
  r.set_e2e_us(20001);
  r.set_tokens(7);
  r.set_chunks(7);
  r.set_outcome(v1::TIMEOUT);
  const boost::json::value v = boost::json::parse(RecordLine(r, RecordsFormat::kJsonLines));
  EXPECT_EQ(v.at("ttft_ms").to_number<double>(), 1.5);
  EXPECT_EQ(v.at("e2e_ms").to_number<double>(), 20.001);
  EXPECT_EQ(v.at("outcome").as_string(), "timeout");
  EXPECT_EQ(RecordLine(r, RecordsFormat::kCsv), "\"w,1\",3,2,10,9,1.5,20.001,7,7,timeout\n");
  EXPECT_THAT(RecordsHeader(RecordsFormat::kCsv), HasSubstr("intended_start_us"));
  EXPECT_EQ(RecordsHeader(RecordsFormat::kJsonLines), "");
}

// Fewer resamples than the default keep these quick under the sanitizers.
CompareOptions Quick() {
  CompareOptions o;
  o.iterations = 100;
  return o;
}

TEST(CompareTest, TheSameDistributionIsNotMarked) {
  const CompareResult r = Compare(Stats("a", 8, 20000, 50, 0, 0.1, 1),
                                  Stats("b", 8, 20000, 50, 0, 0.1, 2), Quick());
  EXPECT_EQ(r.regressions, 0) << FormatCompare(r);
  EXPECT_EQ(r.improvements, 0) << FormatCompare(r);
  EXPECT_FALSE(r.failed);
  EXPECT_FALSE(r.rows.empty());
}

TEST(CompareTest, ALatencyShiftIsARegressionAndFailsOverTheBound) {
  CompareOptions o = Quick();
  o.max_regression_pct = 10;
  const CompareResult r =
      Compare(Stats("a", 8, 20000, 50, 0, 0.1), Stats("b", 8, 30000, 40, 3, 0.1), o);
  const auto row = [&](const std::string& name) -> const CompareRow& {
    for (const CompareRow& x : r.rows) {
      if (x.Name() == name) {
        return x;
      }
    }
    ADD_FAILURE() << "no row " << name;
    return r.rows.front();
  };
  EXPECT_EQ(row("ttft p50").mark, CompareRow::Mark::kRegression) << FormatCompare(r);
  EXPECT_NEAR(row("ttft p50").change, 0.5, 0.05);
  EXPECT_TRUE(row("ttft p50").over_bound);
  EXPECT_EQ(row("requests_per_sec").mark, CompareRow::Mark::kRegression);  // fewer is worse
  EXPECT_EQ(row("error_rate").mark, CompareRow::Mark::kRegression);
  EXPECT_TRUE(std::isinf(row("errors:timeout").change));  // from none to some
  EXPECT_TRUE(r.failed);
  EXPECT_THAT(FormatCompare(r), HasSubstr("FAILED: a regression exceeds 10.0%"));
  const boost::json::value v = boost::json::parse(CompareJson(r));
  EXPECT_TRUE(v.at("failed").as_bool());
  // The other way round it is an improvement, and nothing fails.
  const CompareResult back =
      Compare(Stats("b", 8, 30000, 40, 3, 0.1), Stats("a", 8, 20000, 50, 0, 0.1), o);
  EXPECT_EQ(back.regressions, 0) << FormatCompare(back);
  EXPECT_GT(back.improvements, 0);
  EXPECT_FALSE(back.failed);
}

TEST(CompareTest, ChangesWithinTheLoopLagOrWithTooFewWindowsAreNotMarked) {
  // 20 ms -> 30 ms with the generator's loop lag at 50 ms: not the target.
  CompareResult r = Compare(Stats("a", 8, 20000, 50, 0, 50), Stats("b", 8, 30000, 50, 0, 50),
                            Quick());
  EXPECT_EQ(r.regressions, 0) << FormatCompare(r);
  EXPECT_EQ(r.loop_lag_floor_ms, 50);
  EXPECT_EQ(r.tail_loop_lag_floor_ms, 50);
  EXPECT_EQ(r.p99_loop_lag_floor_ms, 50);
  // Two windows: the noise is unknown.
  r = Compare(Stats("a", 2, 20000), Stats("b", 2, 30000), Quick());
  EXPECT_EQ(r.regressions, 0);
  EXPECT_FALSE(r.notes.empty());
  // --only keeps the rows asked for.
  CompareOptions only = Quick();
  only.only = {"ttft:p99", "error_rate"};
  r = Compare(Stats("a", 4, 20000), Stats("b", 4, 20000), only);
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].Name(), "ttft p99");
  EXPECT_EQ(r.rows[1].Name(), "error_rate");
}

}  // namespace
}  // namespace llmload::cli
