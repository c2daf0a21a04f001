// spec.targetMetrics: the target's Prometheus endpoint, its selectors and
// the scrape interval; and the allow-list that also covers its host.

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/validation/target_policy.h"
#include "lib/validation/validation.h"

namespace llmload::validation {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::RunSpec Spec() {
  v1::RunSpec spec;
  spec.mutable_target()->set_protocol(v1::OPENAI_CHAT);
  spec.mutable_target()->set_url("http://127.0.0.1:8080");
  spec.mutable_load()->mutable_closed()->set_clients(2);
  spec.mutable_load()->mutable_closed()->set_cycles_per_client(1);
  v1::TargetMetrics* m = spec.mutable_target_metrics();
  m->set_url("http://127.0.0.1:8080/metrics");
  m->add_series("llmload_emulator_requests_total{protocol=\"openai_chat\"}");
  m->add_series("llmload_emulator_open_connections");
  return spec;
}

std::string Error(const v1::RunSpec& spec) {
  absl::Status s = ValidateRunSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  return std::string(s.message());
}

TEST(TargetMetricsValidationTest, AcceptsAGoodSpecAndDefaultsTheInterval) {
  v1::RunSpec spec = Spec();
  EXPECT_TRUE(ValidateRunSpec(spec).ok()) << ValidateRunSpec(spec);
  ApplyDefaults(&spec);
  EXPECT_EQ(spec.target_metrics().interval().seconds(), 1);
  EXPECT_EQ(spec.target_metrics().interval().nanos(), 0);
  spec.mutable_target_metrics()->mutable_interval()->set_seconds(0);
  ApplyDefaults(&spec);  // "0s" is the default too
  EXPECT_EQ(spec.target_metrics().interval().seconds(), 1);
  spec.mutable_target_metrics()->mutable_interval()->set_seconds(0);
  spec.mutable_target_metrics()->mutable_interval()->set_nanos(250000000);
  ApplyDefaults(&spec);  // an explicit interval stays
  EXPECT_EQ(spec.target_metrics().interval().nanos(), 250000000);
  EXPECT_TRUE(ValidateRunSpec(spec).ok());
}

TEST(TargetMetricsValidationTest, NoTargetMetricsNoDefaults) {
  v1::RunSpec spec = Spec();
  spec.clear_target_metrics();
  ApplyDefaults(&spec);
  EXPECT_FALSE(spec.has_target_metrics());
}

TEST(TargetMetricsValidationTest, UrlMustBeHttpWithAHost) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "spec.targetMetrics.url: required"},
      {"ws://127.0.0.1:8080/metrics", "spec.targetMetrics.url: scheme must be http"},
      {"https://127.0.0.1:9090/metrics", "spec.targetMetrics.url: https is not supported"},
      {"ftp://127.0.0.1/metrics", "spec.targetMetrics.url: scheme must be"},
      {"127.0.0.1:8080/metrics", "spec.targetMetrics.url:"},
      {"http:///metrics", "spec.targetMetrics.url: host is required"},
      {"http://127.0.0.1:70000/metrics", "spec.targetMetrics.url: port must be"},
      {"http://user:pw@127.0.0.1/metrics", "spec.targetMetrics.url: must not carry credentials"},
      {"http://127.0.0.1/metrics x", "spec.targetMetrics.url: must not contain spaces"},
  };
  for (const auto& [url, message] : cases) {
    v1::RunSpec spec = Spec();
    spec.mutable_target_metrics()->set_url(url);
    EXPECT_THAT(Error(spec), StartsWith(message)) << url;
  }
}

TEST(TargetMetricsValidationTest, CredentialsInTheUrlAreNotEchoed) {
  v1::RunSpec spec = Spec();
  spec.mutable_target_metrics()->set_url("http://user:hunter2@127.0.0.1/metrics");
  EXPECT_THAT(Error(spec), ::testing::Not(HasSubstr("hunter2")));
}

