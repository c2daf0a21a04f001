// --turns: multi-turn conversations from the command line.

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

}  // namespace
}  // namespace llmload::cli
