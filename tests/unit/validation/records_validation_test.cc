// spec.records: the per-request records' sample rate and cap.

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
  return spec;
}

TEST(RecordsValidationTest, RateAndCapAreChecked) {
  v1::RunSpec spec = Spec();
  spec.mutable_records()->set_sample_rate(0.25);
  spec.mutable_records()->set_max_records(kMaxRecords);
  EXPECT_TRUE(ValidateRunSpec(spec).ok());
  for (double bad : {-0.1, 1.5}) {
    spec.mutable_records()->set_sample_rate(bad);
    absl::Status s = ValidateRunSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr("spec.records.sampleRate"));
  }
  spec.mutable_records()->set_sample_rate(1);
  for (int bad : {-1, kMaxRecords + 1}) {
    spec.mutable_records()->set_max_records(bad);
    absl::Status s = ValidateRunSpec(spec);
    EXPECT_THAT(std::string(s.message()), HasSubstr("spec.records.maxRecords"));
  }
}

TEST(RecordsValidationTest, DefaultsFillTheCapOnlyWhenRecording) {
  v1::RunSpec spec = Spec();
  ApplyDefaults(&spec);
  EXPECT_FALSE(spec.has_records());
  spec.mutable_records()->set_sample_rate(1);
  ApplyDefaults(&spec);
  EXPECT_EQ(spec.records().max_records(), kDefaultMaxRecords);
  spec.mutable_records()->set_max_records(7);
  ApplyDefaults(&spec);
  EXPECT_EQ(spec.records().max_records(), 7);
}

}  // namespace
}  // namespace llmload::validation
