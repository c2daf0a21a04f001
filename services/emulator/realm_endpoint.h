// File: realm_endpoint.h
//
// REALM: Querent-ai/realm's WebSocket function dispatch (shared/protocols/
// realm.md) on the WebSocket paths "/" (the Node SDK's default URL,
// ws://host:8080) and "/realm".
//
// - Auth (on when API keys are configured: --realm_api_keys
//   "key:tenant,…" and/or --realm_api_keys_file, one "key:tenant" or
//   "key tenant" per line, '#' comments): auth_required, then the client's
//   {"type":"auth","api_key":…} within --realm_auth_timeout_seconds ->
//   auth_success + welcome, or auth_failed + a close frame without status.
//   Without keys: the welcome {"status":"connected","tenant_id":null,…} at once.
// - FunctionCall {"id","function","params","tenant_id"?}: generate
//   (streaming: "streaming" TokenData frames then "complete"
//   {"status":"complete","tokens_generated":n}; else one "complete" with a
//   GenerationResult after the generation time), health, metadata,
//   pipeline. Errors: UNAUTHORIZED (auth on, tenant_id differs),
//   RATE_LIMIT_EXCEEDED (auth on, per-tenant token bucket of
//   --realm_rate_limit_per_minute with burst --realm_rate_limit_burst),
//   DISPATCH_ERROR (unknown function, bad params, bad tenant id),
//   INTERNAL_ERROR with id "unknown" (not a FunctionCall). Binary frames:
//   {"error":"Binary messages not supported"}.
// - One call at a time per connection, as the real server: calls that
//   arrive during a stream are answered after it.
// - Per call (llmload extensions in params): max_tokens = response length
//   in words (default --length_words), token_delay_ms, fault.
// - Faults: 500 -> INTERNAL_ERROR, 429 -> RATE_LIMIT_EXCEEDED, error_event
//   -> INTERNAL_ERROR frame after ceil(n/2) tokens, disconnect -> TCP
//   dropped mid-stream, malformed -> one non-JSON frame. The upgrade
//   request's x-llmload-fault header forces a fault on every call.
//
// Thread-safety: RealmEndpoint and RealmRateLimiter are thread-safe;
// handlers are confined to their connection's loop.

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "boost/json/object.hpp"
#include "services/emulator/behaviour.h"
#include "services/emulator/ws_session.h"

namespace llmload::emulator {

// "key:tenant" pairs separated by ',' or newlines; "key tenant" works too;
// '#' starts a comment. INVALID_ARGUMENT for an entry without a tenant.
absl::StatusOr<absl::flat_hash_map<std::string, std::string>> ParseRealmApiKeys(
    std::string_view text);

// Per-tenant token buckets (Realm's rate_limiter.rs): `burst` tokens,
// refilled at per_minute/60 per second; one token per call.
class RealmRateLimiter {
 public:
  RealmRateLimiter(double per_minute, int32_t burst) : per_minute_(per_minute), burst_(burst) {}
  // True when the call may go ahead; else *retry_seconds = whole seconds
  // until a token is back (truncated, as Realm reports it).
  bool TryAcquire(const std::string& tenant, std::chrono::steady_clock::time_point now,
                  int64_t* retry_seconds);

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point at;
  };
  const double per_minute_;
  const int32_t burst_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

struct RealmOptions {
  absl::flat_hash_map<std::string, std::string> api_keys;  // key -> tenant; empty = auth off
  std::chrono::nanoseconds auth_timeout = std::chrono::seconds(10);
  double rate_limit_per_minute = 60;
  int32_t rate_limit_burst = 100;
  std::function<std::chrono::steady_clock::time_point()> now;  // rate limit, uptime
};

// The protocol state of one Realm connection (no I/O).
class RealmHandler final : public WsHandler {
 public:
  RealmHandler(const RealmOptions* options, RealmRateLimiter* limiter, Behaviour* behaviour,
               std::chrono::steady_clock::time_point started, std::optional<Fault> forced_fault);

  WsActions OnOpen() override;
  WsActions OnText(std::string_view text) override;
  WsActions OnBinary() override;
  WsActions OnStreamEnd() override;
  WsActions OnDeadline() override;

 private:
  WsActions Dispatch(std::string_view text);
  WsActions Generate(const std::string& id, const boost::json::object& params,
                     const std::optional<std::string>& tenant);

  const RealmOptions* options_;
  RealmRateLimiter* limiter_;
  Behaviour* behaviour_;
  const std::chrono::steady_clock::time_point started_;
  const std::optional<Fault> forced_fault_;
  bool authenticated_ = false;
  bool failed_ = false;
  std::string tenant_;
  bool busy_ = false;
  std::vector<std::string> queued_;
};

class RealmEndpoint {
 public:
  // behaviour must outlive the endpoint.
  RealmEndpoint(RealmOptions options, WsEndpointOptions ws_options, Behaviour* behaviour);
  WebSocketEndpoint* endpoint() { return &ws_; }

 private:
  const RealmOptions options_;
  RealmRateLimiter limiter_;
  Behaviour* behaviour_;
  const std::chrono::steady_clock::time_point started_;
  WsEndpoint ws_;
};

}  // namespace llmload::emulator
