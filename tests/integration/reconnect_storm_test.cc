// RunSpec.reconnect_storm against the real emulator: the real
// `llmload-worker --oneshot` drops the chosen Centrifugo sessions mid-answer
// (no close handshake), brings them back after reconnectAfter with a connect
// that asks to recover, and every request still completes. The counts are
// exact: the sessions the storm picks are a pure function of (seed, client
// id); with the emulator's default history every publication missed while
// away comes back through recovery (tokens = requests x words, nothing
// missed); with a history of two publications the gap is larger than the
// history, and what recovery could not return is counted as missed:
// tokens + missed = what the emulator published.

#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
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
constexpr int kCycles = 2;
constexpr int kWords = 20;
constexpr uint64_t kRequests = kClients * kCycles;

uint64_t Counter(const boost::json::object& stats, const char* name) {
  const auto* counters = stats.if_contains("counters");
  const auto* v = counters == nullptr ? nullptr : counters->as_object().if_contains(name);
  return v == nullptr ? 0 : std::stoull(std::string(v->as_string()));
}

// Samples of a latency metric (0 when it has none).
uint64_t Samples(const boost::json::object& stats, const char* metric) {
  const auto* metrics = stats.if_contains("metrics");
  if (metrics == nullptr) {
    return 0;
  }
  for (const auto& m : metrics->as_array()) {
    if (m.at("metric").as_string() == metric) {
      const auto* count = m.as_object().if_contains("count");
      return count == nullptr ? 0 : std::stoull(std::string(count->as_string()));
    }
  }
  return 0;
}

// The sessions (client ids 0..kClients-1) a storm of `share` and `seed` drops.
uint64_t Dropped(double share, uint64_t seed) {
  v1::ReconnectStorm storm;
  storm.set_share(share);
  storm.set_seed(seed);
  const load::StormSampler sampler(storm);
  uint64_t n = 0;
  for (int client = 0; client < kClients; ++client) {
    n += sampler.Drops(client) ? 1 : 0;
  }
  return n;
}

class ReconnectStormTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing_util::MakeTempDir("reconnect-storm"));
    port_ = testing_util::FreePort();
    emulator_ = Start(port_, "emulator", {});
    small_port_ = testing_util::FreePort();
    small_emulator_ = Start(small_port_, "small", {"--centrifugo_history_size=2"});
  }
  static void TearDownTestSuite() {
    delete emulator_;
    delete small_emulator_;
    emulator_ = small_emulator_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  static testing_util::ChildProcess* Start(int port, const std::string& name,
                                           std::vector<std::string> extra) {
    std::vector<std::string> args = {"--host=127.0.0.1", absl::StrCat("--port=", port),
                                     "--threads=1", "--tls_port=0"};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing_util::ChildProcess::Start(testing_util::BinPath("llmload-emulator"), args,
                                             *dir_ + "/" + name + ".log", *dir_)
        .release();
  }

  // Runs the worker against the emulator on `port` with `storm` (JSON) and
  // returns its statistics. Tokens come 50 ms apart (kWords of them: about
  // a second per answer); the storm strikes at 0.5 s, in the first answer
  // of every session, and keeps the sessions away 0.3 s: about six tokens.
  static boost::json::object RunWorker(const std::string& name, int port,
                                       const std::string& storm) {
    EXPECT_TRUE(testing_util::WaitForTcp(port, absl::Seconds(20)));
    const std::string spec_path = absl::StrCat(*dir_, "/", name, ".json");
    std::ofstream(spec_path) << absl::StrCat(
        R"({"spec": {"name": ")", name, R"(", "target": )",
        testing_util::EmulatorTargetJson("CENTRIFUGO_EMULATOR", port),
        R"(, "load": {"closed": {"clients": )", kClients, R"(, "cyclesPerClient": )", kCycles,
        R"(}}, "emulation": {"lengthWords": )", kWords,
        R"(, "tokenDelay": "0.05s"}, "reconnectStorm": )", storm, "}}");
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
    EXPECT_EQ(std::stoi(out.substr(at + 5)), 0) << "llmload-worker " << name;
    boost::json::error_code ec;
    auto doc = boost::json::parse(out.substr(0, at), ec);
    if (ec || !doc.is_object()) {
      ADD_FAILURE() << out;
      return {};
    }
    return doc.as_object();
  }

  static testing_util::EmulatorStats Stats(int port) {
    std::map<int64_t, testing_util::EmulatorStats> by_pid;
    EXPECT_TRUE(testing_util::CollectEmulatorStats(port, 1, absl::Seconds(10), &by_pid));
    return by_pid.empty() ? testing_util::EmulatorStats{} : by_pid.begin()->second;
  }

  // Every request completed, none failed.
  static void ExpectEveryRequestOk(const boost::json::object& s) {
    EXPECT_EQ(Counter(s, "requests_ok"), kRequests);
    for (const char* failure : {"connect_failed", "http_4xx", "http_5xx", "rate_limited",
                                "protocol_error", "timeout", "disconnected", "unfinished"}) {
      EXPECT_EQ(Counter(s, failure), 0u) << failure;
    }
    EXPECT_EQ(Counter(s, "sessions_opened"), static_cast<uint64_t>(kClients));
    EXPECT_EQ(Samples(s, "e2e"), kRequests);
    EXPECT_EQ(Samples(s, "ttft"), kRequests);
  }

  static std::string* dir_;
  static int port_;
  static int small_port_;
  static testing_util::ChildProcess* emulator_;
  static testing_util::ChildProcess* small_emulator_;
};

