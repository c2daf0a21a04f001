// File: centrifugo_endpoint.h
//
// GET /connection/websocket: the Centrifugo client protocol v2 (JSON) over
// Boost.Beast WebSocket. Each accepted socket becomes a session pinned to
// its event loop; the protocol decisions are CentrifugoHandler's, this layer
// moves bytes and runs the ping, pong and stale timers.
//
// Writes: one async_write in flight per socket. Queued frames wait in an
// outbox; when several are queued they are sent '\n'-joined in one frame
// (up to 64 KiB), as Centrifugo batches pushes; clients split frames on
// '\n' anyway. Bounds: client messages above max_message_bytes close with
// 1009 (Beast does it), an outbox above max_outbox_bytes closes with 3008
// "slow", a socket that sends no connect within stale_timeout closes with
// 3502, and a close handshake that does not finish within 5 s drops the
// TCP connection.
//
// Thread-safety: the endpoint is thread-safe; each session is confined to
// its loop.

#pragma once

#include <chrono>
#include <cstddef>

#include "services/emulator/centrifugo_handler.h"
#include "services/emulator/channel_hub.h"
#include "services/emulator/router.h"

namespace llmload::emulator {

struct CentrifugoEndpointOptions {
  CentrifugoHandlerOptions handler;
  std::chrono::nanoseconds ping_interval = std::chrono::seconds(25);
  std::chrono::nanoseconds pong_timeout = std::chrono::seconds(10);
  std::chrono::nanoseconds stale_timeout = std::chrono::seconds(15);
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(10);
  std::chrono::nanoseconds close_timeout = std::chrono::seconds(5);
  size_t max_message_bytes = 64 * 1024;
  size_t max_outbox_bytes = 4 * 1024 * 1024;
};

class CentrifugoEndpoint : public WebSocketEndpoint {
 public:
  // hub must outlive every session.
  CentrifugoEndpoint(CentrifugoEndpointOptions options, ChannelHub* hub);

  void Accept(ServerStream stream, HttpRequest request, ConnectionGuard guard,
              EventLoop& loop) override;

 private:
  const CentrifugoEndpointOptions options_;
  ChannelHub* hub_;
};

}  // namespace llmload::emulator
