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
  return absl::OkStatus();
}

}  // namespace llmload::emulator
