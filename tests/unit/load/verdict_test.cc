#include "lib/load/verdict.h"

#include "gtest/gtest.h"

namespace llmload::load {
namespace {

v1::RunStats Stats() {
  v1::RunStats s;
  v1::MetricStats* ttft = s.add_metrics();
  ttft->set_metric("ttft");
  ttft->set_count(1000);
  ttft->set_min_ms(10);
  ttft->set_mean_ms(100);
  ttft->set_p50_ms(80);
  ttft->set_p90_ms(200);
  ttft->set_p95_ms(400);
  ttft->set_p99_ms(900);
  ttft->set_p999_ms(1500);
  ttft->set_max_ms(2000);
  (*s.mutable_counters())["requests_ok"] = 990;
  (*s.mutable_counters())["http_5xx"] = 6;
  (*s.mutable_counters())["rate_limited"] = 4;
  (*s.mutable_counters())["offered"] = 1010;
  (*s.mutable_counters())["dropped"] = 10;
  (*s.mutable_counters())["good"] = 900;
  s.mutable_throughput()->set_requests_per_sec(50);
  s.mutable_throughput()->set_tokens_per_sec(2500);
  s.set_duration_seconds(20);
  return s;
}

v1::Threshold Latency(const char* metric, double p, double below_s) {
  v1::Threshold t;
  t.set_metric(metric);
  t.set_percentile(p);
  t.mutable_below()->set_seconds(static_cast<int64_t>(below_s));
  t.mutable_below()->set_nanos(static_cast<int32_t>((below_s - static_cast<int64_t>(below_s)) * 1e9));
  return t;
}

TEST(ThresholdTest, PercentileBelowPassesAndFailsWithTheMeasuredValue) {
  const v1::ThresholdResult pass = Evaluate(Latency("ttft", 95, 0.5), Stats(), true);
  EXPECT_TRUE(pass.passed());
  EXPECT_DOUBLE_EQ(pass.measured(), 400);
  EXPECT_EQ(pass.description(), "ttft p95 = 400.00 ms (limit < 500.00 ms, 1000 samples)");
  const v1::ThresholdResult fail = Evaluate(Latency("ttft", 99, 0.5), Stats(), true);
  EXPECT_FALSE(fail.passed());
  EXPECT_DOUBLE_EQ(fail.measured(), 900);
  // Equal to the bound is not below it.
  EXPECT_FALSE(Evaluate(Latency("ttft", 50, 0.08), Stats(), true).passed());
}

TEST(ThresholdTest, OtherPercentilesAreInterpolatedAndSaySo) {
  const v1::ThresholdResult r = Evaluate(Latency("ttft", 97, 10), Stats(), true);
  EXPECT_DOUBLE_EQ(r.measured(), 650);  // halfway between p95 400 and p99 900
  EXPECT_NE(r.description().find("(interpolated)"), std::string::npos);
  EXPECT_DOUBLE_EQ(Evaluate(Latency("ttft", 100, 10), Stats(), true).measured(), 2000);
}

TEST(ThresholdTest, NoSamplesFailsAtTheEndButNotMidRun) {
  EXPECT_FALSE(Evaluate(Latency("itl", 50, 1), Stats(), true).passed());
  EXPECT_TRUE(Evaluate(Latency("itl", 50, 1), Stats(), false).passed());
  // Too few samples mid-run: not judged yet.
  v1::RunStats few = Stats();
  few.mutable_metrics(0)->set_count(kMinSamplesToAbort - 1);
  EXPECT_TRUE(Evaluate(Latency("ttft", 99, 0.5), few, false).passed());
  few.mutable_metrics(0)->set_count(kMinSamplesToAbort);
  EXPECT_FALSE(Evaluate(Latency("ttft", 99, 0.5), few, false).passed());
}

TEST(ThresholdTest, ErrorRateAndThroughput) {
  v1::Threshold err;
  err.set_metric("error_rate");
  err.set_below_value(0.02);
  const v1::ThresholdResult e = Evaluate(err, Stats(), true);
  EXPECT_EQ(KindOf(err), v1::ERROR_RATE);
  EXPECT_TRUE(e.passed());
  EXPECT_DOUBLE_EQ(e.measured(), 0.01);  // 10 of 1000
  err.set_below_value(0.005);
  EXPECT_FALSE(Evaluate(err, Stats(), true).passed());

  v1::Threshold rps;
  rps.set_metric("requests_per_sec");
  rps.set_above(60);
  EXPECT_EQ(KindOf(rps), v1::THROUGHPUT);
  EXPECT_FALSE(Evaluate(rps, Stats(), true).passed());
  EXPECT_TRUE(Evaluate(rps, Stats(), false).passed());  // a rate is judged at the end only
  rps.set_above(40);
  EXPECT_TRUE(Evaluate(rps, Stats(), true).passed());

  v1::Threshold good;
  good.set_metric("goodput_ratio");
  good.set_above(0.9);
  const v1::ThresholdResult g = Evaluate(good, Stats(), true);
  EXPECT_NEAR(g.measured(), 900.0 / 1010.0, 1e-12);
  EXPECT_FALSE(g.passed());
  good.set_metric("goodput_per_sec");
  good.set_above(44);
  EXPECT_NEAR(Evaluate(good, Stats(), true).measured(), 45, 1e-12);
  EXPECT_TRUE(Evaluate(good, Stats(), true).passed());
}

TEST(ThresholdTest, EvaluateAllPassesOnlyWhenEveryOnePasses) {
  google::protobuf::RepeatedPtrField<v1::Threshold> list;
  bool passed = false;
  EXPECT_TRUE(EvaluateAll(list, Stats(), true, &passed).empty());
  EXPECT_TRUE(passed);
  *list.Add() = Latency("ttft", 95, 0.5);
  EXPECT_EQ(EvaluateAll(list, Stats(), true, &passed).size(), 1u);
  EXPECT_TRUE(passed);
  *list.Add() = Latency("ttft", 99, 0.5);
  EXPECT_EQ(EvaluateAll(list, Stats(), true, &passed).size(), 2u);
  EXPECT_FALSE(passed);
}

TEST(AccountingTest, SeparatesOfferedAdmittedRefusedAndGood) {
  const LoadAccounting a = Account(Stats());
  EXPECT_EQ(a.offered, 1010u);
  EXPECT_EQ(a.dropped, 10u);
  EXPECT_EQ(a.ok, 990u);
  EXPECT_EQ(a.failed, 10u);
  EXPECT_EQ(a.refused, 10u);
  EXPECT_EQ(a.admitted, 990u);
  EXPECT_EQ(a.good, 900u);
  EXPECT_DOUBLE_EQ(a.error_rate, 0.01);
  EXPECT_DOUBLE_EQ(a.goodput_per_sec, 45);
}

TEST(ObjectivesTest, GoodMeansOkAndEveryObjectiveMet) {
  v1::Objectives o;
  o.mutable_ttft()->set_nanos(500000000);      // 500 ms
  o.mutable_mean_itl()->set_nanos(50000000);   // 50 ms
  const ObjectiveLimits l = ObjectiveLimits::FromProto(o);
  EXPECT_EQ(l.ttft_us, 500000u);
  EXPECT_EQ(l.mean_itl_us, 50000u);
  EXPECT_EQ(l.e2e_us, 0u);
  EXPECT_TRUE(l.Good(true, 500000, 50000, 99999999, 10));
  EXPECT_FALSE(l.Good(false, 1, 1, 1, 10));
  EXPECT_FALSE(l.Good(true, 500001, 1, 1, 10));
  EXPECT_FALSE(l.Good(true, 1, 50001, 1, 10));
  EXPECT_TRUE(l.Good(true, 1, 0, 1, 1));  // one token: no inter-token gap to judge
  EXPECT_TRUE(ObjectiveLimits{}.Good(true, 1u << 30, 1u << 30, 1u << 30, 5));
}

TEST(WarningsTest, DefaultsFromCommonPractice) {
  v1::RunStats s = Stats();
  EXPECT_EQ(WarningSigns(s, {}).size(), 1u);  // only the dropped arrivals
  (*s.mutable_counters())["timeout"] = 50;    // 60 of 1050 failed
  s.mutable_metrics(0)->set_p50_ms(1200);
  v1::MetricStats* e2e = s.add_metrics();
  e2e->set_metric("e2e");
  e2e->set_count(10);
  e2e->set_p99_ms(3500);
  WarningInputs in;
  in.max_loop_lag_ms = 75;
  const std::vector<std::string> w = WarningSigns(s, in);
  ASSERT_EQ(w.size(), 5u);
  EXPECT_NE(w[0].find("failed requests at 5.71 %"), std::string::npos) << w[0];
  EXPECT_NE(w[1].find("e2e p99 at 3500 ms"), std::string::npos) << w[1];
  EXPECT_NE(w[2].find("ttft p50 at 1200 ms"), std::string::npos) << w[2];
  EXPECT_NE(w[3].find("event-loop lag reached 75 ms"), std::string::npos) << w[3];
  EXPECT_NE(w[4].find("10 arrivals dropped"), std::string::npos) << w[4];
}

TEST(WarningsTest, RisingLatencyFromCumulativeMeans) {
  // 30 samples per snapshot: 100 ms each for the first 3, 300 ms after.
  CumulativeMeans series;
  double sum = 0;
  uint64_t n = 0;
  for (int i = 0; i < 9; ++i) {
    sum += 30 * (i < 3 ? 100.0 : 300.0);
    n += 30;
    series.emplace_back(n, sum / static_cast<double>(n));
  }
  auto means = FirstAndLastThirdMeans(series);
  ASSERT_TRUE(means.has_value());
  EXPECT_NEAR(means->first, 100, 1e-9);
  EXPECT_NEAR(means->second, 300, 1e-9);
  WarningInputs in;
  in.e2e_over_time = series;
  v1::RunStats quiet;
  const std::vector<std::string> w = WarningSigns(quiet, in);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("latency rising"), std::string::npos);
  // Flat latency: no warning; too few samples: no judgement.
  CumulativeMeans flat = {{30, 100}, {60, 100}, {90, 100}};
  in.e2e_over_time = flat;
  EXPECT_TRUE(WarningSigns(quiet, in).empty());
  EXPECT_FALSE(FirstAndLastThirdMeans({{3, 1}, {6, 1}, {9, 5}}).has_value());
}

}  // namespace
}  // namespace llmload::load
