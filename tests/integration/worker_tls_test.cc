// The worker over TLS (https, wss) against the emulator's TLS port, with a
// certificate made for the test: verified through caFile, refused without
// it, accepted with insecureSkipVerify.


#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/json/parse.hpp"
#include "gtest/gtest.h"
#include "tests/testing/emulator_stats.h"
#include "tests/testing/process.h"

namespace llmload {
namespace {

class WorkerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir("tls");
    const std::string gen = absl::StrCat(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
        "-addext subjectAltName=IP:127.0.0.1 -keyout ", dir_, "/key.pem -out ", dir_,
        "/cert.pem >/dev/null 2>&1");
    ASSERT_EQ(std::system(gen.c_str()), 0) << "openssl could not make a test certificate";
    port_ = testing_util::FreePort();
    tls_port_ = testing_util::FreePort();
    std::vector<std::string> args = {
        "--host=127.0.0.1", absl::StrCat("--port=", port_), absl::StrCat("--tls_port=", tls_port_),
        "--tls_cert_file=" + dir_ + "/cert.pem", "--tls_key_file=" + dir_ + "/key.pem",
        "--threads=1"};
    if (processes_ > 1) {
      args.push_back(absl::StrCat("--processes=", processes_));
    }
    emulator_ = testing_util::ChildProcess::Start(testing_util::BinPath("llmload-emulator"), args,
                                                  dir_ + "/emulator.log", dir_);
    ASSERT_TRUE(testing_util::WaitForTcp(tls_port_, absl::Seconds(20)));
  }

  // Runs a one-shot spec; returns the exit code and the counters.
  std::pair<int, boost::json::object> Run(const std::string& protocol, const std::string& url,
                                          const std::string& extra) {
    const std::string spec = dir_ + "/spec.json";
    std::ofstream(spec) << absl::StrCat(
        R"({"target": {"protocol": ")", protocol, R"(", "url": ")", url,
        R"(", "model": "m", "reconnectAttempts": -1)", extra,
        R"(}, "load": {"closed": {"clients": 2, "cyclesPerClient": 2}},
           "emulation": {"lengthWords": 6, "tokenDelay": "0.001s"}})");
    auto [code, out] = testing_util::RunShell(
        absl::StrCat("timeout 60 ", testing_util::BinPath("llmload-worker"), " --oneshot=", spec,
                     " --oneshot_json --threads=1 --log_level=error"),
        /*with_stderr=*/false);
    boost::json::error_code ec;
    auto v = boost::json::parse(out, ec);
    EXPECT_FALSE(ec) << out;
    boost::json::object counters;
    if (!ec && v.is_object() && v.as_object().contains("counters")) {
      counters = v.at("counters").as_object();
    }
    return {code, counters};
  }

  int processes_ = 1;  // emulator processes sharing the ports
  std::string dir_;
  int port_ = 0;
  int tls_port_ = 0;
  std::unique_ptr<testing_util::ChildProcess> emulator_;
};

TEST_F(WorkerTlsTest, HttpsAndWssWithTheTestCa) {
  const std::string ca = absl::StrCat(R"(, "caFile": ")", dir_, R"(/cert.pem")");
  for (const auto& [protocol, url] :
       std::vector<std::pair<std::string, std::string>>{
           {"OPENAI_CHAT", absl::StrCat("https://127.0.0.1:", tls_port_)},
           {"GEMINI", absl::StrCat("https://127.0.0.1:", tls_port_)},
           {"WS_CHAT", absl::StrCat("wss://127.0.0.1:", tls_port_, "/api/ws")},
           {"REALM", absl::StrCat("wss://127.0.0.1:", tls_port_, "/")}}) {
    SCOPED_TRACE(protocol);
    auto [code, counters] = Run(protocol, url, ca);
    EXPECT_EQ(code, 0);
    ASSERT_TRUE(counters.contains("requests_ok"));
    EXPECT_EQ(counters.at("requests_ok").as_string(), "4");
    EXPECT_EQ(counters.at("tokens").as_string(), "24");
  }
}

TEST_F(WorkerTlsTest, AnUnknownCaIsRefusedUnlessVerificationIsSkipped) {
  const std::string url = absl::StrCat("https://127.0.0.1:", tls_port_);
  auto [code, counters] = Run("ANTHROPIC_MESSAGES", url, "");
  EXPECT_EQ(code, 1);
  ASSERT_TRUE(counters.contains("sessions_failed"));
  EXPECT_EQ(counters.at("sessions_failed").as_string(), "2");
  EXPECT_FALSE(counters.contains("requests_ok"));
  auto [ok_code, ok_counters] = Run("ANTHROPIC_MESSAGES", url, R"(, "insecureSkipVerify": true)");
  EXPECT_EQ(ok_code, 0);
  ASSERT_TRUE(ok_counters.contains("requests_ok"));
  EXPECT_EQ(ok_counters.at("requests_ok").as_string(), "4");
}

// The TLS port of a group of emulator processes (--processes): each process
// binds it with SO_REUSEPORT and serves https/wss with the certificate.
class WorkerTlsGroupTest : public WorkerTlsTest {
 protected:
  void SetUp() override {
    processes_ = 2;
    WorkerTlsTest::SetUp();
  }
};

TEST_F(WorkerTlsGroupTest, HttpsAndWssOnTheSharedTlsPort) {
  const std::string ca = absl::StrCat(R"(, "caFile": ")", dir_, R"(/cert.pem")");
  for (const auto& [protocol, url] : std::vector<std::pair<std::string, std::string>>{
           {"OPENAI_CHAT", absl::StrCat("https://127.0.0.1:", tls_port_)},
           {"WS_CHAT", absl::StrCat("wss://127.0.0.1:", tls_port_, "/api/ws")}}) {
    SCOPED_TRACE(protocol);
    auto [code, counters] = Run(protocol, url, ca);
    EXPECT_EQ(code, 0);
    ASSERT_TRUE(counters.contains("requests_ok"));
    EXPECT_EQ(counters.at("requests_ok").as_string(), "4");
  }
  // Both processes answer on the plain port, and together they planned
  // exactly the requests sent over TLS.
  std::map<int64_t, testing_util::EmulatorStats> by_pid;
  ASSERT_TRUE(testing_util::CollectEmulatorStats(port_, 2, absl::Seconds(20), &by_pid));
  uint64_t openai = 0;
  uint64_t ws_chat = 0;
  for (const auto& [pid, stats] : by_pid) {
    EXPECT_EQ(stats.processes, 2);
    openai += stats.RequestsOf("OPENAI_CHAT");
    ws_chat += stats.RequestsOf("WS_CHAT");
  }
  EXPECT_EQ(openai, 4u);
  EXPECT_EQ(ws_chat, 4u);
}

}  // namespace
}  // namespace llmload
