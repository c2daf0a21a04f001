// The JSON report's target_series: the target's own metrics scraped during
// the run (spec.targetMetrics).

#include <cmath>
#include <string>

#include <boost/json/parse.hpp>

#include "gtest/gtest.h"
#include "tools/llmload/run_report.h"

namespace llmload::cli {
namespace {

TEST(ReportTargetSeriesTest, JsonListsEachSeriesWithItsSummary) {
  v1::Run run;
  run.set_id("run-target");
  run.set_state(v1::COMPLETED);
  v1::TargetSeries* t = run.mutable_stats()->add_target_series();
  t->set_name("queue_depth");
  v1::TargetLabel* l = t->add_labels();
  l->set_name("pool");
  l->set_value("a\"b");
  t->set_type("gauge");
  t->set_value(4);
  t->set_min(0);
  t->set_max(9);
  t->set_mean(3.25);
  t->set_increase(NAN);  // a target may expose NaN: the JSON stays valid
  t->set_samples(12);
  ReportInput in;
  in.run = run;
  in.stats = run.stats();
  const boost::json::value v = boost::json::parse(RenderReport(in, ReportFormat::kJson));
  const boost::json::array& series = v.at("target_series").as_array();
  ASSERT_EQ(series.size(), 1u);
  EXPECT_EQ(series[0].at("name").as_string(), "queue_depth");
  EXPECT_EQ(series[0].at("labels").at("pool").as_string(), "a\"b");
  EXPECT_EQ(series[0].at("type").as_string(), "gauge");
  EXPECT_EQ(series[0].at("last").to_number<double>(), 4);
  EXPECT_EQ(series[0].at("max").to_number<double>(), 9);
  EXPECT_EQ(series[0].at("mean").to_number<double>(), 3.25);
  EXPECT_EQ(series[0].at("samples").as_int64(), 12);

  in.stats.clear_target_series();
  const boost::json::value none = boost::json::parse(RenderReport(in, ReportFormat::kJson));
  EXPECT_TRUE(none.at("target_series").as_array().empty());
}

}  // namespace
}  // namespace llmload::cli
