// Every target protocol end to end: the real emulator, collector,
// orchestrator and a worker, with exact request and token counts, and the
// emulator's forced faults counted in the right class.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/common/grpc_util.h"
#include "tests/testing/process.h"
#include "tests/testing/mono_clock.h"

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::ChildProcess;
using testing_util::FreePort;

class ProtocolsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing_util::MakeTempDir("protocols"));
    emulator_port_ = FreePort();
    const int collector = FreePort();
    const int metrics = FreePort();
    const int orchestrator = FreePort();
    procs_ = new std::vector<std::unique_ptr<ChildProcess>>();
    procs_->push_back(ChildProcess::Start(
        BinPath("llmload-emulator"),
        {"--host=127.0.0.1", absl::StrCat("--port=", emulator_port_), "--threads=1",
         "--retry_after_seconds=0", "--tls_port=0"},
        *dir_ + "/emulator.log", *dir_));
    procs_->push_back(ChildProcess::Start(
        BinPath("llmload-collector"),
        {absl::StrCat("--grpc_address=127.0.0.1:", collector),
         absl::StrCat("--metrics_address=127.0.0.1:", metrics)},
        *dir_ + "/collector.log", *dir_));
    procs_->push_back(ChildProcess::Start(
        BinPath("llmload-orchestrator"),
        {absl::StrCat("--grpc_address=127.0.0.1:", orchestrator),
         absl::StrCat("--collector=127.0.0.1:", collector)},
        *dir_ + "/orchestrator.log", *dir_));
    procs_->push_back(ChildProcess::Start(
        BinPath("llmload-worker"),
        {absl::StrCat("--orchestrator=127.0.0.1:", orchestrator),
         absl::StrCat("--collector=127.0.0.1:", collector), "--worker_id=proto-w", "--threads=1",
         "--batch_interval_ms=200", "--metrics_address="},
        *dir_ + "/worker.log", *dir_));
    ASSERT_TRUE(testing_util::WaitForTcp(emulator_port_, absl::Seconds(20)));
    ASSERT_TRUE(testing_util::WaitForTcp(orchestrator, absl::Seconds(20)));
    stub_ = v1::Orchestrator::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", orchestrator)))
                .release();
    ASSERT_TRUE(testing_util::WaitUntil(
        [] {
          grpc::ClientContext ctx;
          v1::ListWorkersResponse resp;
          return stub_->ListWorkers(&ctx, {}, &resp).ok() && resp.workers_size() == 1;
        },
        absl::Seconds(20), "the worker to attach", absl::Milliseconds(50)));
  }

  static void TearDownTestSuite() {
    for (auto it = procs_->rbegin(); it != procs_->rend(); ++it) {
      (*it)->Stop();
    }
    delete procs_;
    delete stub_;
    delete dir_;
  }

  void TearDown() override {
    // The services outlive each test: one that died during this test fails
    // this test (reaping it reports it).
    (void)testing_util::CheckChildren();
    if (HasFailure()) {
      for (auto& p : *procs_) {
        std::string log = p->ReadLog();
        std::cerr << "---- " << p->log_path() << " ----\n"
                  << (log.size() > 3000 ? log.substr(log.size() - 3000) : log) << "\n";
      }
    }
  }

  // Runs 4 clients x 3 requests x 10 words and returns the finished run.
  // `tweak` may change the spec before it is sent.
  static v1::Run RunProtocol(v1::Protocol protocol, const std::string& url,
                             const std::map<std::string, std::string>& headers = {},
                             const std::function<void(v1::RunSpec*)>& tweak = nullptr) {
    v1::StartRunRequest req;
    v1::RunSpec* spec = req.mutable_spec();
    spec->set_name(absl::StrCat("proto-", v1::Protocol_Name(protocol)));
    spec->mutable_target()->set_protocol(protocol);
    spec->mutable_target()->set_url(url);
    spec->mutable_target()->set_model("emu-model");
    spec->mutable_target()->set_prompt("Tell me about load testing");
    spec->mutable_target()->mutable_reconnect_backoff()->set_nanos(50 * 1000 * 1000);
    for (const auto& [k, v] : headers) {
      (*spec->mutable_target()->mutable_headers())[k] = v;
    }
    auto* closed = spec->mutable_load()->mutable_closed();
    closed->set_clients(4);
    closed->set_cycles_per_client(3);
    closed->set_max_concurrent(4);
    spec->mutable_emulation()->set_length_words(10);
    spec->mutable_emulation()->mutable_token_delay()->set_nanos(2 * 1000 * 1000);
    if (tweak) {
      tweak(spec);
    }
    v1::Run run;
    {
      grpc::ClientContext ctx;
      grpc::Status st = stub_->StartRun(&ctx, req, &run);
      EXPECT_TRUE(st.ok()) << st.error_message();
      if (!st.ok()) {
        return run;
      }
    }
    // Stops early, naming it, when a service crashed.
    EXPECT_TRUE(testing_util::WaitUntil(
        [&] {
          grpc::ClientContext ctx;
          v1::GetRunRequest get;
          get.set_id(run.id());
          return stub_->GetRun(&ctx, get, &run).ok() &&
                 (run.state() == v1::COMPLETED || run.state() == v1::FAILED ||
                  run.state() == v1::CANCELLED);
        },
        absl::Seconds(60), "the end of run " + run.id(), absl::Milliseconds(100)));
    return run;
  }

  static uint64_t C(const v1::Run& run, v1::Counter c) {
    auto it = run.stats().counters().find(std::string(metrics::CounterName(c)));
    return it == run.stats().counters().end() ? 0 : it->second;
  }

  static uint64_t Count(const v1::Run& run, v1::Metric m) {
    for (const auto& s : run.stats().metrics()) {
      if (s.metric() == metrics::MetricName(m)) {
        return s.count();
      }
    }
    return 0;
  }

  static uint64_t Failures(const v1::Run& run) {
    uint64_t n = 0;
    for (v1::Counter c : metrics::AllCounters()) {
      if (metrics::IsRequestFailureCounter(c)) {
        n += C(run, c);
      }
    }
    return n;
  }

  static std::string Http(const std::string& path = "") {
    return absl::StrCat("http://127.0.0.1:", emulator_port_, path);
  }
  static std::string Ws(const std::string& path) {
    return absl::StrCat("ws://127.0.0.1:", emulator_port_, path);
  }

  static std::string* dir_;
  static int emulator_port_;
  static std::vector<std::unique_ptr<ChildProcess>>* procs_;
  static v1::Orchestrator::Stub* stub_;
};