std::string* ReconnectStormTest::dir_ = nullptr;
int ReconnectStormTest::port_ = 0;
int ReconnectStormTest::small_port_ = 0;
testing_util::ChildProcess* ReconnectStormTest::emulator_ = nullptr;
testing_util::ChildProcess* ReconnectStormTest::small_emulator_ = nullptr;

TEST_F(ReconnectStormTest, EverySessionRecoversEverythingItMissed) {
  const testing_util::EmulatorStats before = Stats(port_);
  const boost::json::object s =
      RunWorker("all", port_, R"({"share": 1, "at": "0.5s", "reconnectAfter": "0.3s"})");
  SCOPED_TRACE(boost::json::serialize(s));
  ExpectEveryRequestOk(s);
  EXPECT_EQ(Counter(s, "tokens"), kRequests * kWords);
  EXPECT_EQ(Counter(s, "reconnects"), static_cast<uint64_t>(kClients));
  EXPECT_EQ(Samples(s, "time_to_reconnect"), static_cast<uint64_t>(kClients));
  EXPECT_EQ(Counter(s, "publications_missed"), 0u);
  const uint64_t recovered = Counter(s, "publications_recovered");
  EXPECT_GT(recovered, 0u);
  // The emulator's side of the same recoveries.
  const testing_util::EmulatorStats after = Stats(port_);
  EXPECT_EQ(after.recoveries_attempted - before.recoveries_attempted,
            static_cast<uint64_t>(kClients));
  EXPECT_EQ(after.recoveries_succeeded - before.recoveries_succeeded,
            static_cast<uint64_t>(kClients));
  EXPECT_EQ(after.publications_recovered - before.publications_recovered, recovered);
}

TEST_F(ReconnectStormTest, HalfTheSessionsAsTheSeedPicksThem) {
  constexpr uint64_t kSeed = 3;
  const uint64_t dropped = Dropped(0.5, kSeed);
  ASSERT_GT(dropped, 0u);
  ASSERT_LT(dropped, static_cast<uint64_t>(kClients));
  const boost::json::object s = RunWorker(
      "half", port_,
      absl::StrCat(R"({"share": 0.5, "seed": )", kSeed,
                   R"(, "at": "0.5s", "reconnectAfter": "0.3s"})"));
  SCOPED_TRACE(boost::json::serialize(s));
  ExpectEveryRequestOk(s);
  EXPECT_EQ(Counter(s, "tokens"), kRequests * kWords);
  EXPECT_EQ(Counter(s, "reconnects"), dropped);
  EXPECT_EQ(Samples(s, "time_to_reconnect"), dropped);
  EXPECT_EQ(Counter(s, "publications_missed"), 0u);
  EXPECT_GT(Counter(s, "publications_recovered"), 0u);
}

TEST_F(ReconnectStormTest, AHistorySmallerThanTheGapLosesPublications) {
  const testing_util::EmulatorStats before = Stats(small_port_);
  const boost::json::object s =
      RunWorker("small", small_port_, R"({"share": 1, "at": "0.5s", "reconnectAfter": "0.3s"})");
  SCOPED_TRACE(boost::json::serialize(s));
  ExpectEveryRequestOk(s);
  const uint64_t tokens = Counter(s, "tokens");
  const uint64_t missed = Counter(s, "publications_missed");
  EXPECT_GT(missed, 0u);
  EXPECT_EQ(tokens + missed, kRequests * kWords);
  EXPECT_EQ(Counter(s, "reconnects"), static_cast<uint64_t>(kClients));
  // What the history still held came back, though not all of the gap.
  const uint64_t recovered = Counter(s, "publications_recovered");
  EXPECT_GT(recovered, 0u);
  EXPECT_LE(recovered, 2u * kClients);
  const testing_util::EmulatorStats after = Stats(small_port_);
  EXPECT_EQ(after.recoveries_attempted - before.recoveries_attempted,
            static_cast<uint64_t>(kClients));
  EXPECT_EQ(after.recoveries_succeeded - before.recoveries_succeeded, 0u);
  EXPECT_EQ(after.publications_recovered - before.publications_recovered, recovered);
}

}  // namespace
}  // namespace llmload
