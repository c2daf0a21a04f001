// Cancelled requests (RunSpec.cancellation), every protocol: the real
// `llmload-worker --oneshot` abandons the spec's share of requests against
// the real emulator, the way users close a tab mid-answer. The counts are
// exact: which requests are abandoned is a pure function of (seed, client,
// request number), so the test knows them in advance; an abandoned request
// is neither ok nor failed, keeps the tokens it received, and its session
// goes on with its next request on a new connection. The emulator sees each
// client go: its own count of abandoned streams (GET /stats) grows by the
// worker's count of cancelled requests.

#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "gtest/gtest.h"
#include "lib/load/records.h"
#include "tests/testing/emulator_stats.h"
#include "tests/testing/process.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

constexpr int kClients = 4;
constexpr int kCycles = 5;
constexpr int kWords = 8;
constexpr int kAfterTokens = 3;
constexpr double kShare = 0.5;
constexpr uint64_t kSeed = 11;

// The requests the spec abandons: client ids 0..kClients-1, request numbers
// 1..kCycles.
uint64_t ExpectedCancelled() {
  v1::Cancellation c;
  c.set_share(kShare);
  c.set_seed(kSeed);
  const load::CancelSampler sampler(c);
  uint64_t n = 0;
  for (int client = 0; client < kClients; ++client) {
    for (int cycle = 1; cycle <= kCycles; ++cycle) {
      n += sampler.Keep(client, cycle) ? 1 : 0;
    }
  }
  return n;
}

uint64_t Counter(const boost::json::object& counters, const char* name) {
  const auto* v = counters.if_contains(name);
  return v == nullptr ? 0 : std::stoull(std::string(v->as_string()));
}

class CancellationTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing_util::MakeTempDir("cancellation"));
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

  // Runs the worker on `cancellation` (JSON) and returns its counters.
  static boost::json::object RunWorker(const std::string& name, const std::string& protocol,
                                       const std::string& cancellation,
                                       const std::string& token_delay) {
    EXPECT_TRUE(testing_util::WaitForTcp(port_, absl::Seconds(20)));
    const std::string spec_path = absl::StrCat(*dir_, "/", name, ".json");
    std::ofstream(spec_path) << absl::StrCat(
        R"({"spec": {"name": ")", name, R"(", "target": )",
        testing_util::EmulatorTargetJson(protocol, port_),
        R"(, "load": {"closed": {"clients": )", kClients, R"(, "cyclesPerClient": )", kCycles,
        R"(}}, "emulation": {"lengthWords": )", kWords, R"(, "tokenDelay": ")", token_delay,
        R"("}, "cancellation": )", cancellation, "}}");
    const std::string stderr_path = absl::StrCat(*dir_, "/", name, ".stderr");
    auto [code, out] = testing_util::RunShell(
        absl::StrCat("timeout -s KILL 60 ", testing_util::BinPath("llmload-worker"),
                     " --oneshot=", spec_path, " --oneshot_json --threads=2",
                     " --log_level=warn 2>", stderr_path, "; echo \"exit=$?\""),
        /*with_stderr=*/false);
    EXPECT_EQ(code, 0);
    const size_t at = out.rfind("exit=");
    if (at == std::string::npos) {
      ADD_FAILURE() << out;
      return {};
    }
    std::ifstream err_in(stderr_path);
    const std::string err((std::istreambuf_iterator<char>(err_in)),
                          std::istreambuf_iterator<char>());
    const int worker_exit = std::stoi(out.substr(at + 5));
    EXPECT_EQ(worker_exit, 0) << "llmload-worker " << name
                              << (worker_exit > 128
                                      ? absl::StrCat(" was killed by signal ", worker_exit - 128)
                                      : absl::StrCat(" exited ", worker_exit))
                              << "\nstderr:\n"
                              << err;
    boost::json::error_code ec;
    auto doc = boost::json::parse(out.substr(0, at), ec);
    if (ec || !doc.is_object() || !doc.as_object().contains("counters")) {
      ADD_FAILURE() << out;
      return {};
    }
    return doc.at("counters").as_object();
  }

  // The emulator's count of streamed responses of `protocol` that the
  // client left before their end.
  static uint64_t Abandoned(const std::string& protocol) {
    std::map<int64_t, testing_util::EmulatorStats> by_pid;
    EXPECT_TRUE(testing_util::CollectEmulatorStats(port_, 1, absl::Seconds(10), &by_pid));
    return by_pid.empty() ? 0 : by_pid.begin()->second.AbandonedOf(protocol);
  }

  // Waits until the emulator has counted `n` more abandoned streams than
  // `before` (it notices a client gone at its next write at the latest).
  static void ExpectEmulatorSawClientsGo(const std::string& protocol, uint64_t before,
                                         uint64_t n) {
    uint64_t now = before;
    EXPECT_TRUE(testing_util::WaitUntil(
        [&] {
          now = Abandoned(protocol);
          return now - before >= n;
        },
        absl::Seconds(10), "the emulator to count the abandoned streams"))
        << "emulator counted " << now - before << " of " << n;
    EXPECT_EQ(Abandoned(protocol) - before, n);
  }

  static std::string* dir_;
  static int port_;
  static testing_util::ChildProcess* emulator_;
};

std::string* CancellationTest::dir_ = nullptr;
int CancellationTest::port_ = 0;
testing_util::ChildProcess* CancellationTest::emulator_ = nullptr;

