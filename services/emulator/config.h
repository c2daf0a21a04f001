// File: config.h
//
// The emulator's whole configuration as a plain struct. main() fills it from
// flags (whose defaults come from environment variables) and calls Validate;
// nothing below main reads flags.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "services/emulator/behaviour.h"

namespace llmload::emulator {

// Bounds of the per-run overrides and of the matching flags.
inline constexpr int32_t kMinLengthWords = 1;
inline constexpr int32_t kMaxLengthWords = 100000;
inline constexpr double kMaxTokenDelaySeconds = 60.0;
inline constexpr int32_t kMaxProcesses = 256;

struct EmulatorConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 = any free port (the bound one is logged)
  int32_t threads = 1;   // event-loop threads, one io_context each (per process)
  // Processes serving the port(s) together (SO_REUSEPORT), each with its own
  // `threads` loops and `max_connections`; above 1 a supervisor starts them
  // (process_group.h).
  int32_t processes = 1;

  // Response shape of /api/run (llm-emulator RESPONSE_LENGTH_WORDS and
  // TOKEN_DELAY_SECONDS); a run may override both.
  int32_t length_words = 100;
  double token_delay_seconds = 0.01;
  uint64_t seed = 42;  // word choice is a pure function of (seed, question, length)

  // Timing and faults of every protocol (behaviour.h).
  double ttft_seconds = 0;
  DelayDistribution token_delay_distribution = DelayDistribution::kFixed;
  double token_delay_spread_seconds = 0;  // standard deviation
  FaultRates faults;
  int32_t retry_after_seconds = 1;

  // GEMINI: CRLF line ends in SSE (as the real service), else LF.
  bool gemini_sse_crlf = true;

  // REALM: API keys ("key:tenant" pairs) turn the auth flow on; rate limit
  // per tenant (token bucket), applied only with auth on, as in Realm.
  std::string realm_api_keys;       // "sk_1:tenant1,sk_2:tenant2"
  std::string realm_api_keys_file;  // one "key:tenant" (or "key tenant") per line
  double realm_rate_limit_per_minute = 60;
  int32_t realm_rate_limit_burst = 100;
  double realm_auth_timeout_seconds = 10;

  // WS_CHAT: server heartbeat; a connection silent for two intervals is closed.
  double ws_chat_heartbeat_seconds = 30;

  // TLS: https/wss on a second port when both files are given.
  uint16_t tls_port = 0;  // 0 = any free port (when TLS is on)
  std::string tls_cert_file;
  std::string tls_key_file;

  std::string jwt_secret = "super-secret-jwt-key";
  int64_t token_ttl_seconds = 3600;

  // Centrifugo connection liveness.
  double ping_interval_seconds = 25.0;
  double pong_timeout_seconds = 10.0;
  double stale_timeout_seconds = 15.0;  // WebSocket open without a connect command
  // Centrifugo channel history for recovery (the llm-emulator namespace's
  // history_size 1000, history_ttl 300s); size 0 turns it off.
  int32_t centrifugo_history_size = 1000;
  double centrifugo_history_ttl_seconds = 300.0;

  // Resource bounds.
  int32_t max_connections = 100000;
  double http_idle_timeout_seconds = 60.0;  // keep-alive connection with no request
  size_t max_http_body_bytes = 64 * 1024;
  size_t max_http_header_bytes = 8 * 1024;
  size_t max_ws_message_bytes = 64 * 1024;     // larger client messages: close 1009
  size_t max_ws_outbox_bytes = 4 * 1024 * 1024;  // unsent data per socket: close 3008 slow

  // Reported as "version" in the Centrifugo connect reply.
  std::string server_version = "llmload-emulator/0.1.0";
};

// INVALID_ARGUMENT naming the first bad field and its allowed range.
absl::Status Validate(const EmulatorConfig& config);

// The behaviour knobs of the config.
BehaviourConfig BehaviourOf(const EmulatorConfig& config);

inline bool TlsEnabled(const EmulatorConfig& c) {
  return !c.tls_cert_file.empty() || !c.tls_key_file.empty();
}

}  // namespace llmload::emulator
