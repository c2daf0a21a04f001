// File: ws_chat_endpoint.h
//
// WS_CHAT: the chat protocol of shared/protocols/ws-chat.md on the
// WebSocket paths /api/ws (the real server's) and /ws (the library
// README's, and shared/peerbench's).
//
// - On open: status "connected" with clientId and sessionId.
// - user_message (options nested in data.options or flattened into data):
//   status "processing", then tool_call (status start, then complete) and
//   tool_result per requested tool (options.tools), then llm_chunk… (the
//   user message's id; the first chunk is the first word, later ones
//   " word"), then llm_complete {fullText, tokenUsage}. A user_message
//   while a reply is streaming is ignored (as the current server does).
//   Per message (llmload extensions besides maxTokens): options.maxTokens =
//   length in words, options.tokenDelayMs, options.ttftMs, options.fault.
// - control: abort (stops the stream, control_response aborted),
//   clear_history, get_history, get_status; others UNKNOWN_CONTROL.
//   abort/clear_history/get_history answer nothing before the first
//   user_message (no conversation yet).
// - ping -> pong with the same id; pong is accepted silently. Not JSON:
//   error INVALID_MESSAGE; unknown type: UNKNOWN_MESSAGE_TYPE. Errors never
//   close the socket.
// - Heartbeat: every --ws_chat_heartbeat_seconds the server sends
//   {"type":"ping",…}; a connection from which nothing arrived for a whole
//   interval is then terminated.
// - Faults: 500 and 429 -> error PROCESSING_ERROR instead of the reply;
//   error_event -> error PROCESSING_ERROR after ceil(n/2) chunks (no
//   llm_complete); disconnect -> TCP dropped mid-stream; malformed -> one
//   non-JSON frame. The upgrade request's x-llmload-fault header forces a
//   fault on every message.
//
// Thread-safety: the endpoint is thread-safe; handlers are confined to
// their connection's loop.

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "services/emulator/behaviour.h"
#include "services/emulator/ws_session.h"

namespace llmload::emulator {

struct WsChatOptions {
  std::chrono::nanoseconds heartbeat = std::chrono::seconds(30);
  std::function<int64_t()> now_ms;  // wall clock, for timestamps and ids
};

class WsChatHandler final : public WsHandler {
 public:
  WsChatHandler(const WsChatOptions* options, Behaviour* behaviour,
                std::optional<Fault> forced_fault);

  WsActions OnOpen() override;
  WsActions OnText(std::string_view text) override;
  WsActions OnBinary() override;
  WsActions OnStreamEnd() override;
  WsActions OnDeadline() override;

 private:
  std::string NewMessageId();
  WsActions Error(std::string_view code, std::string_view message);

  const WsChatOptions* options_;
  Behaviour* behaviour_;
  const std::optional<Fault> forced_fault_;
  std::string client_id_;
  std::string session_id_;
  int64_t connected_at_ = 0;
  int64_t last_activity_ = 0;
  int64_t message_count_ = 0;
  bool alive_ = true;
  bool conversation_ = false;
  bool streaming_ = false;
  std::string pending_reply_;  // text of the reply being streamed
  std::vector<std::pair<std::string, std::string>> history_;  // role, content
};

class WsChatEndpoint {
 public:
  WsChatEndpoint(WsChatOptions options, WsEndpointOptions ws_options, Behaviour* behaviour);
  WebSocketEndpoint* endpoint() { return &ws_; }

 private:
  const WsChatOptions options_;
  Behaviour* behaviour_;
  WsEndpoint ws_;
};

}  // namespace llmload::emulator