std::string* ProtocolsTest::dir_ = nullptr;
int ProtocolsTest::emulator_port_ = 0;
std::vector<std::unique_ptr<ChildProcess>>* ProtocolsTest::procs_ = nullptr;
v1::Orchestrator::Stub* ProtocolsTest::stub_ = nullptr;

TEST_F(ProtocolsTest, EveryStreamingProtocolDeliversEveryToken) {
  const std::vector<std::pair<v1::Protocol, std::string>> cases = {
      {v1::CENTRIFUGO_EMULATOR, Http()}, {v1::OPENAI_CHAT, Http()},
      {v1::ANTHROPIC_MESSAGES, Http()},  {v1::GEMINI, Http()},
      {v1::WS_CHAT, Ws("/api/ws")},      {v1::REALM, Ws("/")},
      {v1::OPENAI_RESPONSES, Http()}};
  for (const auto& [protocol, url] : cases) {
    SCOPED_TRACE(v1::Protocol_Name(protocol));
    const v1::Run run = RunProtocol(protocol, url);
    ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
    EXPECT_EQ(C(run, v1::REQUESTS_OK), 12u);
    EXPECT_EQ(C(run, v1::TOKENS), 120u);
    EXPECT_EQ(Failures(run), 0u);
    EXPECT_EQ(C(run, v1::SESSIONS_OPENED), 4u);
    EXPECT_EQ(Count(run, v1::TTFT), 12u);
    EXPECT_EQ(Count(run, v1::E2E), 12u);
    EXPECT_EQ(Count(run, v1::ITL), 12u * 9u);
    if (protocol != v1::CENTRIFUGO_EMULATOR) {
      EXPECT_EQ(C(run, v1::CHUNKS), 120u);
      EXPECT_EQ(Count(run, v1::CHUNK_GAP), 12u * 9u);
    }
    if (protocol != v1::CENTRIFUGO_EMULATOR && protocol != v1::REALM) {
      // The emulator reports usage as these protocols do: 5 prompt words each.
      EXPECT_EQ(C(run, v1::INPUT_TOKENS), 12u * 5u);
      EXPECT_EQ(C(run, v1::INPUT_TOKENS_ESTIMATED), 0u);
    } else {
      // The LLM emulator API and Realm's streamed generate report no prompt
      // usage: ceil(26 bytes / 4) each, estimated.
      EXPECT_EQ(C(run, v1::INPUT_TOKENS), 12u * 7u);
      EXPECT_EQ(C(run, v1::INPUT_TOKENS_ESTIMATED), 12u * 7u);
    }
  }
}