TEST(TargetMetricsValidationTest, SeriesNeedOneToSixtyFourParseableSelectors) {
  v1::RunSpec spec = Spec();
  spec.mutable_target_metrics()->clear_series();
  EXPECT_THAT(Error(spec), StartsWith("spec.targetMetrics.series: at least one selector"));

  for (int i = 0; i < kMaxTargetSeries; ++i) {
    spec.mutable_target_metrics()->add_series("up");
  }
  EXPECT_TRUE(ValidateRunSpec(spec).ok());
  spec.mutable_target_metrics()->add_series("up");
  EXPECT_EQ(Error(spec), "spec.targetMetrics.series: at most 64 selectors, got 65");

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "must start with a metric name"},
      {"9lives", "must start with a metric name"},
      {"up{job=~\"a.*\"}", "regular-expression matchers are not supported"},
      {"up{job=\"a\"", "expected ',' or '}' after a label"},
      {"up{job=\"a\"} extra", "unexpected text after the selector"},
      {"up{job=\"a\",job=\"b\"}", "label job given twice"},
      {std::string(1025, 'a'), "at most 1024 characters, got 1025"},
  };
  for (const auto& [selector, reason] : cases) {
    v1::RunSpec bad = Spec();
    bad.mutable_target_metrics()->add_series(selector);  // index 2
    const std::string error = Error(bad);
    EXPECT_THAT(error, StartsWith("spec.targetMetrics.series[2]: ")) << selector;
    EXPECT_THAT(error, HasSubstr(reason)) << selector;
  }
}

TEST(TargetMetricsValidationTest, IntervalBetweenOneTenthOfASecondAndAMinute) {
  const std::vector<std::pair<int64_t, int32_t>> good = {{0, 0}, {0, 100000000}, {60, 0}, {5, 0}};
  for (const auto& [seconds, nanos] : good) {
    v1::RunSpec spec = Spec();
    spec.mutable_target_metrics()->mutable_interval()->set_seconds(seconds);
    spec.mutable_target_metrics()->mutable_interval()->set_nanos(nanos);
    EXPECT_TRUE(ValidateRunSpec(spec).ok()) << seconds << "s " << nanos << "ns";
  }
  const std::vector<std::pair<int64_t, int32_t>> bad = {{0, 99999999}, {60, 1}, {-1, 0}};
  for (const auto& [seconds, nanos] : bad) {
    v1::RunSpec spec = Spec();
    spec.mutable_target_metrics()->mutable_interval()->set_seconds(seconds);
    spec.mutable_target_metrics()->mutable_interval()->set_nanos(nanos);
    EXPECT_THAT(Error(spec), StartsWith("spec.targetMetrics.interval: must be between 100ms and "
                                        "1m (0 or unset: 1s)"))
        << seconds << "s " << nanos << "ns";
  }
  v1::RunSpec spec = Spec();
  spec.mutable_target_metrics()->mutable_interval()->set_seconds(1);
  spec.mutable_target_metrics()->mutable_interval()->set_nanos(-5);
  EXPECT_THAT(Error(spec), StartsWith("spec.targetMetrics.interval: not a valid duration"));
}

TEST(TargetMetricsValidationTest, AllowListCoversTheMetricsHost) {
  v1::RunSpec spec = Spec();
  const TargetPolicy policy = TargetPolicy::Default();
  EXPECT_TRUE(policy.CheckSpec(spec).ok());
  spec.mutable_target_metrics()->set_url("http://203.0.113.9:9100/metrics");
  absl::Status s = policy.CheckSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), StartsWith("spec.targetMetrics.url: "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("203.0.113.9"));

  absl::StatusOr<TargetPolicy> opened = TargetPolicy::Parse("default,203.0.113.9");
  ASSERT_TRUE(opened.ok());
  EXPECT_TRUE(opened->CheckSpec(spec).ok());
}

}  // namespace
}  // namespace llmload::validation
