#include "lib/validation/run_caps.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llmload::validation {
namespace {

using ::testing::HasSubstr;

v1::RunSpec Closed(int clients, int cycles) {
  v1::RunSpec s;
  s.mutable_load()->mutable_closed()->set_clients(clients);
  s.mutable_load()->mutable_closed()->set_cycles_per_client(cycles);
  return s;
}

v1::RunSpec Open(double rate, int64_t seconds) {
  v1::RunSpec s;
  s.mutable_load()->mutable_open()->set_rate_per_second(rate);
  s.mutable_load()->mutable_open()->mutable_duration()->set_seconds(seconds);
  return s;
}

void ExpectOver(const absl::Status& s, const std::string& flag) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(flag));
  EXPECT_THAT(std::string(s.message()), HasSubstr("over this orchestrator's cap"));
}

TEST(RunCapsTest, EachCapRefusesASpecOverItAndNamesItsFlag) {
  RunCaps caps;
  caps.max_clients = 100;
  caps.max_rate = 50;
  caps.max_duration = absl::Minutes(10);
  caps.max_requests = 1000;
  EXPECT_TRUE(CheckRunCaps(Closed(100, 10), caps).ok());
  ExpectOver(CheckRunCaps(Closed(101, 1), caps), "--max_run_clients");
  ExpectOver(CheckRunCaps(Closed(100, 11), caps), "--max_run_requests");
  EXPECT_TRUE(CheckRunCaps(Open(50, 20), caps).ok());
  ExpectOver(CheckRunCaps(Open(51, 1), caps), "--max_run_rate");
  ExpectOver(CheckRunCaps(Open(1, 601), caps), "--max_run_duration");
  ExpectOver(CheckRunCaps(Open(50, 21), caps), "--max_run_requests");
  // A ramp stage's target is a rate too.
  v1::RunSpec ramp = Open(1, 1);
  v1::RateStage* st = ramp.mutable_load()->mutable_open()->add_stages();
  st->set_target_rate(60);
  st->mutable_duration()->set_seconds(1);
  ExpectOver(CheckRunCaps(ramp, caps), "--max_run_rate");
  v1::RunSpec dur;
  dur.mutable_load()->mutable_duration()->set_connections(10);
  dur.mutable_load()->mutable_duration()->mutable_duration()->set_seconds(3600);
  ExpectOver(CheckRunCaps(dur, caps), "--max_run_duration");
  // The defaults take the examples' sizes easily.
  EXPECT_TRUE(CheckRunCaps(Closed(10, 5), RunCaps{}).ok());
}

TEST(RunCapsTest, ExpectedArrivalsFollowTheRampThenHoldTheLastRate) {
  v1::OpenLoad open;
  open.set_rate_per_second(10);
  open.mutable_duration()->set_seconds(10);
  EXPECT_DOUBLE_EQ(ExpectedOpenArrivals(open), 100);
  // 10 -> 30 over 4 s (80 arrivals), 30 -> 0 over 2 s (30), then 0 for 4 s.
  v1::RateStage* a = open.add_stages();
  a->set_target_rate(30);
  a->mutable_duration()->set_seconds(4);
  v1::RateStage* b = open.add_stages();
  b->set_target_rate(0);
  b->mutable_duration()->set_seconds(2);
  EXPECT_DOUBLE_EQ(ExpectedOpenArrivals(open), 110);
  // Stages longer than the duration set the run's length.
  open.mutable_duration()->set_seconds(1);
  EXPECT_DOUBLE_EQ(ExpectedOpenArrivals(open), 110);
}

}  // namespace
}  // namespace llmload::validation
