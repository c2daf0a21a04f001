// File: ws_session.h
//
// A WebSocket endpoint for the JSON-per-text-frame protocols (Realm, WS
// chat): this layer moves frames and runs timers; a per-connection
// WsHandler (pure protocol state, no I/O) decides what to send. Each
// outgoing frame is one WebSocket message (these protocols never batch),
// at most one write in flight, the rest queued.
//
// A handler answers every input with WsActions: frames to send, a timed
// stream to start (stream.h; one at a time, its frames go through the same
// queue), a close frame (after the queued frames), a TCP drop, or a deadline
// to (re)arm for OnDeadline. Bounds: messages above max_message_bytes close
// with 1009 (Beast), an outbox above max_outbox_bytes drops the connection,
// and a close handshake that does not finish within close_timeout drops it.
// WebSocket ping frames are answered by Beast with a pong.
//
// Thread-safety: the endpoint is thread-safe; each session is confined to
// its loop.

#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "boost/beast/websocket/rfc6455.hpp"
#include "services/emulator/router.h"
#include "services/emulator/stream.h"

namespace llmload::emulator {

struct WsActions {
  bool cancel_stream = false;  // applied first
  std::vector<std::string> frames;
  std::unique_ptr<StreamSource> stream;  // started after `frames`
  std::optional<boost::beast::websocket::close_reason> close;  // after `frames`
  bool drop = false;                                          // close the TCP connection now
  // Arms (or, with zero, cancels) the handler's deadline.
  std::optional<std::chrono::nanoseconds> deadline;
};

class WsHandler {
 public:
  virtual ~WsHandler() = default;
  virtual WsActions OnOpen() = 0;
  virtual WsActions OnText(std::string_view text) = 0;
  virtual WsActions OnBinary() = 0;
  // The stream started by an earlier action ended normally.
  virtual WsActions OnStreamEnd() = 0;
  virtual WsActions OnDeadline() { return {}; }
};

struct WsEndpointOptions {
  std::string subprotocol;  // echoed when the client offers it; empty = none
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(10);
  std::chrono::nanoseconds close_timeout = std::chrono::seconds(5);
  size_t max_message_bytes = 64 * 1024;
  size_t max_outbox_bytes = 4 * 1024 * 1024;
};

class WsEndpoint : public WebSocketEndpoint {
 public:
  using HandlerFactory = std::function<std::unique_ptr<WsHandler>(const HttpRequest& upgrade)>;
  WsEndpoint(WsEndpointOptions options, HandlerFactory factory);

  void Accept(ServerStream stream, HttpRequest request, ConnectionGuard guard,
              EventLoop& loop) override;

 private:
  const WsEndpointOptions options_;
  HandlerFactory factory_;
};

}  // namespace llmload::emulator
