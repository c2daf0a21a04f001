// llmload-emulator: llmload's built-in target. Serves every target protocol
// (CENTRIFUGO_EMULATOR, REALM, WS_CHAT, OPENAI_CHAT, ANTHROPIC_MESSAGES,
// GEMINI, HTTP_JSON) on one port, routed by path (server.h), and the same
// over TLS on a second port when given a certificate and key.

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/signal_set.hpp"
#include "lib/common/env.h"
#include "lib/common/log.h"
#include "services/common/flags.h"
#include "services/emulator/config.h"
#include "services/emulator/process_group.h"
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

// The line scripts and tests wait for: the whole target is up.
void LogListening(const llmload::emulator::EmulatorConfig& config, uint16_t port,
                  uint16_t tls_port, const std::string& pids) {
  if (!llmload::LogEnabled(llmload::LogLevel::kInfo)) {
    return;
  }
  llmload::LogLine line(llmload::LogLevel::kInfo, "Emulator listening.");
  line.Kv("address", config.host)
      .Kv("port", port)
      .Kv("tls_port", tls_port)
      .Kv("threads", config.threads)
      .Kv("processes", config.processes);
  if (!pids.empty()) {
    line.Kv("pids", pids);
  }
  line.Kv("protocols",
          "CENTRIFUGO_EMULATOR,REALM,WS_CHAT,OPENAI_CHAT,ANTHROPIC_MESSAGES,GEMINI,HTTP_JSON,"
          "OPENAI_RESPONSES")
      .Kv("length_words", config.length_words)
      .Kv("token_delay_seconds", config.token_delay_seconds)
      .Kv("token_delay_distribution",
          llmload::emulator::DelayDistributionName(config.token_delay_distribution))
      .Kv("seed", config.seed);
}

// --processes N: this process supervises N copies of itself on one port.
int RunSupervisor(const llmload::emulator::EmulatorConfig& config, int argc, char** argv) {
  llmload::emulator::GroupOptions options;
  options.host = config.host;
  options.port = config.port;
  options.tls = llmload::emulator::TlsEnabled(config);
  options.tls_port = config.tls_port;
  options.processes = config.processes;
  const std::vector<std::string> args(argv, argv + argc);
  const int code = llmload::emulator::RunProcessGroup(
      options, args, [&](const llmload::emulator::GroupReady& ready) {
        LogListening(config, ready.port, ready.tls_port, absl::StrJoin(ready.pids, ","));
      });
  LLMLOAD_LOG(kInfo, "Emulator stopped.").Kv("exit_code", code);
  return code;
}

}  // namespace

ABSL_FLAG(std::string, host, llmload::EnvOr("LLMLOAD_EMULATOR_HOST", "127.0.0.1"),
          "Address to listen on (env LLMLOAD_EMULATOR_HOST).");
ABSL_FLAG(uint16_t, port, llmload::EnvOr("LLMLOAD_EMULATOR_PORT", uint16_t{8080}),
          "HTTP/WebSocket port; 0 picks a free one (env LLMLOAD_EMULATOR_PORT).");
ABSL_FLAG(int32_t, threads, llmload::EnvOr("LLMLOAD_EMULATOR_THREADS", DefaultThreads()),
          "Event-loop threads per process (env LLMLOAD_EMULATOR_THREADS; default: hardware "
          "concurrency).");
ABSL_FLAG(int32_t, processes, llmload::EnvOr("LLMLOAD_EMULATOR_PROCESSES", int32_t{1}),
          "Processes serving the same port(s) with SO_REUSEPORT, 1..256, each with its own "
          "--threads loops, --max_connections and file-descriptor limit; above 1 this process "
          "supervises them (env LLMLOAD_EMULATOR_PROCESSES).");
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
ABSL_FLAG(int32_t, centrifugo_history_size,
          llmload::EnvOr("LLMLOAD_EMULATOR_CENTRIFUGO_HISTORY_SIZE", int32_t{1000}),
          "Publications each Centrifugo channel keeps for clients that reconnect with "
          "recover (the llm-emulator namespace's history_size); 0: no history, no recovery "
          "(env LLMLOAD_EMULATOR_CENTRIFUGO_HISTORY_SIZE).");