TEST_F(ProtocolsTest, HttpJsonIsRequestResponse) {
  const v1::Run run = RunProtocol(v1::HTTP_JSON, Http("/v1/generate"));
  ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
  EXPECT_EQ(C(run, v1::REQUESTS_OK), 12u);
  EXPECT_EQ(C(run, v1::TOKENS), 120u);
  EXPECT_EQ(C(run, v1::INPUT_TOKENS), 12u * 5u);  // usage.prompt_tokens
  EXPECT_EQ(C(run, v1::INPUT_TOKENS_ESTIMATED), 0u);
  EXPECT_EQ(Count(run, v1::E2E), 12u);
  EXPECT_EQ(Count(run, v1::TTFT), 0u);
}

TEST_F(ProtocolsTest, ForcedFaultsLandInTheirClass) {
  struct Case {
    v1::Protocol protocol;
    std::string fault;
    v1::Counter counter;
  };
  const std::vector<Case> cases = {
      {v1::OPENAI_CHAT, "429", v1::RATE_LIMITED},
      {v1::ANTHROPIC_MESSAGES, "500", v1::HTTP_5XX},
      {v1::GEMINI, "error_event", v1::HTTP_5XX},
      {v1::OPENAI_CHAT, "malformed", v1::PROTOCOL_ERROR},
      {v1::ANTHROPIC_MESSAGES, "disconnect", v1::DISCONNECTED},
      {v1::OPENAI_RESPONSES, "429", v1::RATE_LIMITED},
      {v1::OPENAI_RESPONSES, "error_event", v1::HTTP_5XX},
      {v1::OPENAI_RESPONSES, "malformed", v1::PROTOCOL_ERROR},
      // WebSocket targets take the fault from the upgrade request's headers.
      // (WS chat has no rate-limit error: its PROCESSING_ERROR is a 5xx.)
      {v1::WS_CHAT, "500", v1::HTTP_5XX},
      {v1::WS_CHAT, "disconnect", v1::DISCONNECTED},
      {v1::WS_CHAT, "malformed", v1::PROTOCOL_ERROR},
      {v1::REALM, "429", v1::RATE_LIMITED},
      {v1::REALM, "error_event", v1::HTTP_5XX},
      {v1::REALM, "disconnect", v1::DISCONNECTED},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(v1::Protocol_Name(c.protocol), " ", c.fault));
    const std::string url = c.protocol == v1::WS_CHAT ? Ws("/api/ws")
                            : c.protocol == v1::REALM ? Ws("/")
                                                      : Http();
    const v1::Run run = RunProtocol(c.protocol, url, {{"x-llmload-fault", c.fault}});
    ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
    EXPECT_EQ(C(run, c.counter), 12u);
    EXPECT_EQ(Failures(run), 12u);
    EXPECT_EQ(C(run, v1::REQUESTS_OK), 0u);
    EXPECT_EQ(C(run, v1::CYCLES), 12u);
    if (c.counter == v1::DISCONNECTED || (c.counter == v1::PROTOCOL_ERROR &&
                                          c.protocol == v1::WS_CHAT)) {
      EXPECT_EQ(C(run, v1::RECONNECTS), 12u);  // every lost connection re-established
    }
  }
}

