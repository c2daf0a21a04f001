// `llmload-worker --oneshot`: one process runs a whole spec against the real
// emulator and prints exact statistics, without orchestrator or collector.

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "boost/json/parse.hpp"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace llmload {
namespace {

TEST(WorkerOneShotTest, RunsASpecAloneAndPrintsExactStatistics) {
  const std::string dir = testing_util::MakeTempDir("oneshot");
  const int port = testing_util::FreePort();
  auto emulator = testing_util::ChildProcess::Start(
      testing_util::BinPath("llmload-emulator"),
      {"--host=127.0.0.1", absl::StrCat("--port=", port), "--threads=1", "--tls_port=0"},
      dir + "/emulator.log", dir);
  ASSERT_TRUE(testing_util::WaitForTcp(port, absl::Seconds(20)));
  const std::string spec = dir + "/spec.json";
  std::ofstream(spec) << absl::StrCat(
      R"({"spec": {"target": {"protocol": "ANTHROPIC_MESSAGES", "url": "http://127.0.0.1:)", port,
      R"(", "model": "m"}, "load": {"closed": {"clients": 3, "cyclesPerClient": 2}},
          "emulation": {"lengthWords": 7, "tokenDelay": "0.001s"}}})");
  // Standard output only: it is the JSON document.
  auto [code, out] = testing_util::RunShell(
      absl::StrCat("timeout 60 ", testing_util::BinPath("llmload-worker"), " --oneshot=", spec,
                   " --oneshot_json --threads=1 --log_level=warn"),
      /*with_stderr=*/false);
  ASSERT_EQ(code, 0) << out;
  boost::json::error_code ec;
  auto v = boost::json::parse(out, ec);
  ASSERT_FALSE(ec) << out;
  const auto& counters = v.at("counters").as_object();
  EXPECT_EQ(counters.at("requests_ok").as_string(), "6");
  EXPECT_EQ(counters.at("tokens").as_string(), "42");
  EXPECT_EQ(counters.at("sessions_opened").as_string(), "3");

  // A bad spec is a clear error and exit 2.
  std::ofstream(dir + "/bad.json") << R"({"spec": {"target": {"protocol": "OPENAI_CHAT"}}})";
  auto [bad_code, bad_out] = testing_util::RunShell(
      absl::StrCat(testing_util::BinPath("llmload-worker"), " --oneshot=", dir, "/bad.json"));
  EXPECT_EQ(bad_code, 2);
  EXPECT_NE(bad_out.find("spec.target.url"), std::string::npos) << bad_out;
}

// More WebSocket sessions than a loop's connection set-up slots
// (LoopShard::kMaxConnecting): the rest wait their turn, and every session
// still connects once and completes.
TEST(WorkerOneShotTest, SessionsBeyondTheConnectSlotsWaitTheirTurn) {
  const std::string dir = testing_util::MakeTempDir("oneshot-slots");
  const int port = testing_util::FreePort();
  auto emulator = testing_util::ChildProcess::Start(
      testing_util::BinPath("llmload-emulator"),
      {"--host=127.0.0.1", absl::StrCat("--port=", port), "--threads=1", "--tls_port=0"},
      dir + "/emulator.log", dir);
  ASSERT_TRUE(testing_util::WaitForTcp(port, absl::Seconds(20)));
  const std::string spec = dir + "/spec.json";
  std::ofstream(spec) << absl::StrCat(
      R"({"spec": {"target": {"protocol": "WS_CHAT", "url": "ws://127.0.0.1:)", port,
      R"(/api/ws"}, "load": {"closed": {"clients": 1200, "cyclesPerClient": 1, "maxConcurrent": 1200}},
          "emulation": {"lengthWords": 3, "tokenDelay": "0.05s"}}})");
  auto [code, out] = testing_util::RunShell(
      absl::StrCat("timeout 60 ", testing_util::BinPath("llmload-worker"), " --oneshot=", spec,
                   " --oneshot_json --threads=1 --log_level=warn"),
      /*with_stderr=*/false);
  ASSERT_EQ(code, 0) << out;
  boost::json::error_code ec;
  auto v = boost::json::parse(out, ec);
  ASSERT_FALSE(ec) << out;
  const auto& counters = v.at("counters").as_object();
  EXPECT_EQ(counters.at("requests_ok").as_string(), "1200");
  EXPECT_EQ(counters.at("sessions_opened").as_string(), "1200");
  EXPECT_EQ(counters.at("tokens").as_string(), "3600");
  EXPECT_FALSE(counters.contains("reconnects"));
}

}  // namespace
}  // namespace llmload
