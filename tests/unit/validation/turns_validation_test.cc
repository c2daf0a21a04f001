// spec.target.turns (multi-turn conversations) and spec.warmup /
// spec.cooldown.

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/validation/validation.h"

namespace llmload::validation {
namespace {

using ::testing::HasSubstr;

v1::RunSpec Spec(v1::Protocol protocol, int32_t turns) {
  v1::RunSpec spec;
  spec.mutable_target()->set_protocol(protocol);
  spec.mutable_target()->set_url("http://127.0.0.1:8080");
  spec.mutable_target()->set_turns(turns);
  spec.mutable_load()->mutable_closed()->set_clients(2);
  spec.mutable_load()->mutable_closed()->set_cycles_per_client(6);
  return spec;
}

TEST(TurnsValidationTest, ConversationalProtocolsTakeAnyTurnCount) {
  for (v1::Protocol p : {v1::OPENAI_CHAT, v1::ANTHROPIC_MESSAGES, v1::GEMINI, v1::WS_CHAT}) {
    for (int32_t turns : {0, 1, 2, 1000}) {
      EXPECT_TRUE(ValidateRunSpec(Spec(p, turns)).ok()) << v1::Protocol_Name(p) << " " << turns;
    }
  }
}

TEST(TurnsValidationTest, OutOfRangeTurnsNameTheField) {
  for (int32_t bad : {-1, 1001}) {
    const absl::Status s = ValidateRunSpec(Spec(v1::OPENAI_CHAT, bad));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr("spec.target.turns"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("must be between 1 and 1000"));
  }
}

TEST(TurnsValidationTest, ProtocolsWithoutAConversationRefuseTurns) {
  for (v1::Protocol p : {v1::CENTRIFUGO_EMULATOR, v1::HTTP_JSON}) {
    EXPECT_TRUE(ValidateRunSpec(Spec(p, 1)).ok());
    const absl::Status s = ValidateRunSpec(Spec(p, 2));
    EXPECT_THAT(std::string(s.message()), HasSubstr("spec.target.turns"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("has no conversation"));
  }
}

TEST(TurnsValidationTest, WsChatKeepsItsConversationsButRealmHasNone) {
  EXPECT_TRUE(ValidateRunSpec(Spec(v1::WS_CHAT, 3)).ok());
  EXPECT_TRUE(ValidateRunSpec(Spec(v1::REALM, 1)).ok());
  const absl::Status s = ValidateRunSpec(Spec(v1::REALM, 3));
  EXPECT_THAT(std::string(s.message()), HasSubstr("spec.target.turns"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("keeps no conversation"));
}

v1::RunSpec DurationSpec(int64_t seconds) {
  v1::RunSpec spec;
  spec.mutable_target()->set_protocol(v1::OPENAI_CHAT);
  spec.mutable_target()->set_url("http://127.0.0.1:8080");
  spec.mutable_load()->mutable_duration()->set_connections(2);
  spec.mutable_load()->mutable_duration()->mutable_duration()->set_seconds(seconds);
  return spec;
}

void ExpectInvalid(const v1::RunSpec& spec, const std::string& field, const std::string& why) {
  const absl::Status s = ValidateRunSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
  EXPECT_THAT(std::string(s.message()), HasSubstr(field));
  EXPECT_THAT(std::string(s.message()), HasSubstr(why));
}

TEST(PhasesValidationTest, GoodWarmupsAndCooldownsPass) {
  v1::RunSpec spec = Spec(v1::OPENAI_CHAT, 0);
  spec.mutable_warmup()->set_requests(5);
  EXPECT_TRUE(ValidateRunSpec(spec).ok());
  spec.mutable_warmup()->set_requests(0);
  spec.mutable_warmup()->mutable_duration()->set_seconds(2);  // closed: any length
  EXPECT_TRUE(ValidateRunSpec(spec).ok());
  spec = DurationSpec(10);
  spec.mutable_warmup()->mutable_duration()->set_seconds(2);
  spec.mutable_cooldown()->mutable_duration()->set_seconds(3);
  EXPECT_TRUE(ValidateRunSpec(spec).ok());
}

TEST(PhasesValidationTest, BadWarmupsNameTheField) {
  v1::RunSpec spec = Spec(v1::OPENAI_CHAT, 0);
  spec.mutable_warmup();
  ExpectInvalid(spec, "spec.warmup", "say how long");
  spec.mutable_warmup()->set_requests(-1);
  ExpectInvalid(spec, "spec.warmup.requests", "must be between 1 and");
  spec.mutable_warmup()->set_requests(3);
  spec.mutable_warmup()->mutable_duration()->set_seconds(1);
  ExpectInvalid(spec, "spec.warmup", "not both");
  spec.mutable_warmup()->set_requests(0);
  spec.mutable_warmup()->mutable_duration()->set_seconds(-1);
  ExpectInvalid(spec, "spec.warmup.duration", "must be > 0");
  spec = DurationSpec(10);
  spec.mutable_warmup()->mutable_duration()->set_seconds(10);
  ExpectInvalid(spec, "spec.warmup.duration", "shorter than the load");
  spec = DurationSpec(10);
  spec.clear_load();
  spec.mutable_load()->mutable_open()->set_rate_per_second(5);
  spec.mutable_load()->mutable_open()->mutable_duration()->set_seconds(10);
  spec.mutable_warmup()->set_requests(4);
  ExpectInvalid(spec, "spec.warmup.requests", "open model has no clients");
}

TEST(PhasesValidationTest, BadCooldownsNameTheField) {
  v1::RunSpec spec = Spec(v1::OPENAI_CHAT, 0);
  spec.mutable_cooldown()->mutable_duration()->set_seconds(1);
  ExpectInvalid(spec, "spec.cooldown", "closed load ends when its cycles are done");
  spec = DurationSpec(10);
  spec.mutable_cooldown();
  ExpectInvalid(spec, "spec.cooldown.duration", "required");
  spec.mutable_cooldown()->mutable_duration()->set_seconds(25 * 3600);
  ExpectInvalid(spec, "spec.cooldown.duration", "at most 24h");
  spec.mutable_cooldown()->mutable_duration()->set_seconds(6);
  spec.mutable_warmup()->mutable_duration()->set_seconds(4);
  ExpectInvalid(spec, "spec.cooldown.duration", "leave part of the load");
}

}  // namespace
}  // namespace llmload::validation
