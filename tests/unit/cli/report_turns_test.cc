// The reports' per-turn table (multi-turn runs) and warm-up / cool-down
// counts.

#include <string>

#include <boost/json/parse.hpp>

#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"
#include "tools/llmload/report.h"
#include "tools/llmload/run_report.h"

namespace llmload::cli {
namespace {

v1::Run TurnsRun() {
  v1::Run run;
  run.set_id("run-turns");
  run.set_state(v1::COMPLETED);
  metrics::TurnTable turns;
  for (uint64_t v = 1; v <= 4; ++v) {
    turns.Complete(1, v * 100, true, 3, 5);
    turns.Complete(2, v * 300, true, 11, 5);
  }
  turns.Fill(*run.mutable_stats()->mutable_turns());
  return run;
}

TEST(ReportTurnsTest, TextShowsTtftByTurn) {
  v1::Run run = TurnsRun();
  const std::string r = FormatReport(run);
  EXPECT_NE(r.find("BY TURN:\n    turn  requests   input_mean   ttft_p50   ttft_p99\n"
                   "       1         4          3.0       0.20       0.40\n"
                   "       2         4         11.0       0.60       1.20\n"),
            std::string::npos)
      << r;
  run.mutable_stats()->clear_turns();
  EXPECT_EQ(FormatReport(run).find("BY TURN"), std::string::npos);
}

TEST(ReportTurnsTest, TextShowsWarmupAndCooldownApart) {
  v1::Run run = TurnsRun();
  EXPECT_EQ(FormatReport(run).find("WARM-UP"), std::string::npos);
  auto& c = *run.mutable_stats()->mutable_counters();
  c["warmup_requests"] = 7;
  c["warmup_failed"] = 1;
  c["warmup_tokens"] = 30;
  c["cooldown_requests"] = 2;
  c["cooldown_tokens"] = 10;
  const std::string r = FormatReport(run);
  EXPECT_NE(r.find("WARM-UP AND COOL-DOWN (not counted above):\n  [warmup_requests=7, "
                   "warmup_failed=1, warmup_tokens=30, cooldown_requests=2, cooldown_tokens=10]"),
            std::string::npos)
      << r;
}

TEST(ReportTurnsTest, JsonHasTheTurnsAndThePhases) {
  ReportInput in;
  in.run = TurnsRun();
  in.stats = in.run->stats();
  (*in.stats.mutable_counters())["warmup_requests"] = 7;
  const boost::json::value v = boost::json::parse(RenderReport(in, ReportFormat::kJson));
  const boost::json::array& turns = v.at("turns").as_array();
  ASSERT_EQ(turns.size(), 2u);
  EXPECT_EQ(turns[1].at("turn").as_int64(), 2);
  EXPECT_EQ(turns[1].at("requests").as_int64(), 4);
  EXPECT_EQ(turns[1].at("input_tokens").as_int64(), 44);
  EXPECT_EQ(turns[1].at("input_tokens_mean").to_number<double>(), 11.0);
  EXPECT_EQ(turns[1].at("ttft").at("count").as_int64(), 4);
  EXPECT_EQ(v.at("summary").at("warmup_requests").as_int64(), 7);
  EXPECT_EQ(v.at("summary").at("cooldown_requests").as_int64(), 0);
}

}  // namespace
}  // namespace llmload::cli
