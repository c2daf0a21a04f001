// llmload-emulator: llmload's built-in target. Serves the llm-emulator REST
// API and Centrifugo WebSocket (protocol CENTRIFUGO_EMULATOR) on one port.

#include <sys/resource.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/signal_set.hpp"
#include "lib/common/env.h"
#include "lib/common/log.h"
#include "services/common/flags.h"
#include "services/emulator/config.h"
#include "services/emulator/server.h"

namespace {

int32_t DefaultThreads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int32_t>(n);
}

uint64_t EnvOrU64(const char* name, uint64_t fallback) {
  uint64_t out = 0;
  const std::string v = llmload::EnvOr(name, "");
  return (!v.empty() && absl::SimpleAtoi(v, &out)) ? out : fallback;
}

// Thousands of sockets need more than the usual soft limit of 1024 fds.
void RaiseFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

}  // namespace

ABSL_FLAG(std::string, host, llmload::EnvOr("LLMLOAD_EMULATOR_HOST", "127.0.0.1"),
          "Address to listen on (env LLMLOAD_EMULATOR_HOST).");
ABSL_FLAG(uint16_t, port, llmload::EnvOr("LLMLOAD_EMULATOR_PORT", uint16_t{8080}),
          "HTTP/WebSocket port; 0 picks a free one (env LLMLOAD_EMULATOR_PORT).");
ABSL_FLAG(int32_t, threads, llmload::EnvOr("LLMLOAD_EMULATOR_THREADS", DefaultThreads()),
          "Event-loop threads (env LLMLOAD_EMULATOR_THREADS; default: hardware concurrency).");
ABSL_FLAG(int32_t, length_words, llmload::EnvOr("RESPONSE_LENGTH_WORDS", int32_t{100}),
          "Words per /api/run response, 1..100000; a run's \"length_words\" overrides it "
          "(env RESPONSE_LENGTH_WORDS).");
ABSL_FLAG(double, token_delay_seconds, llmload::EnvOr("TOKEN_DELAY_SECONDS", 0.01),
          "Seconds between published tokens, 0..60; a run's \"token_delay_seconds\" overrides "
          "it (env TOKEN_DELAY_SECONDS).");
ABSL_FLAG(std::string, jwt_secret, llmload::EnvOr("JWT_SECRET", "super-secret-jwt-key"),
          "HMAC secret of the HS256 connection tokens (env JWT_SECRET).");
ABSL_FLAG(int64_t, token_ttl_seconds,
          static_cast<int64_t>(llmload::EnvOr("LLMLOAD_EMULATOR_TOKEN_TTL_SECONDS", int32_t{3600})),
          "Lifetime of the tokens /api/sessions/create issues (env "
          "LLMLOAD_EMULATOR_TOKEN_TTL_SECONDS).");
ABSL_FLAG(double, ping_interval_seconds,
          llmload::EnvOr("LLMLOAD_EMULATOR_PING_INTERVAL_SECONDS", 25.0),
          "Centrifugo server ping interval (env LLMLOAD_EMULATOR_PING_INTERVAL_SECONDS).");
ABSL_FLAG(double, pong_timeout_seconds,
          llmload::EnvOr("LLMLOAD_EMULATOR_PONG_TIMEOUT_SECONDS", 10.0),
          "Close with 3012 when a ping is not answered within this time; below the ping "
          "interval (env LLMLOAD_EMULATOR_PONG_TIMEOUT_SECONDS).");
ABSL_FLAG(double, stale_timeout_seconds,
          llmload::EnvOr("LLMLOAD_EMULATOR_STALE_TIMEOUT_SECONDS", 15.0),
          "Close with 3502 a WebSocket that sends no connect within this time (env "
          "LLMLOAD_EMULATOR_STALE_TIMEOUT_SECONDS).");
ABSL_FLAG(double, http_idle_timeout_seconds,
          llmload::EnvOr("LLMLOAD_EMULATOR_HTTP_IDLE_TIMEOUT_SECONDS", 60.0),
          "Close a keep-alive HTTP connection idle this long (env "
          "LLMLOAD_EMULATOR_HTTP_IDLE_TIMEOUT_SECONDS).");
ABSL_FLAG(int32_t, max_connections,
          llmload::EnvOr("LLMLOAD_EMULATOR_MAX_CONNECTIONS", int32_t{100000}),
          "Open connections (HTTP and WebSocket) beyond which new ones are refused (env "
          "LLMLOAD_EMULATOR_MAX_CONNECTIONS).");
ABSL_FLAG(uint64_t, seed, EnvOrU64("LLMLOAD_EMULATOR_SEED", 42),
          "Seed of the word choice: a response is a pure function of (seed, question, length) "
          "(env LLMLOAD_EMULATOR_SEED).");

int main(int argc, char** argv) {
  llmload::InitProgram(argc, argv, "emulator",
                       "llmload-emulator [flags]\n\n"
                       "llmload's built-in target: the llm-emulator REST API and Centrifugo "
                       "WebSocket\n(protocol CENTRIFUGO_EMULATOR) on one HTTP port.");
  llmload::emulator::EmulatorConfig config;
  config.host = absl::GetFlag(FLAGS_host);
  config.port = absl::GetFlag(FLAGS_port);
  config.threads = absl::GetFlag(FLAGS_threads);
  config.length_words = absl::GetFlag(FLAGS_length_words);
  config.token_delay_seconds = absl::GetFlag(FLAGS_token_delay_seconds);
  config.jwt_secret = absl::GetFlag(FLAGS_jwt_secret);
  config.token_ttl_seconds = absl::GetFlag(FLAGS_token_ttl_seconds);
  config.ping_interval_seconds = absl::GetFlag(FLAGS_ping_interval_seconds);
  config.pong_timeout_seconds = absl::GetFlag(FLAGS_pong_timeout_seconds);
  config.stale_timeout_seconds = absl::GetFlag(FLAGS_stale_timeout_seconds);
  config.http_idle_timeout_seconds = absl::GetFlag(FLAGS_http_idle_timeout_seconds);
  config.max_connections = absl::GetFlag(FLAGS_max_connections);
  config.seed = absl::GetFlag(FLAGS_seed);

  RaiseFileLimit();
  auto server = llmload::emulator::EmulatorServer::Create(config);
  if (!server.ok()) {
    std::fprintf(stderr, "llmload-emulator: %s\n", server.status().ToString().c_str());
    return 2;
  }
  // Signals are waited for on the main thread, which is no event loop.
  boost::asio::io_context signal_context;
  boost::asio::signal_set signals(signal_context, SIGINT, SIGTERM);
  int received = 0;
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (!ec) {
      received = signo;
    }
  });
  (*server)->Start();
  LLMLOAD_LOG(kInfo, "Emulator listening.")
      .Kv("address", config.host)
      .Kv("port", (*server)->port())
      .Kv("threads", config.threads)
      .Kv("protocols", "CENTRIFUGO_EMULATOR")
      .Kv("length_words", config.length_words)
      .Kv("token_delay_seconds", config.token_delay_seconds);
  signal_context.run();
  LLMLOAD_LOG(kInfo, "Emulator stopping.").Kv("signal", received);
  (*server)->Shutdown(absl::Seconds(2));
  server->reset();
  LLMLOAD_LOG(kInfo, "Emulator stopped.");
  return 0;
}