// Streamed protocols: abandoned after kAfterTokens tokens; a response that is
// not streamed (HTTP_JSON) after a time shorter than its generation.
TEST_P(CancellationTest, TheSpecsShareIsAbandonedAndCountedApart) {
  const std::string& protocol = GetParam();
  const bool streamed = protocol != "HTTP_JSON";
  const std::string name = absl::StrCat("after-", absl::StrReplaceAll(protocol, {{"_", ""}}));
  ASSERT_TRUE(testing_util::WaitForTcp(port_, absl::Seconds(20)));
  const uint64_t abandoned_before = Abandoned(protocol);
  // Streamed: tokens 50 ms apart, so the emulator still has about 250 ms of
  // the answer to write when the worker leaves after kAfterTokens, a margin
  // a worker slowed by a sanitizer on a loaded machine still keeps (were the
  // whole answer in the socket's buffer first, the emulator could not tell it
  // was abandoned). Unstreamed: the answer comes after kWords x 20 ms;
  // abandoned at 40 ms.
  const boost::json::object c =
      streamed ? RunWorker(name, protocol,
                           absl::StrCat(R"({"share": )", kShare, R"(, "seed": )", kSeed,
                                        R"(, "afterTokens": )", kAfterTokens, "}"),
                           "0.05s")
               : RunWorker(name, protocol,
                           absl::StrCat(R"({"share": )", kShare, R"(, "seed": )", kSeed,
                                        R"(, "after": "0.04s"})"),
                           "0.02s");
  SCOPED_TRACE(absl::StrCat(protocol, " counters: ", boost::json::serialize(c)));
  const uint64_t expected = ExpectedCancelled();
  ASSERT_GT(expected, 0u);
  ASSERT_LT(expected, static_cast<uint64_t>(kClients * kCycles));
  const uint64_t cancelled = Counter(c, "requests_cancelled");
  const uint64_t ok = Counter(c, "requests_ok");
  EXPECT_EQ(cancelled, expected);
  EXPECT_EQ(ok, kClients * kCycles - expected);
  EXPECT_EQ(Counter(c, "offered"), static_cast<uint64_t>(kClients * kCycles));
  // Cancelled requests are not failures, and the new connection after one
  // is neither a new session nor a reconnection.
  for (const char* failure : {"connect_failed", "http_4xx", "http_5xx", "rate_limited",
                              "protocol_error", "timeout", "disconnected", "unfinished"}) {
    EXPECT_EQ(Counter(c, failure), 0u) << failure;
  }
  EXPECT_EQ(Counter(c, "sessions_opened"), static_cast<uint64_t>(kClients));
  EXPECT_EQ(Counter(c, "reconnects"), 0u);
  EXPECT_EQ(Counter(c, "cycles"), static_cast<uint64_t>(kClients * kCycles));
  // The tokens of a cancelled request count: those received before it was
  // abandoned.
  EXPECT_EQ(Counter(c, "tokens"), ok * kWords + (streamed ? cancelled * kAfterTokens : 0));
  if (streamed) {  // an unstreamed answer is not a stream the emulator counts
    ExpectEmulatorSawClientsGo(protocol, abandoned_before, expected);
  }
}

// A time limit on a streamed answer: cut mid-stream, with some but not all
// of its tokens (HTTP_JSON, not streamed, is covered above).
class CancellationMidStreamTest : public CancellationTest {};

TEST_P(CancellationMidStreamTest, AbandonedAfterATime) {
  const std::string& protocol = GetParam();
  const std::string name = absl::StrCat("time-", absl::StrReplaceAll(protocol, {{"_", ""}}));
  ASSERT_TRUE(testing_util::WaitForTcp(port_, absl::Seconds(20)));
  const uint64_t abandoned_before = Abandoned(protocol);
  // kWords tokens 50 ms apart take about 400 ms; abandoned at 100 ms, with
  // about 300 ms of the answer left to write.
  const boost::json::object c = RunWorker(
      name, protocol,
      absl::StrCat(R"({"share": )", kShare, R"(, "seed": )", kSeed, R"(, "after": "0.1s"})"),
      "0.05s");
  SCOPED_TRACE(absl::StrCat(protocol, " counters: ", boost::json::serialize(c)));
  const uint64_t expected = ExpectedCancelled();
  const uint64_t cancelled = Counter(c, "requests_cancelled");
  const uint64_t ok = Counter(c, "requests_ok");
  EXPECT_EQ(cancelled, expected);
  EXPECT_EQ(ok, kClients * kCycles - expected);
  EXPECT_EQ(Counter(c, "timeout") + Counter(c, "disconnected"), 0u);
  const uint64_t tokens = Counter(c, "tokens");
  EXPECT_GE(tokens, ok * kWords + cancelled);  // at least one token before the cut
  EXPECT_LT(tokens, (ok + cancelled) * kWords);
  ExpectEmulatorSawClientsGo(protocol, abandoned_before, expected);
}

std::string ParamName(const ::testing::TestParamInfo<std::string>& info) {
  return absl::StrReplaceAll(info.param, {{"_", ""}});
}

INSTANTIATE_TEST_SUITE_P(EveryProtocol, CancellationTest,
                         ::testing::Values("CENTRIFUGO_EMULATOR", "REALM", "WS_CHAT",
                                           "OPENAI_CHAT", "ANTHROPIC_MESSAGES", "GEMINI",
                                           "HTTP_JSON", "OPENAI_RESPONSES"),
                         ParamName);
INSTANTIATE_TEST_SUITE_P(StreamedProtocols, CancellationMidStreamTest,
                         ::testing::Values("CENTRIFUGO_EMULATOR", "REALM", "WS_CHAT",
                                           "OPENAI_CHAT", "ANTHROPIC_MESSAGES", "GEMINI",
                                           "OPENAI_RESPONSES"),
                         ParamName);

}  // namespace
}  // namespace llmload