// Seeded random faults: a fresh emulator with the same seed gives the same
// faults, so the counts per class are exact and repeatable, and every
// request is accounted for - on every streaming protocol.
TEST_F(ProtocolsTest, SeededFaultsGiveTheSameCountsEveryTime) {
  const std::vector<std::pair<v1::Protocol, std::string>> cases = {
      {v1::OPENAI_CHAT, ""},         {v1::ANTHROPIC_MESSAGES, ""}, {v1::GEMINI, ""},
      {v1::CENTRIFUGO_EMULATOR, ""}, {v1::WS_CHAT, "/api/ws"},     {v1::REALM, "/"},
      {v1::OPENAI_RESPONSES, ""}};
  for (const auto& [protocol, path] : cases) {
    SCOPED_TRACE(v1::Protocol_Name(protocol));
    std::vector<std::map<std::string, uint64_t>> seen;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const int port = FreePort();
      auto emulator = ChildProcess::Start(
          BinPath("llmload-emulator"),
          {"--host=127.0.0.1", absl::StrCat("--port=", port), "--threads=1", "--tls_port=0",
           "--retry_after_seconds=0", "--seed=7", "--fault_http_500=0.2",
           "--fault_http_429=0.15", "--fault_disconnect=0.1"},
          *dir_ + absl::StrCat("/seeded-", v1::Protocol_Name(protocol), "-", attempt, ".log"),
          *dir_);
      ASSERT_TRUE(testing_util::WaitForTcp(port, absl::Seconds(20)));
      const std::string url =
          absl::StrCat(path.empty() ? "http" : "ws", "://127.0.0.1:", port, path);
      const v1::Run run = RunProtocol(protocol, url);
      emulator->Stop();
      ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
      EXPECT_EQ(C(run, v1::REQUESTS_OK) + Failures(run), 12u);
      EXPECT_EQ(C(run, v1::CYCLES), 12u);
      EXPECT_GT(Failures(run), 0u);
      EXPECT_EQ(C(run, v1::TOKENS), 10u * C(run, v1::REQUESTS_OK));
      EXPECT_EQ(C(run, v1::RECONNECTS), C(run, v1::DISCONNECTED));
      std::map<std::string, uint64_t> counts;
      for (v1::Counter c : {v1::REQUESTS_OK, v1::HTTP_5XX, v1::RATE_LIMITED, v1::DISCONNECTED}) {
        counts[std::string(metrics::CounterName(c))] = C(run, c);
      }
      seen.push_back(counts);
    }
    EXPECT_EQ(seen[0], seen[1]);
  }
}

// The time-to-first-token and the idle gap between tokens are each enforced
// over WebSocket and HTTP: a target slower than the limit times out every
// request, and the session reconnects and goes on.
TEST_F(ProtocolsTest, IdleAndTtftTimeoutsFailRequestsAsTimeouts) {
  // A second emulator whose first token comes 300 ms after the request.
  const int slow_port = FreePort();
  auto slow = ChildProcess::Start(
      BinPath("llmload-emulator"),
      {"--host=127.0.0.1", absl::StrCat("--port=", slow_port), "--threads=1", "--tls_port=0",
       "--ttft_seconds=0.3"},
      *dir_ + "/slow-emulator.log", *dir_);
  ASSERT_TRUE(testing_util::WaitForTcp(slow_port, absl::Seconds(20)));
  struct Case {
    v1::Protocol protocol;
    std::string url;
    bool idle;  // else ttft
  };
  const std::string slow_ws = absl::StrCat("ws://127.0.0.1:", slow_port);
  const std::vector<Case> cases = {{v1::WS_CHAT, Ws("/api/ws"), true},
                                   {v1::REALM, Ws("/"), true},
                                   {v1::OPENAI_CHAT, Http(), true},
                                   {v1::WS_CHAT, slow_ws + "/api/ws", false},
                                   {v1::REALM, slow_ws + "/", false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(v1::Protocol_Name(c.protocol), c.idle ? " idle" : " ttft"));
    const absl::Time start = testing_util::MonoNow();
    const v1::Run run = RunProtocol(c.protocol, c.url, {}, [&](v1::RunSpec* spec) {
      spec->mutable_load()->mutable_closed()->set_cycles_per_client(2);
      auto* limit = c.idle ? spec->mutable_target()->mutable_idle_timeout()
                           : spec->mutable_target()->mutable_ttft_timeout();
      limit->set_nanos(100 * 1000 * 1000);
      if (c.idle) {
        // Tokens 300 ms apart.
        spec->mutable_emulation()->mutable_token_delay()->set_nanos(300 * 1000 * 1000);
      }
    });
    ASSERT_EQ(run.state(), v1::COMPLETED) << run.error();
    EXPECT_EQ(C(run, v1::TIMEOUT), 8u);
    EXPECT_EQ(C(run, v1::REQUESTS_OK), 0u);
    EXPECT_EQ(C(run, v1::RECONNECTS), 8u);
    EXPECT_EQ(Count(run, v1::TTFT), c.idle ? 8u : 0u);
    // Far sooner than the 3 s a 10-word response takes at 300 ms a word.
    EXPECT_LT(testing_util::MonoNow() - start, absl::Seconds(3));
  }
  slow->Stop();
}

}  // namespace
}  // namespace llmload
