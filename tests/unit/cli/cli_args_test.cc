#include "tools/llmload/cli_args.h"

#include <map>

#include "absl/strings/match.h"
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
  // Syntax is the parser's; limits are validation's, named by flag.
  auto zero = Parse({"local", "--clients", "0"});
  ASSERT_TRUE(zero.ok()) << zero.status();
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*zero, "http://127.0.0.1:1");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(spec.status().message(),
            "--clients: must be between 1 and 1000000, got 0 [spec.load.closed.clients]");
  auto negative_delay = Parse({"local", "--delay", "-1"});
  ASSERT_TRUE(negative_delay.ok());
  spec = BuildRunSpec(*negative_delay, "http://127.0.0.1:1");
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::StartsWith(spec.status().message(), "--delay: ")) << spec.status();
  EXPECT_FALSE(Parse({"local", "--delay", "abc"}).ok());
  EXPECT_FALSE(Parse({"local", "--delay", "inf"}).ok());
  EXPECT_FALSE(Parse({"local", "--clients", "1.5"}).ok());
  EXPECT_FALSE(Parse({"local", "--clients", "99999999999"}).ok());
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

TEST(CliArgsTest, ThresholdSpecsParseIntoEveryKind) {
  auto t = ParseThreshold("ttft:p95<0.5s");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->metric(), "ttft");
  EXPECT_EQ(t->kind(), v1::PERCENTILE);
  EXPECT_DOUBLE_EQ(t->percentile(), 95);
  EXPECT_EQ(t->below().seconds(), 0);
  EXPECT_EQ(t->below().nanos(), 500000000);
  t = ParseThreshold("e2e:p99.9<800ms");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_DOUBLE_EQ(t->percentile(), 99.9);
  EXPECT_EQ(t->below().nanos(), 800000000);
  t = ParseThreshold("error_rate<0.01");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->kind(), v1::ERROR_RATE);
  EXPECT_DOUBLE_EQ(t->below_value(), 0.01);
  t = ParseThreshold("requests_per_sec>50");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->kind(), v1::THROUGHPUT);
  EXPECT_DOUBLE_EQ(t->above(), 50);
  for (const char* bad : {"ttft<1s", "ttft:p95", "a<1>2", "requests_per_sec>x", "ttft:pxx<1s",
                          "ttft:p95<fast", "error_rate<nan"}) {
    EXPECT_FALSE(ParseThreshold(bad).ok()) << bad;
  }
  // Well-formed but out of bounds, or an unknown metric: validation says so,
  // naming the flag.
  for (const char* out_of_range : {"ttft:p0<1s", "ttft:p95<-1s", "error_rate<2", "bogus:p95<1s"}) {
    ASSERT_TRUE(ParseThreshold(out_of_range).ok()) << out_of_range;
    auto o = Parse({"local", "--threshold", out_of_range});
    ASSERT_TRUE(o.ok()) << o.status();
    absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, "http://127.0.0.1:1");
    ASSERT_FALSE(spec.ok()) << out_of_range;
    EXPECT_TRUE(absl::StartsWith(spec.status().message(), "--threshold: "))
        << spec.status();
    EXPECT_TRUE(absl::StrContains(spec.status().message(), "[spec.thresholds[0]"))
        << spec.status();
  }
}

