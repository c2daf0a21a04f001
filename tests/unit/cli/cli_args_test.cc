#include "tools/llmload/cli_args.h"

#include <map>

#include "gtest/gtest.h"

namespace llmload::cli {
namespace {

absl::StatusOr<Options> Parse(std::vector<std::string> args,
                              std::map<std::string, std::string> env = {}) {
  return ParseArgs(args, [&env](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  });
}

TEST(CliArgsTest, DefaultsAreTheOriginalClients) {
  auto o = Parse({"local"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->command, "local");
  EXPECT_EQ(o->clients, 10);
  EXPECT_EQ(o->cycles, 5);
  EXPECT_EQ(o->length_words, 100);
  EXPECT_DOUBLE_EQ(o->delay_seconds, 0.01);
  EXPECT_EQ(o->max_concurrent, 10);  // 50, capped at the number of clients
  EXPECT_EQ(o->workers, 2);
}

TEST(CliArgsTest, FlagsWithSeparateOrJoinedValues) {
  auto o = Parse({"local", "--clients", "100", "--cycles=10", "--length", "150", "--delay",
                  "0.005", "--max-concurrent", "60", "--workers", "3"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->clients, 100);
  EXPECT_EQ(o->cycles, 10);
  EXPECT_EQ(o->length_words, 150);
  EXPECT_DOUBLE_EQ(o->delay_seconds, 0.005);
  EXPECT_EQ(o->max_concurrent, 60);
  EXPECT_EQ(o->workers, 3);
  auto snake = Parse({"local", "--max_concurrent=7", "--clients=8"});
  ASSERT_TRUE(snake.ok());
  EXPECT_EQ(snake->max_concurrent, 7);
}

TEST(CliArgsTest, EnvironmentVariablesAndFlagPrecedence) {
  auto o = Parse({"local", "--clients", "7"}, {{"NUM_CLIENTS", "50"},
                                               {"CYCLES_PER_CLIENT", "10"},
                                               {"RESPONSE_LENGTH_WORDS", "20"},
                                               {"TOKEN_DELAY_SECONDS", "0.002"},
                                               {"MAX_CONCURRENT_CLIENTS", "3"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->clients, 7);  // the flag wins
  EXPECT_EQ(o->cycles, 10);
  EXPECT_EQ(o->length_words, 20);
  EXPECT_DOUBLE_EQ(o->delay_seconds, 0.002);
  EXPECT_EQ(o->max_concurrent, 3);
}

TEST(CliArgsTest, BadValuesAreClearErrors) {
  auto zero = Parse({"local", "--clients", "0"});
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("--clients"), absl::string_view::npos);
  EXPECT_FALSE(Parse({"local", "--delay", "-1"}).ok());
  EXPECT_FALSE(Parse({"local", "--delay", "abc"}).ok());
  EXPECT_FALSE(Parse({"local", "--clients"}).ok());
  EXPECT_FALSE(Parse({"local", "--bogus"}).ok());
  EXPECT_FALSE(Parse({"launch"}).ok());
  EXPECT_FALSE(Parse({"local", "--detach=yes"}).ok());
  auto env = Parse({"local"}, {{"NUM_CLIENTS", "many"}});
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("NUM_CLIENTS"), absl::string_view::npos);
}

TEST(CliArgsTest, RemoteCommands) {
  auto get = Parse({"get", "run-1", "--orchestrator", "host:1"});
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->positional, std::vector<std::string>{"run-1"});
  EXPECT_EQ(get->orchestrator, "host:1");
  EXPECT_FALSE(Parse({"get"}).ok());
  EXPECT_FALSE(Parse({"stop", "a", "b"}).ok());
  EXPECT_FALSE(Parse({"run"}).ok());
  auto run = Parse({"run", "-f", "spec.json", "--detach"});
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->spec_file, "spec.json");
  EXPECT_TRUE(run->detach);
  auto help = Parse({"--help"});
  ASSERT_TRUE(help.ok());
  EXPECT_EQ(help->command, "help");
  EXPECT_NE(UsageText().find("--max-concurrent"), std::string::npos);
}

}  // namespace
}  // namespace llmload::cli
