// `llmload-worker --oneshot`: one process runs a whole spec against the real
// emulator and prints exact statistics, without orchestrator or collector.

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "boost/json/parse.hpp"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace llmload {
namespace {

class WorkerOneShotTest : public ::testing::Test {
 protected:
  void StartEmulator(const std::string& name) {
    dir_ = testing_util::MakeTempDir(name);
    emulator_ = testing_util::StartEmulator(dir_, &port_);
    ASSERT_NE(emulator_, nullptr);
  }

  // Runs `spec_json` with --oneshot_json; the counters of the JSON document
  // it prints on standard output.
  void RunOneShot(const std::string& spec_json, boost::json::object* counters) {
    const std::string spec = dir_ + "/spec.json";
    std::ofstream(spec) << spec_json;
    auto [code, out] = testing_util::RunShell(
        absl::StrCat("timeout 60 ", testing_util::BinPath("llmload-worker"), " --oneshot=", spec,
                     " --oneshot_json --threads=1 --log_level=warn"),
        /*with_stderr=*/false);
    ASSERT_EQ(code, 0) << out;
    boost::json::error_code ec;
    auto v = boost::json::parse(out, ec);
    ASSERT_FALSE(ec) << out;
    *counters = v.at("counters").as_object();
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<testing_util::ChildProcess> emulator_;
};

TEST_F(WorkerOneShotTest, RunsASpecAloneAndPrintsExactStatistics) {
  ASSERT_NO_FATAL_FAILURE(StartEmulator("oneshot"));
  boost::json::object counters;
  ASSERT_NO_FATAL_FAILURE(RunOneShot(
      absl::StrCat(
          R"({"spec": {"target": {"protocol": "ANTHROPIC_MESSAGES", "url": "http://127.0.0.1:)",
          port_, R"(", "model": "m"}, "load": {"closed": {"clients": 3, "cyclesPerClient": 2}},
          "emulation": {"lengthWords": 7, "tokenDelay": "0.001s"}}})"),
      &counters));
  EXPECT_EQ(counters.at("requests_ok").as_string(), "6");
  EXPECT_EQ(counters.at("tokens").as_string(), "42");
  EXPECT_EQ(counters.at("sessions_opened").as_string(), "3");

  // A bad spec is a clear error and exit 2.
  std::ofstream(dir_ + "/bad.json") << R"({"spec": {"target": {"protocol": "OPENAI_CHAT"}}})";
  auto [bad_code, bad_out] = testing_util::RunShell(
      absl::StrCat(testing_util::BinPath("llmload-worker"), " --oneshot=", dir_, "/bad.json"));
  EXPECT_EQ(bad_code, 2);
  EXPECT_NE(bad_out.find("spec.target.url"), std::string::npos) << bad_out;
}

// More WebSocket sessions than a loop's connection set-up slots
// (LoopShard::kMaxConnecting): the rest wait their turn, and every session
// still connects once and completes.
TEST_F(WorkerOneShotTest, SessionsBeyondTheConnectSlotsWaitTheirTurn) {
  ASSERT_NO_FATAL_FAILURE(StartEmulator("oneshot-slots"));
  boost::json::object counters;
  ASSERT_NO_FATAL_FAILURE(RunOneShot(
      absl::StrCat(R"({"spec": {"target": {"protocol": "WS_CHAT", "url": "ws://127.0.0.1:)",
                   port_, R"(/api/ws"}, "load": {"closed": {"clients": 1200,
                   "cyclesPerClient": 1, "maxConcurrent": 1200}},
                   "emulation": {"lengthWords": 3, "tokenDelay": "0.05s"}}})"),
      &counters));
  EXPECT_EQ(counters.at("requests_ok").as_string(), "1200");
  EXPECT_EQ(counters.at("sessions_opened").as_string(), "1200");
  EXPECT_EQ(counters.at("tokens").as_string(), "3600");
  EXPECT_FALSE(counters.contains("reconnects"));
}

}  // namespace
}  // namespace llmload
