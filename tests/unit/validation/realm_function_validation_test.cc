// spec.target.realmFunction and spec.target.realmPipeline: which Realm
// function every request calls.

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/validation/validation.h"

namespace llmload::validation {
namespace {

using ::testing::HasSubstr;

v1::RunSpec Spec(v1::Protocol protocol, v1::RealmFunction function,
                 const std::string& pipeline = "") {
  v1::RunSpec spec;
  spec.mutable_target()->set_protocol(protocol);
  spec.mutable_target()->set_url(protocol == v1::REALM ? "ws://127.0.0.1:8080/"
                                                       : "http://127.0.0.1:8080");
  spec.mutable_target()->set_realm_function(function);
  spec.mutable_target()->set_realm_pipeline(pipeline);
  spec.mutable_load()->mutable_closed()->set_clients(2);
  spec.mutable_load()->mutable_closed()->set_cycles_per_client(3);
  return spec;
}

std::string Message(const v1::RunSpec& spec) {
  const absl::Status s = ValidateRunSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

TEST(RealmFunctionValidationTest, RealmTakesEveryFunction) {
  for (v1::RealmFunction f : {v1::REALM_GENERATE, v1::REALM_HEALTH, v1::REALM_METADATA}) {
    EXPECT_TRUE(ValidateRunSpec(Spec(v1::REALM, f)).ok()) << v1::RealmFunction_Name(f);
  }
  EXPECT_TRUE(ValidateRunSpec(Spec(v1::REALM, v1::REALM_PIPELINE, "summarize-v2.1")).ok());
  v1::RunSpec unary = Spec(v1::REALM, v1::REALM_GENERATE);
  unary.mutable_target()->set_no_stream(true);
  EXPECT_TRUE(ValidateRunSpec(unary).ok());
}

TEST(RealmFunctionValidationTest, OtherProtocolsCallNoFunction) {
  const std::string m = Message(Spec(v1::OPENAI_CHAT, v1::REALM_HEALTH));
  EXPECT_THAT(m, HasSubstr("spec.target.realmFunction"));
  EXPECT_THAT(m, HasSubstr("only REALM"));
  EXPECT_THAT(Message(Spec(v1::WS_CHAT, static_cast<v1::RealmFunction>(9))),
              HasSubstr("spec.target.realmFunction"));
}

TEST(RealmFunctionValidationTest, APipelineNeedsAValidName) {
  for (const std::string& bad :
       {std::string(), std::string("has space"), std::string("x\"y"), std::string(65, 'a')}) {
    const std::string m = Message(Spec(v1::REALM, v1::REALM_PIPELINE, bad));
    EXPECT_THAT(m, HasSubstr("spec.target.realmPipeline")) << bad;
    EXPECT_THAT(m, HasSubstr("REALM_PIPELINE needs the pipeline's name")) << bad;
  }
  // A name without REALM_PIPELINE is a mistake, not ignored.
  EXPECT_THAT(Message(Spec(v1::REALM, v1::REALM_GENERATE, "summarize")),
              HasSubstr("spec.target.realmPipeline"));
}

TEST(RealmFunctionValidationTest, CallsThatNeverStreamRefuseStreamingOptions) {
  v1::RunSpec health = Spec(v1::REALM, v1::REALM_HEALTH);
  health.mutable_target()->set_no_stream(true);
  EXPECT_THAT(Message(health), HasSubstr("spec.target.noStream"));
  // No token arrives before a metadata answer ends: abandoning after N
  // tokens cannot happen.
  v1::RunSpec metadata = Spec(v1::REALM, v1::REALM_METADATA);
  metadata.mutable_cancellation()->set_share(0.5);
  metadata.mutable_cancellation()->set_after_tokens(2);
  EXPECT_THAT(Message(metadata), HasSubstr("spec.cancellation.afterTokens"));
}

}  // namespace
}  // namespace llmload::validation