ABSL_FLAG(double, centrifugo_history_ttl_seconds,
          llmload::EnvOr("LLMLOAD_EMULATOR_CENTRIFUGO_HISTORY_TTL_SECONDS", 300.0),
          "How long a channel nobody listens to keeps its history (history_ttl; env "
          "LLMLOAD_EMULATOR_CENTRIFUGO_HISTORY_TTL_SECONDS).");
ABSL_FLAG(double, http_idle_timeout_seconds,
          llmload::EnvOr("LLMLOAD_EMULATOR_HTTP_IDLE_TIMEOUT_SECONDS", 60.0),
          "Close a keep-alive HTTP connection idle this long (env "
          "LLMLOAD_EMULATOR_HTTP_IDLE_TIMEOUT_SECONDS).");
ABSL_FLAG(int32_t, max_connections,
          llmload::EnvOr("LLMLOAD_EMULATOR_MAX_CONNECTIONS", int32_t{100000}),
          "Open connections (HTTP and WebSocket) beyond which new ones are refused (env "
          "LLMLOAD_EMULATOR_MAX_CONNECTIONS).");
ABSL_FLAG(uint64_t, seed, EnvOrU64("LLMLOAD_EMULATOR_SEED", 42),
          "Seed of every random choice: the words are a function of (seed, prompt, length), "
          "faults and token gaps of (seed, protocol, request number) (env "
          "LLMLOAD_EMULATOR_SEED).");

ABSL_FLAG(double, ttft_seconds, llmload::EnvOr("LLMLOAD_EMULATOR_TTFT_SECONDS", 0.0),
          "Time to first token, 0..60 s, every protocol; header x-llmload-ttft-ms (HTTP) or "
          "options.ttftMs (WS chat) overrides it (env LLMLOAD_EMULATOR_TTFT_SECONDS).");
ABSL_FLAG(std::string, token_delay_distribution,
          llmload::EnvOr("LLMLOAD_EMULATOR_TOKEN_DELAY_DISTRIBUTION", "fixed"),
          "Gap between tokens: fixed (= --token_delay_seconds), uniform or lognormal with mean "
          "--token_delay_seconds and standard deviation --token_delay_spread_seconds (env "
          "LLMLOAD_EMULATOR_TOKEN_DELAY_DISTRIBUTION).");
ABSL_FLAG(double, token_delay_spread_seconds,
          llmload::EnvOr("LLMLOAD_EMULATOR_TOKEN_DELAY_SPREAD_SECONDS", 0.0),
          "Standard deviation of the token gap for uniform and lognormal, 0..60 (env "
          "LLMLOAD_EMULATOR_TOKEN_DELAY_SPREAD_SECONDS).");
ABSL_FLAG(double, fault_http_500, llmload::EnvOr("LLMLOAD_EMULATOR_FAULT_HTTP_500", 0.0),
          "Probability that a request gets the protocol's HTTP 500 / internal error (env "
          "LLMLOAD_EMULATOR_FAULT_HTTP_500). Header x-llmload-fault: 500 forces it.");
ABSL_FLAG(double, fault_http_429, llmload::EnvOr("LLMLOAD_EMULATOR_FAULT_HTTP_429", 0.0),
          "Probability of HTTP 429 with Retry-After / the protocol's rate-limit error (env "
          "LLMLOAD_EMULATOR_FAULT_HTTP_429). x-llmload-fault: 429.");
ABSL_FLAG(double, fault_error_event, llmload::EnvOr("LLMLOAD_EMULATOR_FAULT_ERROR_EVENT", 0.0),
          "Probability that a stream stops halfway with the protocol's in-stream error event "
          "(env LLMLOAD_EMULATOR_FAULT_ERROR_EVENT). x-llmload-fault: error_event.");
