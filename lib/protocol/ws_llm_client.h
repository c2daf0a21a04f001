// File: ws_llm_client.h
//
// Client side of the two WebSocket LLM protocols the worker drives, as
// "dialects" of one session shape (connect, maybe authenticate, then per
// request: send one message, receive chunks, receive the completion):
//
//   WS_CHAT  shared/protocols/ws-chat.md: `status` connected on open;
//            `user_message` -> `llm_chunk`… -> `llm_complete`; `error`
//            messages; app-level `ping`/`pong` with the same id; with
//            options.tools, `tool_call` (toolCallId, toolName, status) and
//            `tool_result` (toolCallId, toolName, result) frames.
//   REALM    shared/protocols/realm.md: optional `auth_required` /
//            `auth` / `auth_success` / `auth_failed`, a welcome message;
//            `generate` calls answered by `streaming` TokenData frames and a
//            `complete`; `error` frames with codes (RATE_LIMIT_EXCEEDED,
//            UNAUTHORIZED, DISPATCH_ERROR, INTERNAL_ERROR).
//
// Pure: frames in, events out. Thread-compatible; an event's views are valid
// only during its callback.

#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace llmload::protocol::wsllm {

enum class Dialect { kWsChat, kRealm };

struct WsEvent {
  enum class Kind {
    kReady,       // the session may send requests (ws-chat connected; realm welcome)
    kAuthOk,      // realm auth_success (the welcome follows)
    kAuthFailed,  // realm auth_failed: the session cannot be used
    kChunk,       // a piece of the response (text may hold several tokens)
    kComplete,    // the response is complete
    kError,       // an error for the request in flight (or the connection)
    kPing,        // answer with `reply`
    kToolCall,    // ws-chat tool_call (tool_call_id, tool_name, tool_status)
    kToolResult,  // ws-chat tool_result (tool_call_id, tool_name)
    kIgnore,
  };
  Kind kind = Kind::kIgnore;
  std::string_view id;    // request id the frame belongs to (may be empty)
  std::string_view text;  // kChunk
  // Tokens the target reported for the response (kComplete: realm
  // tokens_generated, ws-chat tokenUsage.completionTokens), -1 if none.
  int64_t reported_tokens = -1;
  // Prompt tokens the target reported (kComplete: realm prompt_tokens,
  // ws-chat tokenUsage.promptTokens), -1 if none.
  int64_t reported_input_tokens = -1;
  std::string_view error_code;
  std::string_view error_message;
  double retry_after_seconds = -1;  // realm: parsed from the message text
  std::string reply;                // kPing: the frame to send back
  std::string_view tool_call_id;    // kToolCall, kToolResult
  std::string_view tool_name;       // kToolCall, kToolResult
  std::string_view tool_status;     // kToolCall: start, progress, complete, error, ...
};

struct RequestParams {
  std::string_view id;
  std::string_view prompt;
  std::string_view model;
  std::string_view tenant;
  int32_t max_tokens = 0;
  double token_delay_ms = -1;  // llmload emulator extension; < 0: not sent
  bool stream = true;
  // ws-chat options.tools (not sent when empty); realm: unused.
  std::span<const std::string> tools;
  // realm: the function called. "generate" takes the fields above; "health"
  // and "metadata" take none; "pipeline" runs `pipeline` with the prompt as
  // its input text.
  std::string_view function = "generate";
  std::string_view pipeline;
};

class WsLlmClient {
 public:
  explicit WsLlmClient(Dialect dialect);

  Dialect dialect() const { return dialect_; }
  // The first frame to send after the upgrade (realm auth with an API key),
  // or nothing.
  std::optional<std::string> OpeningFrame(std::string_view api_key) const;
  std::string EncodeRequest(const RequestParams& params) const;
  // A client-initiated keep-alive (ws-chat `ping`); empty for realm, which
  // uses WebSocket ping frames.
  std::string EncodeKeepAlive(std::string_view id) const;
  // One text frame from the server. INVALID_ARGUMENT when it is not a JSON
  // object of the protocol (the session is then a protocol error).
  absl::Status Parse(std::string_view frame, absl::FunctionRef<void(const WsEvent&)> on_event);
  // Every frame through the DOM (tests comparing the two paths).
  void set_fast_path(bool on) { fast_path_ = on; }

 private:
  Dialect dialect_;
  bool fast_path_ = true;
};

// Parse's fast path: true when `frame` is a valid JSON content chunk of the
// dialect that it could read without building a DOM (then `*e` is the
// kChunk event Parse reports); false leaves the frame to the DOM parse.
// Exposed for the fuzz target, which checks that both paths agree.
bool ParseChunkFast(Dialect dialect, std::string_view frame, WsEvent* e);

// Realm's rate-limit message carries the wait in its text
// ("Rate limit exceeded. Try again in <N> seconds."); -1 if absent.
double RetryAfterFromText(std::string_view message);

}  // namespace llmload::protocol::wsllm