TEST(CliArgsTest, LoadModelFlagsBuildTheSpec) {
  auto o = Parse({"run", "--url", "http://h:1", "--rate", "20", "--duration", "60",
                  "--arrivals", "uniform", "--ramp", "50:30,0:10", "--max-in-flight", "100",
                  "--seed", "7", "--threshold", "ttft:p95<0.5s", "--threshold",
                  "error_rate<0.01", "--abort-on-fail", "--slo-ttft", "0.5", "--slo-itl",
                  "0.05"});
  ASSERT_TRUE(o.ok()) << o.status();
  v1::RunSpec spec = SpecFromOptions(*o, "http://h:1");
  ASSERT_TRUE(spec.load().has_open());
  const v1::OpenLoad& open = spec.load().open();
  EXPECT_DOUBLE_EQ(open.rate_per_second(), 20);
  EXPECT_EQ(open.duration().seconds(), 60);
  EXPECT_EQ(open.distribution(), v1::UNIFORM);
  ASSERT_EQ(open.stages_size(), 2);
  EXPECT_DOUBLE_EQ(open.stages(0).target_rate(), 50);
  EXPECT_EQ(open.stages(1).duration().seconds(), 10);
  EXPECT_EQ(open.max_in_flight(), 100);
  EXPECT_EQ(open.seed(), 7u);
  ASSERT_EQ(spec.thresholds_size(), 2);
  EXPECT_TRUE(spec.thresholds(0).abort_on_fail());
  EXPECT_EQ(spec.objectives().ttft().nanos(), 500000000);
  EXPECT_EQ(spec.objectives().mean_itl().nanos(), 50000000);

  o = Parse({"local", "--duration", "30", "--clients", "8", "--think", "0.1:0.5"});
  ASSERT_TRUE(o.ok()) << o.status();
  spec = SpecFromOptions(*o, "http://h:1");
  ASSERT_TRUE(spec.load().has_duration());
  EXPECT_EQ(spec.load().duration().connections(), 8);
  EXPECT_EQ(spec.load().duration().duration().seconds(), 30);
  EXPECT_EQ(spec.load().duration().think_time().min().nanos(), 100000000);
  EXPECT_EQ(spec.load().duration().think_time().max().nanos(), 500000000);

  o = Parse({"local"});
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(SpecFromOptions(*o, "http://h:1").load().has_closed());

  EXPECT_FALSE(Parse({"local", "--rate", "5"}).ok());  // needs --duration or --ramp
  EXPECT_FALSE(Parse({"local", "--arrivals", "bursty"}).ok());
  EXPECT_FALSE(Parse({"local", "--ramp", "10"}).ok());
  EXPECT_FALSE(Parse({"local", "--think", "2:x"}).ok());
  EXPECT_FALSE(Parse({"local", "--threshold", "nonsense"}).ok());
  o = Parse({"local", "--think", "2:1"});  // MAX < MIN: validation's call
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(BuildRunSpec(*o, "http://h:1").status().message(),
            "--think: must be >= min (2s), got 1s [spec.load.closed.thinkTime.max]");
}

TEST(CliArgsTest, ReportCompareAndRecordsFlags) {
  auto o = Parse({"report", "run-1", "--format", "html", "-o", "r.html", "--records", "x.csv",
                  "--collector", "10.0.0.1:1"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->command, "report");
  EXPECT_EQ(o->positional, std::vector<std::string>{"run-1"});
  EXPECT_EQ(o->format, "html");
  EXPECT_EQ(o->output, "r.html");
  EXPECT_EQ(o->records_file, "x.csv");
  EXPECT_EQ(o->collector, "10.0.0.1:1");
  EXPECT_EQ(Parse({"report", "run-1"}, {{"LLMLOAD_COLLECTOR", "c:9"}})->collector, "c:9");
  EXPECT_FALSE(Parse({"report"}).ok());
  EXPECT_FALSE(Parse({"report", "run-1", "--format", "pdf"}).ok());
  o = Parse({"compare", "a", "b", "--max-regression", "7.5", "--only", "ttft:p99"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(*o->max_regression_pct, 7.5);
  EXPECT_EQ(o->compare_only, std::vector<std::string>{"ttft:p99"});
  EXPECT_FALSE(Parse({"compare", "a"}).ok());
  EXPECT_FALSE(Parse({"compare", "a", "b", "--format", "html"}).ok());
  // --report needs a known extension; --records turns recording on.
  EXPECT_FALSE(Parse({"local", "--report", "out.pdf"}).ok());
  o = Parse({"local", "--report", "out.html", "--records", "r.jsonl"});
  ASSERT_TRUE(o.ok()) << o.status();
  v1::RunSpec spec = SpecFromOptions(*o, "http://127.0.0.1:1");
  EXPECT_EQ(spec.records().sample_rate(), 1);
  o = Parse({"local", "--records-sample", "0.25", "--records-seed", "9", "--records-max", "50"});
  ASSERT_TRUE(o.ok()) << o.status();
  spec = SpecFromOptions(*o, "http://127.0.0.1:1");
  EXPECT_EQ(spec.records().sample_rate(), 0.25);
  EXPECT_EQ(spec.records().seed(), 9u);
  EXPECT_EQ(spec.records().max_records(), 50);
  EXPECT_FALSE(SpecFromOptions(*Parse({"local"}), "").has_records());
  o = Parse({"local", "--records-sample", "1.5"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(absl::StartsWith(BuildRunSpec(*o, "http://h:1").status().message(),
                               "--records-sample: must be in (0, 1]"));
  o = Parse({"local", "--records-max", "2000000"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(absl::StartsWith(BuildRunSpec(*o, "http://h:1").status().message(),
                               "--records-max: must be between 1 and 1000000"));
  EXPECT_FALSE(Parse({"local", "--records-max", "many"}).ok());
}

}  // namespace
}  // namespace llmload::cli