ABSL_FLAG(double, fault_disconnect, llmload::EnvOr("LLMLOAD_EMULATOR_FAULT_DISCONNECT", 0.0),
          "Probability that the TCP connection is dropped halfway through a response (env "
          "LLMLOAD_EMULATOR_FAULT_DISCONNECT). x-llmload-fault: disconnect.");
ABSL_FLAG(double, fault_malformed, llmload::EnvOr("LLMLOAD_EMULATOR_FAULT_MALFORMED", 0.0),
          "Probability that a response carries one frame/event that is not valid JSON (env "
          "LLMLOAD_EMULATOR_FAULT_MALFORMED). x-llmload-fault: malformed.");
ABSL_FLAG(int32_t, retry_after_seconds,
          llmload::EnvOr("LLMLOAD_EMULATOR_RETRY_AFTER_SECONDS", int32_t{1}),
          "Retry-After of injected 429s, 0..3600 (env LLMLOAD_EMULATOR_RETRY_AFTER_SECONDS).");
ABSL_FLAG(bool, gemini_sse_crlf, llmload::EnvOr("LLMLOAD_EMULATOR_GEMINI_SSE_CRLF", true),
          "GEMINI: end SSE lines with CRLF like the real service (false: LF) (env "
          "LLMLOAD_EMULATOR_GEMINI_SSE_CRLF).");
ABSL_FLAG(std::string, realm_api_keys, llmload::EnvOr("LLMLOAD_EMULATOR_REALM_API_KEYS", ""),
          "REALM: comma-separated key:tenant pairs; any key turns the auth flow on (env "
          "LLMLOAD_EMULATOR_REALM_API_KEYS).");
ABSL_FLAG(std::string, realm_api_keys_file,
          llmload::EnvOr("LLMLOAD_EMULATOR_REALM_API_KEYS_FILE", ""),
          "REALM: file of key:tenant lines ('#' comments), added to --realm_api_keys (env "
          "LLMLOAD_EMULATOR_REALM_API_KEYS_FILE).");
ABSL_FLAG(double, realm_rate_limit_per_minute,
          llmload::EnvOr("LLMLOAD_EMULATOR_REALM_RATE_LIMIT_PER_MINUTE", 60.0),
          "REALM: per-tenant refill of the call token bucket, calls/minute (auth on only) (env "
          "LLMLOAD_EMULATOR_REALM_RATE_LIMIT_PER_MINUTE).");
ABSL_FLAG(int32_t, realm_rate_limit_burst,
          llmload::EnvOr("LLMLOAD_EMULATOR_REALM_RATE_LIMIT_BURST", int32_t{100}),
          "REALM: per-tenant bucket size (env LLMLOAD_EMULATOR_REALM_RATE_LIMIT_BURST).");
ABSL_FLAG(double, realm_auth_timeout_seconds,
          llmload::EnvOr("LLMLOAD_EMULATOR_REALM_AUTH_TIMEOUT_SECONDS", 10.0),
          "REALM: time allowed for the auth message (env "
          "LLMLOAD_EMULATOR_REALM_AUTH_TIMEOUT_SECONDS).");
ABSL_FLAG(double, ws_chat_heartbeat_seconds,
          llmload::EnvOr("LLMLOAD_EMULATOR_WS_CHAT_HEARTBEAT_SECONDS", 30.0),
          "WS_CHAT: server ping interval; a connection silent for a whole interval is then "
          "closed (env LLMLOAD_EMULATOR_WS_CHAT_HEARTBEAT_SECONDS).");
ABSL_FLAG(uint16_t, tls_port, llmload::EnvOr("LLMLOAD_EMULATOR_TLS_PORT", uint16_t{8443}),
          "https/wss port, used when --tls_cert_file and --tls_key_file are given; 0 picks a "
          "free one (env LLMLOAD_EMULATOR_TLS_PORT).");
ABSL_FLAG(std::string, tls_cert_file, llmload::EnvOr("LLMLOAD_EMULATOR_TLS_CERT_FILE", ""),
          "PEM certificate chain for the TLS port (env LLMLOAD_EMULATOR_TLS_CERT_FILE).");
