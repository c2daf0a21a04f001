// File: llm_emulator_api.h
//
// The REST side of the CENTRIFUGO_EMULATOR target: the FastAPI app of
// arch7tect/centrifugo-cluster-demo (shared/protocols/llm-emulator-api.md §2,
// §3) on llmload's router.
//
//   GET    /health               {"status":"ok"}
//   POST   /api/sessions/create  {"session_id":"<uuid4>","token":"<HS256 JWT>"}
//   POST   /api/run              {"response":"<text>"}, then the text is published
//                                word by word into channel session:<id>
//   DELETE /api/sessions/{id}    {"status":"closed"}
//
// /api/run takes two optional llmload extension fields that override the
// server's defaults for that run only (the original API has none):
//   "length_words":        integer in [1, 100000]  (JSON number; 50.0 is accepted as 50)
//   "token_delay_seconds": number in [0, 60]
// null counts as absent. The x-llmload-length-words / x-llmload-token-delay-ms
// / x-llmload-ttft-ms headers give the same per request (a body field wins
// over its header). Bad values, like a missing or non-string
// session_id/question, give 422 with a FastAPI/pydantic-shaped
// {"detail":[{"type":…,"loc":["body",…],"msg":…,"input":…}]}.
//
// Faults (x-llmload-fault header or the --fault_* rates, counted as
// CENTRIFUGO_EMULATOR requests): 500 -> HTTP 500 text/plain "Internal Server
// Error" (Starlette's), 429 -> HTTP 429 {"detail":"Too Many Requests"} with
// Retry-After; error_event, disconnect and malformed answer 200 and then
// hit the publications (channel_hub.h).
//
// Handlers touch no sockets: time, ids and publishing are injected.
// Thread-safe (const after construction).

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/time/time.h"
#include "services/emulator/behaviour.h"
#include "services/emulator/router.h"

namespace llmload::emulator {

struct RunRequest {
  std::string session_id;
  std::string question;
  int32_t length_words = 0;
  double token_delay_seconds = 0;
};

// The 422 body, ready to send.
struct ValidationError {
  std::string body;
};

// Validates an /api/run body; fields missing from the extension take the
// defaults given.
std::variant<RunRequest, ValidationError> ParseRunRequest(std::string_view body,
                                                           int32_t default_length_words,
                                                           double default_token_delay_seconds);

// Where /api/run hands its tokens.
class RunPublisher {
 public:
  virtual ~RunPublisher() = default;
  // Publishes the plan's tokens one by one into session_id's channel at
  // their offsets, then {"done":true} one gap later. Returns false when no
  // WebSocket is subscribed to the channel: the run is dropped (as the
  // original's publications to a channel nobody listens on are lost).
  virtual bool StartRun(std::string_view session_id, ResponsePlan plan) = 0;
  // DELETE /api/sessions/{id}: the session's channel history goes (the
  // original calls Centrifugo's history_remove).
  virtual void EndSession(std::string_view session_id) { (void)session_id; }
};

struct LlmEmulatorApiOptions {
  std::string jwt_secret;
  int64_t token_ttl_seconds = 3600;
  int32_t default_length_words = 100;
  double default_token_delay_seconds = 0.01;
  uint64_t seed = 0;
  std::function<absl::Time()> now;           // wall clock, for token exp
  std::function<std::string()> new_session_id;
  // Plans runs (timing, faults); when null, a private one built from the
  // defaults above (fixed delay, no faults).
  Behaviour* behaviour = nullptr;
};

class LlmEmulatorApi {
 public:
  LlmEmulatorApi(LlmEmulatorApiOptions options, RunPublisher* publisher);

  void RegisterRoutes(Router* router);

  HttpResponse Health(const HttpRequest& request) const;
  HttpResponse CreateSession(const HttpRequest& request) const;
  HttpResponse Run(const HttpRequest& request) const;
  HttpResponse DeleteSession(const HttpRequest& request, std::string_view session_id) const;

 private:
  LlmEmulatorApiOptions options_;
  RunPublisher* publisher_;
  std::unique_ptr<Behaviour> own_behaviour_;
  Behaviour* behaviour_;
};

}  // namespace llmload::emulator
