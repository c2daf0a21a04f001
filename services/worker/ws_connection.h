// File: ws_connection.h
//
// One client WebSocket of a session driver: TCP connect (from a source
// address when the spec spreads them), TLS for wss, the upgrade, text
// messages in and out, ping answers, the close handshake.
//
// Built for many mostly idle sessions per loop, on the worker's byte stream
// (lean_stream.h: a 256-byte first read, which holds a whole token message
// of a paced stream, the loop's shared buffer for the rest, writes straight
// to the socket); lib/protocol/ws_framing.h does the framing. Between reads
// a connection holds only the tail of a frame split across them.
//
// The owner (a session driver) gets its callbacks on the loop's thread and
// keeps the connection alive by handing Open() a shared_ptr that every
// pending operation holds. Abort() drops the socket at once and makes every
// pending operation a no-op; no callback follows it.

#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/protocol/ws_framing.h"
#include "services/worker/lean_stream.h"
#include "services/worker/shard.h"

namespace llmload::worker {

enum class WsEnd {
  kConnectFailed,   // TCP connect or TLS handshake failed
  kUpgradeRefused,  // the target answered the upgrade with another status
  kProtocolError,   // a bad upgrade response, a malformed frame, an oversized message
  kClosedByPeer,    // the target sent a close frame first (close_code())
  kLost,            // the connection ended without a close frame
  kClosed,          // the close handshake we began completed
};

// The failure counter of a connection that ended with `end`
// (`refused_status`: the upgrade's answer, for kUpgradeRefused).
inline v1::Counter WsEndCounter(WsEnd end, int refused_status) {
  switch (end) {
    case WsEnd::kConnectFailed:
      return v1::CONNECT_FAILED;
    case WsEnd::kUpgradeRefused:
      return refused_status == 429   ? v1::RATE_LIMITED
             : refused_status >= 500 ? v1::HTTP_5XX
             : refused_status >= 400 ? v1::HTTP_4XX
                                     : v1::PROTOCOL_ERROR;
    case WsEnd::kProtocolError:
      return v1::PROTOCOL_ERROR;
    case WsEnd::kClosedByPeer:
    case WsEnd::kLost:
    case WsEnd::kClosed:
      return v1::DISCONNECTED;
  }
  return v1::DISCONNECTED;
}

class WsConnectionOwner {
 public:
  // The upgrade completed: messages may be sent.
  virtual void OnWsOpen(Clock::time_point now) = 0;
  // One text (or binary) message; `now` is when its read completed.
  virtual void OnWsMessage(std::string_view message, Clock::time_point now) = 0;
  // The connection is over (`why`, for logs). Not called after Abort().
  virtual void OnWsEnd(WsEnd end, std::string_view why) = 0;

 protected:
  ~WsConnectionOwner() = default;
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// kTls: wss (TLS over TCP) instead of ws.
template <bool kTls>
class WsConnection final : private LeanStream<WsConnection<kTls>, kTls> {
  using Stream = LeanStream<WsConnection<kTls>, kTls>;
  friend Stream;

 public:
  WsConnection(net::io_context& ioc, WsConnectionOwner& owner, size_t max_message_bytes);
  ~WsConnection();
  WsConnection(const WsConnection&) = delete;
  WsConnection& operator=(const WsConnection&) = delete;

  // Connects to `target` and upgrades at `path` with `headers`; `salt`
  // picks the source address. Ends an earlier connection first (silently).
  void Open(const TargetInfo& target, std::string_view path, const HeaderList& headers,
            uint64_t salt, std::shared_ptr<void> keepalive);
  // Queues one text message (only while open).
  void SendText(std::string_view text);
  // Starts the close handshake (1000); OnWsEnd(kClosed) follows when the
  // target answers or drops the connection.
  void Close();
  void Abort();

  bool is_open() const { return state_ == State::kOpen; }
  int refused_status() const { return refused_status_; }
  uint16_t close_code() const { return close_code_; }

 private:
  enum class State : uint8_t { kIdle, kConnecting, kUpgrading, kOpen, kClosing, kDone };

  // LeanStream
  void OnStreamOpen();
  void OnStreamConnectFailed(std::string why);
  void OnStreamBytes(const char* data, size_t n);
  void OnStreamReadError(const boost::system::error_code& ec);

  void OnFrames(std::string_view data, Clock::time_point now);
  void SendFrame(protocol::ws::Opcode opcode, std::string_view payload);
  void End(WsEnd end, std::string_view why);
  void Drop();

  WsConnectionOwner& owner_;
  protocol::ws::FrameReader reader_;
  std::string handshake_;  // upgrade: the response so far (then released)
  std::string key_;        // upgrade: our Sec-WebSocket-Key (then released)
  int refused_status_ = 0;
  uint16_t close_code_ = 0;
  State state_ = State::kIdle;
};

extern template class WsConnection<false>;
extern template class WsConnection<true>;

}  // namespace llmload::worker
