// spec.reconnectStorm: the share of Centrifugo sessions dropped at one
// moment, when, and how long they stay away.

#include <cmath>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/validation/validation.h"

namespace llmload::validation {
namespace {

using ::testing::HasSubstr;

v1::RunSpec Spec() {
  v1::RunSpec spec;
  spec.mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
  spec.mutable_target()->set_url("http://127.0.0.1:8080");
  spec.mutable_load()->mutable_closed()->set_clients(2);
  spec.mutable_load()->mutable_closed()->set_cycles_per_client(1);
  v1::ReconnectStorm* storm = spec.mutable_reconnect_storm();
  storm->set_share(0.5);
  storm->mutable_at()->set_seconds(2);
  storm->mutable_reconnect_after()->set_nanos(200000000);
  storm->set_seed(7);
  return spec;
}

// The error of `spec`, which must be INVALID_ARGUMENT.
std::string ErrorOf(const v1::RunSpec& spec) {
  const absl::Status s = ValidateRunSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  return std::string(s.message());
}

TEST(ReconnectStormValidationTest, AGoodStormIsAccepted) {
  EXPECT_TRUE(ValidateRunSpec(Spec()).ok()) << ValidateRunSpec(Spec());
  v1::RunSpec spec = Spec();
  spec.mutable_reconnect_storm()->set_share(1);
  spec.mutable_reconnect_storm()->mutable_at()->set_seconds(0);
  spec.mutable_reconnect_storm()->clear_reconnect_after();  // at once
  EXPECT_TRUE(ValidateRunSpec(spec).ok()) << ValidateRunSpec(spec);
}

TEST(ReconnectStormValidationTest, OnlyTheCentrifugoTargetRecovers) {
  v1::RunSpec spec = Spec();
  spec.mutable_target()->set_protocol(v1::WS_CHAT);
  const std::string e = ErrorOf(spec);
  EXPECT_THAT(e, HasSubstr("spec.reconnectStorm"));
  EXPECT_THAT(e, HasSubstr("WS_CHAT"));
}

TEST(ReconnectStormValidationTest, ShareMustBeAFractionAboveZero) {
  for (double bad : {0.0, -0.5, 1.5, std::nan("")}) {
    v1::RunSpec spec = Spec();
    spec.mutable_reconnect_storm()->set_share(bad);
    const std::string e = ErrorOf(spec);
    EXPECT_THAT(e, HasSubstr("spec.reconnectStorm.share")) << bad;
    EXPECT_THAT(e, HasSubstr("(0, 1]")) << bad;
  }
}

TEST(ReconnectStormValidationTest, AtIsRequiredAndBounded) {
  v1::RunSpec spec = Spec();
  spec.mutable_reconnect_storm()->clear_at();
  EXPECT_THAT(ErrorOf(spec), HasSubstr("spec.reconnectStorm.at: required"));
  spec = Spec();
  spec.mutable_reconnect_storm()->mutable_at()->set_seconds(-1);
  EXPECT_THAT(ErrorOf(spec), HasSubstr("spec.reconnectStorm.at: must be between 0 and 24h"));
  spec = Spec();
  spec.mutable_reconnect_storm()->mutable_at()->set_seconds(25 * 3600);
  EXPECT_THAT(ErrorOf(spec), HasSubstr("spec.reconnectStorm.at: must be between 0 and 24h"));
  spec = Spec();
  spec.mutable_reconnect_storm()->mutable_at()->set_seconds(1);
  spec.mutable_reconnect_storm()->mutable_at()->set_nanos(-5);
  EXPECT_THAT(ErrorOf(spec), HasSubstr("spec.reconnectStorm.at: not a valid duration"));
}

TEST(ReconnectStormValidationTest, ReconnectAfterIsBounded) {
  v1::RunSpec spec = Spec();
  spec.mutable_reconnect_storm()->mutable_reconnect_after()->set_seconds(61);
  spec.mutable_reconnect_storm()->mutable_reconnect_after()->set_nanos(0);
  EXPECT_THAT(ErrorOf(spec),
              HasSubstr("spec.reconnectStorm.reconnectAfter: must be between 0 and 60s"));
  spec.mutable_reconnect_storm()->mutable_reconnect_after()->set_seconds(-1);
  EXPECT_THAT(ErrorOf(spec),
              HasSubstr("spec.reconnectStorm.reconnectAfter: must be between 0 and 60s"));
}

}  // namespace
}  // namespace llmload::validation