ABSL_FLAG(std::string, tls_key_file, llmload::EnvOr("LLMLOAD_EMULATOR_TLS_KEY_FILE", ""),
          "PEM private key for the TLS port (env LLMLOAD_EMULATOR_TLS_KEY_FILE).");

int main(int argc, char** argv) {
  llmload::InitProgram(argc, argv, "emulator",
                       "llmload-emulator [flags]\n\n"
                       "llmload's built-in target: every protocol llmload drives, on one port "
                       "routed by path:\n"
                       "  CENTRIFUGO_EMULATOR  /api/sessions/create, /api/run, /health + WS "
                       "/connection/websocket\n"
                       "  REALM                WS / and /realm\n"
                       "  WS_CHAT              WS /api/ws and /ws\n"
                       "  OPENAI_CHAT          POST /v1/chat/completions\n"
                       "  OPENAI_RESPONSES     POST /v1/responses\n"
                       "  ANTHROPIC_MESSAGES   POST /v1/messages\n"
                       "  GEMINI               POST /v1beta/models/{model}:streamGenerateContent"
                       "?alt=sse, :generateContent\n"
                       "  HTTP_JSON            POST /v1/generate (also /v1/json, /api/generate)\n"
                       "Per-request extension headers on every HTTP protocol: x-llmload-fault "
                       "(500|429|error_event|disconnect|malformed),\nx-llmload-token-delay-ms, "
                       "x-llmload-length-words, x-llmload-ttft-ms.\n"
                       "GET /stats: this process's connections, requests per protocol and relayed "
                       "runs (JSON).\n"
                       "--processes N: N processes share the port(s) (SO_REUSEPORT) under this "
                       "one.");
  llmload::emulator::EmulatorConfig config;
  config.host = absl::GetFlag(FLAGS_host);
  config.port = absl::GetFlag(FLAGS_port);
  config.threads = absl::GetFlag(FLAGS_threads);
  config.processes = absl::GetFlag(FLAGS_processes);
  config.length_words = absl::GetFlag(FLAGS_length_words);
  config.token_delay_seconds = absl::GetFlag(FLAGS_token_delay_seconds);
  config.jwt_secret = absl::GetFlag(FLAGS_jwt_secret);
  config.token_ttl_seconds = absl::GetFlag(FLAGS_token_ttl_seconds);
  config.ping_interval_seconds = absl::GetFlag(FLAGS_ping_interval_seconds);
  config.pong_timeout_seconds = absl::GetFlag(FLAGS_pong_timeout_seconds);
  config.stale_timeout_seconds = absl::GetFlag(FLAGS_stale_timeout_seconds);
  config.centrifugo_history_size = absl::GetFlag(FLAGS_centrifugo_history_size);
  config.centrifugo_history_ttl_seconds = absl::GetFlag(FLAGS_centrifugo_history_ttl_seconds);
  config.http_idle_timeout_seconds = absl::GetFlag(FLAGS_http_idle_timeout_seconds);
  config.max_connections = absl::GetFlag(FLAGS_max_connections);
  config.seed = absl::GetFlag(FLAGS_seed);
  config.ttft_seconds = absl::GetFlag(FLAGS_ttft_seconds);
  const std::string distribution = absl::GetFlag(FLAGS_token_delay_distribution);
  if (auto d = llmload::emulator::ParseDelayDistribution(distribution); d.has_value()) {
    config.token_delay_distribution = *d;
  } else {
    std::fprintf(stderr,
                 "llmload-emulator: token_delay_distribution: must be fixed, uniform or "
                 "lognormal, got '%s'\n",
                 distribution.c_str());
    return 2;
  }
  config.token_delay_spread_seconds = absl::GetFlag(FLAGS_token_delay_spread_seconds);
  config.faults.http_500 = absl::GetFlag(FLAGS_fault_http_500);
  config.faults.http_429 = absl::GetFlag(FLAGS_fault_http_429);
  config.faults.error_event = absl::GetFlag(FLAGS_fault_error_event);
  config.faults.disconnect = absl::GetFlag(FLAGS_fault_disconnect);
  config.faults.malformed = absl::GetFlag(FLAGS_fault_malformed);
  config.retry_after_seconds = absl::GetFlag(FLAGS_retry_after_seconds);
  config.gemini_sse_crlf = absl::GetFlag(FLAGS_gemini_sse_crlf);
  config.realm_api_keys = absl::GetFlag(FLAGS_realm_api_keys);
  config.realm_api_keys_file = absl::GetFlag(FLAGS_realm_api_keys_file);
  config.realm_rate_limit_per_minute = absl::GetFlag(FLAGS_realm_rate_limit_per_minute);
  config.realm_rate_limit_burst = absl::GetFlag(FLAGS_realm_rate_limit_burst);
  config.realm_auth_timeout_seconds = absl::GetFlag(FLAGS_realm_auth_timeout_seconds);
  config.ws_chat_heartbeat_seconds = absl::GetFlag(FLAGS_ws_chat_heartbeat_seconds);
  config.tls_port = absl::GetFlag(FLAGS_tls_port);
  config.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  config.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);

  // One process of a group started by a supervisor (process_group.h)?
  std::optional<llmload::emulator::ChildRole> role;
  if (const char* env = std::getenv(llmload::emulator::kProcessRoleEnv); env != nullptr) {
    auto parsed = llmload::emulator::ParseChildRole(env);
    if (!parsed.ok()) {
      std::fprintf(stderr, "llmload-emulator: %s\n", parsed.status().ToString().c_str());
      return 2;
    }
    role = *std::move(parsed);
    llmload::SetLogComponent(absl::StrCat("emulator[", role->member.index, "]"));
    config.port = role->port;
    config.tls_port = role->tls_port;
  }
  if (absl::Status s = llmload::emulator::Validate(config); !s.ok()) {
    std::fprintf(stderr, "llmload-emulator: %s\n", s.ToString().c_str());
    return 2;
  }
  if (!role.has_value() && config.processes > 1) {
    if (absl::Status s = llmload::emulator::EmulatorServer::CheckStartup(config); !s.ok()) {
      std::fprintf(stderr, "llmload-emulator: %s\n", s.ToString().c_str());
      return 2;
    }
    return RunSupervisor(config, argc, argv);
  }

  // Signals are waited for on the main thread, which is no event loop. The
  // handler is in place before the server listens: a SIGTERM that comes as
  // soon as the port answers is still a clean stop.
  boost::asio::io_context signal_context;
  boost::asio::signal_set signals(signal_context, SIGINT, SIGTERM);
  int received = 0;
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (!ec) {
      received = signo;
    }
  });
  RaiseFileLimit();
  auto server = role.has_value()
                    ? llmload::emulator::EmulatorServer::Create(config, std::move(role->member))
                    : llmload::emulator::EmulatorServer::Create(config);
  if (!server.ok()) {
    std::fprintf(stderr, "llmload-emulator: %s\n", server.status().ToString().c_str());
    return 2;
  }
  (*server)->Start();
  if (role.has_value()) {
    LLMLOAD_LOG(kInfo, "Emulator process listening.")
        .Kv("process", role->member.index)
        .Kv("pid", static_cast<int64_t>(::getpid()))
        .Kv("port", (*server)->port())
        .Kv("tls_port", (*server)->tls_port())
        .Kv("threads", config.threads);
    llmload::emulator::SignalReady(role->ready_fd);
  } else {
    LogListening(config, (*server)->port(), (*server)->tls_port(), "");
  }
  signal_context.run();
  LLMLOAD_LOG(kInfo, "Emulator stopping.").Kv("signal", received);
  (*server)->Shutdown(absl::Seconds(2));
  server->reset();
  LLMLOAD_LOG(kInfo, "Emulator stopped.");
  return 0;
}
