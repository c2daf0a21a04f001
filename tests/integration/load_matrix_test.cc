// Every protocol under every load model, with one and two event loops: the
// real `llmload-worker --oneshot` against the real emulator. Each cell is
// short (about a second) and asserts that the worker exits cleanly and that
// every request it offered is accounted for exactly:
//
//   offered = ok + failed + dropped + unfinished
//
// and, where the emulator sets the answer's length, tokens = ok x words.
// The same binary runs in the sanitizer stages of scripts/test.sh against
// ASan+UBSan and TSan builds of the worker, where lifetime and threading
// bugs in the data path show up.

#include <fstream>
#include <memory>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

constexpr int kWords = 5;

enum class Model { kClosed, kDuration, kOpenPoisson, kOpenUniform, kOpenRamp };

std::string ModelName(Model m) {
  switch (m) {
    case Model::kClosed:
      return "Closed";
    case Model::kDuration:
      return "Duration";
    case Model::kOpenPoisson:
      return "OpenPoisson";
    case Model::kOpenUniform:
      return "OpenUniform";
    case Model::kOpenRamp:
      return "OpenRamp";
  }
  return "?";
}

std::string LoadJson(Model m) {
  switch (m) {
    case Model::kClosed:
      return R"({"closed": {"clients": 3, "cyclesPerClient": 2, "maxConcurrent": 3}})";
    case Model::kDuration:
      return R"({"duration": {"connections": 3, "duration": "1s"}})";
    case Model::kOpenPoisson:
      // The in-flight cap of the user report that crashed the worker.
      return R"({"open": {"ratePerSecond": 40, "duration": "1s", "maxInFlight": 9000,
                          "seed": 7}})";
    case Model::kOpenUniform:
      // A small cap: some arrivals find every session busy and are dropped.
      return R"({"open": {"ratePerSecond": 60, "duration": "1s", "distribution": "UNIFORM",
                          "maxInFlight": 2, "seed": 7}})";
    case Model::kOpenRamp:
      return R"({"open": {"ratePerSecond": 10, "duration": "1s", "seed": 7,
                          "stages": [{"targetRate": 60, "duration": "1s"}]}})";
  }
  return "";
}

using Cell = std::tuple<std::string, Model, int>;

class LoadMatrixTest : public ::testing::TestWithParam<Cell> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing_util::MakeTempDir("load-matrix"));
    port_ = testing_util::FreePort();
    emulator_ = testing_util::ChildProcess::Start(
                    testing_util::BinPath("llmload-emulator"),
                    {"--host=127.0.0.1", absl::StrCat("--port=", port_), "--threads=1",
                     "--tls_port=0"},
                    *dir_ + "/emulator.log", *dir_)
                    .release();
  }
  static void TearDownTestSuite() {
    delete emulator_;
    emulator_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  static std::string* dir_;
  static int port_;
  static testing_util::ChildProcess* emulator_;
};

std::string* LoadMatrixTest::dir_ = nullptr;
int LoadMatrixTest::port_ = 0;
testing_util::ChildProcess* LoadMatrixTest::emulator_ = nullptr;

uint64_t Counter(const boost::json::object& counters, const char* name) {
  const auto* v = counters.if_contains(name);
  return v == nullptr ? 0 : std::stoull(std::string(v->as_string()));
}

