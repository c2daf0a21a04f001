// Validation of the prompt fields of spec.target: every bad value is refused
// with INVALID_ARGUMENT naming the field.

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "lib/validation/validation.h"

namespace llmload::validation {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A spec whose target carries `target_extra` (JSON members, comma first).
v1::RunSpec SpecWith(const std::string& target_extra) {
  v1::RunSpec spec;
  const std::string json = R"json({"target": {"protocol": "OPENAI_CHAT",
      "url": "http://127.0.0.1:8080")json" +
                           target_extra + R"json(},
      "load": {"closed": {"clients": 2, "cyclesPerClient": 3}}})json";
  const auto status = google::protobuf::util::JsonStringToMessage(json, &spec);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return spec;
}

void ExpectInvalid(const std::string& target_extra, const std::string& field,
                   const std::string& reason) {
  const absl::Status st = ValidateRunSpec(SpecWith(target_extra));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << target_extra << " -> " << st;
  EXPECT_THAT(std::string(st.message()), StartsWith(field + ":")) << target_extra;
  EXPECT_THAT(std::string(st.message()), HasSubstr(reason)) << target_extra;
}

TEST(PromptsValidationTest, ValidPromptSourcesPass) {
  for (const char* extra : {
           R"(, "promptMessages": [{"messages": [{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": "Hi"}]}],
              "promptOrder": "PROMPT_ORDER_RANDOM", "promptSeed": "7")",
           R"(, "prompts": ["a", "b"], "promptOrder": "PROMPT_ORDER_CYCLE",
              "outputLength": {"kind": "LENGTH_UNIFORM", "min": 5, "max": 9})",
           R"(, "inputLength": {"kind": "LENGTH_FIXED", "value": 20},
              "outputLength": {"kind": "LENGTH_NORMAL", "mean": 100, "stddev": 20})",
           R"(, "inputLength": {"kind": "LENGTH_LOGNORMAL", "mean": 200, "stddev": 80,
                                "min": 10, "max": 2000})",
       }) {
    const absl::Status st = ValidateRunSpec(SpecWith(extra));
    EXPECT_TRUE(st.ok()) << extra << " -> " << st;
  }
}

TEST(PromptsValidationTest, PromptMessagesAreChecked) {
  ExpectInvalid(R"(, "promptMessages": [{"messages": []}])", "spec.target.promptMessages[0].messages",
                "at least one message");
  ExpectInvalid(R"(, "promptMessages": [{"messages": [{"role": "user", "content": "a"}]},
                                        {"messages": [{"role": "robot", "content": "b"}]}])",
                "spec.target.promptMessages[1].messages[0].role", "system, user or assistant");
  ExpectInvalid(R"(, "promptMessages": [{"messages": [{"role": "system", "content": "a"}]}])",
                "spec.target.promptMessages[0].messages", "role user");
  ExpectInvalid(R"(, "prompts": ["x"],
                  "promptMessages": [{"messages": [{"role": "user", "content": "a"}]}])",
                "spec.target.promptMessages", "not both");
}

TEST(PromptsValidationTest, DatasetSizeIsBounded) {
  v1::RunSpec spec = SpecWith("");
  spec.mutable_target()->add_prompts(std::string(kMaxPromptBytes + 1, 'x'));
  const absl::Status st = ValidateRunSpec(spec);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), StartsWith("spec.target.prompts:"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("bytes of prompt text"));
}

TEST(PromptsValidationTest, PromptOrderMustBeKnown) {
  v1::RunSpec spec = SpecWith(R"(, "prompts": ["a"])");
  spec.mutable_target()->set_prompt_order(static_cast<v1::PromptOrder>(9));
  const absl::Status st = ValidateRunSpec(spec);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), StartsWith("spec.target.promptOrder:"));
}

TEST(PromptsValidationTest, LengthDistributionsAreChecked) {
  for (const char* field : {"inputLength", "outputLength"}) {
    const std::string f = field;
    const std::string path = "spec.target." + f;
    ExpectInvalid(", \"" + f + R"(": {"kind": "LENGTH_FIXED", "value": 0})", path + ".value",
                  "between 1 and 100000");
    ExpectInvalid(", \"" + f + R"(": {"kind": "LENGTH_FIXED", "value": 100001})",
                  path + ".value", "between 1 and 100000");
    ExpectInvalid(", \"" + f + R"(": {"kind": "LENGTH_UNIFORM", "min": 0, "max": 5})",
                  path + ".min", "between 1 and 100000");
    ExpectInvalid(", \"" + f + R"(": {"kind": "LENGTH_UNIFORM", "min": 10, "max": 5})",
                  path + ".max", "between min (10)");
    ExpectInvalid(", \"" + f + R"(": {"kind": "LENGTH_NORMAL", "mean": 0, "stddev": 5})",
                  path + ".mean", "between 1 and 100000");
    ExpectInvalid(", \"" + f + R"(": {"kind": "LENGTH_LOGNORMAL", "mean": 10, "stddev": -1})",
                  path + ".stddev", "between 0 and");
    ExpectInvalid(", \"" + f + R"(": {"kind": "LENGTH_NORMAL", "mean": 10, "min": -2})",
                  path + ".min", "0 (default 1)");
    ExpectInvalid(", \"" + f + R"(": {"kind": "LENGTH_NORMAL", "mean": 10, "min": 20, "max": 15})",
                  path + ".max", "between min");
    ExpectInvalid(", \"" + f + R"(": {"mean": 10})", path + ".kind", "required");
    v1::RunSpec spec = SpecWith("");
    v1::LengthDistribution* d = f == "inputLength" ? spec.mutable_target()->mutable_input_length()
                                                   : spec.mutable_target()->mutable_output_length();
    d->set_kind(static_cast<v1::LengthKind>(17));
    const absl::Status st = ValidateRunSpec(spec);
    EXPECT_THAT(std::string(st.message()), StartsWith(path + ".kind:")) << st;
  }
}

TEST(PromptsValidationTest, OneSourcePerQuantity) {
  ExpectInvalid(R"(, "prompt": "hello", "inputLength": {"kind": "LENGTH_FIXED", "value": 3})",
                "spec.target.inputLength", "give one source");
  ExpectInvalid(R"(, "prompts": ["a"], "inputLength": {"kind": "LENGTH_FIXED", "value": 3})",
                "spec.target.inputLength", "give one source");
  ExpectInvalid(R"(, "maxTokens": 10, "outputLength": {"kind": "LENGTH_FIXED", "value": 3})",
                "spec.target.outputLength", "leave maxTokens unset");
}

}  // namespace
}  // namespace llmload::validation
