// --turns (multi-turn conversations) and --warmup-requests, --warmup,
// --cooldown from the command line.

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tools/llmload/cli_args.h"

namespace llmload::cli {
namespace {

absl::StatusOr<Options> ParseLocal(std::vector<std::string> args) {
  args.insert(args.begin(), "local");
  return ParseArgs(args, [](const std::string&) -> std::optional<std::string> {
    return std::nullopt;
  });
}

TEST(CliTurnsTest, TurnsFlagFillsTheSpec) {
  absl::StatusOr<Options> o = ParseLocal({"--protocol", "anthropic_messages", "--turns", "4"});
  ASSERT_TRUE(o.ok()) << o.status();
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, "http://h:1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->target().turns(), 4);
  // Without the flag: single-turn.
  o = ParseLocal({"--protocol", "openai_chat"});
  ASSERT_TRUE(o.ok());
  spec = BuildRunSpec(*o, "http://h:1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->target().turns(), 0);
  EXPECT_FALSE(ParseLocal({"--turns", "three"}).ok());
}

TEST(CliTurnsTest, BadTurnsAreReportedAgainstTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {{"--protocol", "openai_chat", "--turns", "-1"}, "must be between 1 and 1000"},
      {{"--protocol", "gemini", "--turns", "1001"}, "must be between 1 and 1000"},
      {{"--protocol", "http_json", "--turns", "2"}, "HTTP_JSON has no conversation"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Options> o = ParseLocal(c.args);
    ASSERT_TRUE(o.ok()) << o.status();
    absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, "http://h:1");
    ASSERT_FALSE(spec.ok()) << c.args.back();
    const std::string msg(spec.status().message());
    EXPECT_TRUE(absl::StartsWith(msg, "--turns")) << msg;
    EXPECT_TRUE(absl::StrContains(msg, "spec.target.turns")) << msg;
    EXPECT_TRUE(absl::StrContains(msg, c.mentions)) << msg;
  }
}

TEST(CliTurnsTest, WarmupAndCooldownFlagsFillTheSpec) {
  absl::StatusOr<Options> o = ParseLocal({"--protocol", "openai_chat", "--warmup-requests", "6"});
  ASSERT_TRUE(o.ok()) << o.status();
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, "http://h:1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->warmup().requests(), 6);
  EXPECT_FALSE(spec->has_cooldown());
  o = ParseLocal({"--protocol", "openai_chat", "--duration", "10", "--warmup", "1.5", "--cooldown",
                  "2"});
  ASSERT_TRUE(o.ok()) << o.status();
  spec = BuildRunSpec(*o, "http://h:1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->warmup().duration().seconds(), 1);
  EXPECT_EQ(spec->warmup().duration().nanos(), 500000000);
  EXPECT_EQ(spec->cooldown().duration().seconds(), 2);
  // Without the flags: no phases.
  o = ParseLocal({"--protocol", "openai_chat"});
  ASSERT_TRUE(o.ok());
  spec = BuildRunSpec(*o, "http://h:1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(spec->has_warmup());
  EXPECT_FALSE(spec->has_cooldown());
}

TEST(CliTurnsTest, BadPhasesAreReportedAgainstTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string flag;
    std::string path;
  };
  const std::vector<Case> cases = {
      {{"--warmup-requests", "-2"}, "--warmup-requests", "spec.warmup.requests"},
      {{"--duration", "5", "--warmup", "5"}, "--warmup", "spec.warmup.duration"},
      {{"--cooldown", "1"}, "--cooldown", "spec.cooldown"},  // a closed load
      {{"--duration", "5", "--cooldown", "0"}, "--cooldown", "spec.cooldown.duration"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Options> o = ParseLocal(c.args);
    ASSERT_TRUE(o.ok()) << o.status();
    absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, "http://h:1");
    ASSERT_FALSE(spec.ok()) << c.flag;
    const std::string msg(spec.status().message());
    EXPECT_TRUE(absl::StartsWith(msg, c.flag)) << msg;
    EXPECT_TRUE(absl::StrContains(msg, c.path)) << msg;
  }
}

}  // namespace
}  // namespace llmload::cli