TEST_P(LoadMatrixTest, AccountsForEveryRequestAndExitsCleanly) {
  const auto& [protocol, model, threads] = GetParam();
  ASSERT_TRUE(testing_util::WaitForTcp(port_, absl::Seconds(20)));
  const std::string cell = absl::StrCat(protocol, "-", ModelName(model), "-", threads);
  const std::string spec_path = absl::StrCat(*dir_, "/", cell, ".json");
  std::ofstream(spec_path) << absl::StrCat(
      R"({"spec": {"name": ")", cell, R"(", "target": )",
      testing_util::EmulatorTargetJson(protocol, port_),
      R"(, "load": )", LoadJson(model), R"(, "emulation": {"lengthWords": )", kWords,
      R"(, "tokenDelay": "0.005s"}}})");
  const std::string stderr_path = absl::StrCat(*dir_, "/", cell, ".stderr");
  auto [code, out] = testing_util::RunShell(
      absl::StrCat("timeout -s KILL 60 ", testing_util::BinPath("llmload-worker"),
                   " --oneshot=", spec_path, " --oneshot_json --threads=", threads,
                   " --log_level=warn 2>", stderr_path, "; echo \"exit=$?\""),
      /*with_stderr=*/false);
  ASSERT_EQ(code, 0);
  std::ifstream err_in(stderr_path);
  const std::string err((std::istreambuf_iterator<char>(err_in)), std::istreambuf_iterator<char>());
  // The worker's own exit status (128 + N: killed by signal N).
  const size_t at = out.rfind("exit=");
  ASSERT_NE(at, std::string::npos) << out;
  const int worker_exit = std::stoi(out.substr(at + 5));
  ASSERT_EQ(worker_exit, 0) << "llmload-worker " << cell
                            << (worker_exit > 128 ? absl::StrCat(" was killed by signal ",
                                                                 worker_exit - 128)
                                                  : absl::StrCat(" exited ", worker_exit))
                            << "\nstderr:\n"
                            << err;
  boost::json::error_code ec;
  auto doc = boost::json::parse(out.substr(0, at), ec);
  ASSERT_FALSE(ec) << out;
  const boost::json::object& c = doc.at("counters").as_object();
  const uint64_t offered = Counter(c, "offered");
  const uint64_t ok = Counter(c, "requests_ok");
  const uint64_t failed = Counter(c, "connect_failed") + Counter(c, "http_4xx") +
                          Counter(c, "http_5xx") + Counter(c, "rate_limited") +
                          Counter(c, "protocol_error") + Counter(c, "timeout") +
                          Counter(c, "disconnected");
  const uint64_t dropped = Counter(c, "dropped");
  const uint64_t unfinished = Counter(c, "unfinished");
  SCOPED_TRACE(absl::StrCat(cell, " counters: ", boost::json::serialize(c)));
  EXPECT_EQ(offered, ok + failed + dropped + unfinished);
  EXPECT_EQ(failed, 0u) << "the emulator injects no faults here";
  EXPECT_GT(ok, 0u);
  EXPECT_EQ(Counter(c, "tokens"), ok * kWords);
  EXPECT_EQ(Counter(c, "sessions_failed"), 0u);
  switch (model) {
    case Model::kClosed:
      EXPECT_EQ(offered, 6u);
      EXPECT_EQ(ok, 6u);
      EXPECT_EQ(Counter(c, "sessions_opened"), 3u);
      break;
    case Model::kDuration:
      EXPECT_EQ(dropped, 0u);
      EXPECT_LE(unfinished, 3u);  // at most one request per connection is cut off
      break;
    case Model::kOpenUniform:
      // 60 evenly spaced arrivals in 1 s, split over the loops.
      EXPECT_NEAR(static_cast<double>(offered), 60.0, threads);
      break;
    case Model::kOpenPoisson:
    case Model::kOpenRamp:
      EXPECT_EQ(dropped, 0u);  // the cap is far above the arrivals in flight
      break;
  }
}

std::string CellName(const ::testing::TestParamInfo<Cell>& info) {
  const auto& [protocol, model, threads] = info.param;
  return absl::StrCat(absl::StrReplaceAll(protocol, {{"_", ""}}), "_", ModelName(std::get<1>(
                                                                         info.param)),
                      "_", threads, "Loop", threads > 1 ? "s" : "");
}

INSTANTIATE_TEST_SUITE_P(
    EveryProtocolEveryModel, LoadMatrixTest,
    ::testing::Combine(::testing::Values("CENTRIFUGO_EMULATOR", "REALM", "WS_CHAT", "OPENAI_CHAT",
                                         "ANTHROPIC_MESSAGES", "GEMINI", "HTTP_JSON",
                                         "OPENAI_RESPONSES"),
                       ::testing::Values(Model::kClosed, Model::kDuration, Model::kOpenPoisson,
                                         Model::kOpenUniform, Model::kOpenRamp),
                       ::testing::Values(1, 2)),
    CellName);

}  // namespace
}  // namespace llmload
