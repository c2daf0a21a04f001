#include "services/emulator/config.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace llmload::emulator {
namespace {

bool InRange(double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; }

}  // namespace

absl::Status Validate(const EmulatorConfig& c) {
  if (c.host.empty()) {
    return absl::InvalidArgumentError("host: must not be empty");
  }
  if (c.threads < 1 || c.threads > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("threads: must be in [1, 1024], got ", c.threads));
  }
  if (c.processes < 1 || c.processes > kMaxProcesses) {
    return absl::InvalidArgumentError(
        absl::StrCat("processes: must be in [1, ", kMaxProcesses, "], got ", c.processes));
  }
  if (c.length_words < kMinLengthWords || c.length_words > kMaxLengthWords) {
    return absl::InvalidArgumentError(absl::StrCat("length_words: must be in [", kMinLengthWords,
                                                   ", ", kMaxLengthWords, "], got ",
                                                   c.length_words));
  }
  if (!InRange(c.token_delay_seconds, 0.0, kMaxTokenDelaySeconds)) {
    return absl::InvalidArgumentError(absl::StrCat("token_delay_seconds: must be in [0, ",
                                                   kMaxTokenDelaySeconds, "], got ",
                                                   c.token_delay_seconds));
  }
  if (c.jwt_secret.empty()) {
    return absl::InvalidArgumentError("jwt_secret: must not be empty");
  }
  if (c.token_ttl_seconds < 1 || c.token_ttl_seconds > 10LL * 365 * 24 * 3600) {
    return absl::InvalidArgumentError(
        absl::StrCat("token_ttl_seconds: must be in [1, 315360000], got ", c.token_ttl_seconds));
  }
  if (!InRange(c.ping_interval_seconds, 0.01, 3600.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ping_interval_seconds: must be in [0.01, 3600], got ", c.ping_interval_seconds));
  }
  if (!InRange(c.pong_timeout_seconds, 0.01, 3600.0) ||
      c.pong_timeout_seconds >= c.ping_interval_seconds) {
    return absl::InvalidArgumentError(
        absl::StrCat("pong_timeout_seconds: must be positive and below ping_interval_seconds (",
                     c.ping_interval_seconds, "), got ", c.pong_timeout_seconds));
  }
  if (!InRange(c.stale_timeout_seconds, 0.01, 3600.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stale_timeout_seconds: must be in [0.01, 3600], got ", c.stale_timeout_seconds));
  }
  if (c.centrifugo_history_size < 0 || c.centrifugo_history_size > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("centrifugo_history_size: must be in [0, 100000] (0: no history), got ",
                     c.centrifugo_history_size));
  }
  if (!InRange(c.centrifugo_history_ttl_seconds, 0.0, 86400.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("centrifugo_history_ttl_seconds: must be in [0, 86400], got ",
                     c.centrifugo_history_ttl_seconds));
  }
  if (c.max_connections < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_connections: must be at least 1, got ", c.max_connections));
  }
  if (!InRange(c.http_idle_timeout_seconds, 0.01, 3600.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "http_idle_timeout_seconds: must be in [0.01, 3600], got ", c.http_idle_timeout_seconds));
  }
  if (c.max_http_body_bytes < 1024 || c.max_http_header_bytes < 1024 ||
      c.max_ws_message_bytes < 1024 || c.max_ws_outbox_bytes < c.max_ws_message_bytes) {
    return absl::InvalidArgumentError("size limits: each must be at least 1024 bytes, and the "
                                      "outbox at least one message");
  }
  if (absl::Status s = ValidateBehaviour(BehaviourOf(c)); !s.ok()) {
    return s;
  }
  if (!InRange(c.realm_rate_limit_per_minute, 0.0, 1e9) || c.realm_rate_limit_burst < 1) {
    return absl::InvalidArgumentError(
        "realm_rate_limit_per_minute: must be >= 0, and realm_rate_limit_burst >= 1");
  }
  if (!InRange(c.realm_auth_timeout_seconds, 0.01, 3600.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "realm_auth_timeout_seconds: must be in [0.01, 3600], got ", c.realm_auth_timeout_seconds));
  }
  if (!InRange(c.ws_chat_heartbeat_seconds, 0.01, 86400.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ws_chat_heartbeat_seconds: must be in [0.01, 86400], got ", c.ws_chat_heartbeat_seconds));
  }
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert_file, tls_key_file: give both (TLS on) or neither (TLS off)");
  }
  return absl::OkStatus();
}

BehaviourConfig BehaviourOf(const EmulatorConfig& c) {
  BehaviourConfig b;
  b.length_words = c.length_words;
  b.ttft_seconds = c.ttft_seconds;
  b.token_delay_seconds = c.token_delay_seconds;
  b.distribution = c.token_delay_distribution;
  b.token_delay_spread_seconds = c.token_delay_spread_seconds;
  b.faults = c.faults;
  b.retry_after_seconds = c.retry_after_seconds;
  b.seed = c.seed;
  return b;
}

}  // namespace llmload::emulator
