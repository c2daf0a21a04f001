// File: ws_connection.h
//
// One client WebSocket of a session driver: TCP connect (from a source
// address when the spec spreads them), TLS for wss, the upgrade, text
// messages in and out, ping answers, the close handshake.
//
// Built for many mostly idle sessions per loop (lib/protocol/ws_framing.h
// does the framing). Over plain TCP a connection keeps a 256-byte buffer for
// the first read of each readiness event, which holds a whole token message
// of a paced stream: one system call per token, as in a bare epoll loop.
// When a read fills it, the rest is drained into one 64 KiB buffer shared by
// the whole loop. Between reads a connection holds only the tail of a frame
// split across them. Small writes go straight to the socket and only what
// the kernel refuses waits in a buffer. Over TLS the stream needs its own
// read buffer.
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

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "lib/protocol/ws_framing.h"
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

// Sockets and timers bound to their loop's io_context itself rather than to
// asio's type-erased any_io_executor: every pending operation is smaller
// and cheaper to complete, which adds up over tens of thousands of sessions.
using LoopExecutor = net::io_context::executor_type;
using LoopSocket = net::basic_stream_socket<tcp, LoopExecutor>;
using LoopTimer = net::basic_waitable_timer<Clock, net::wait_traits<Clock>, LoopExecutor>;

// One read buffer per loop thread, shared by every plain connection on it
// (WebSocket and HTTP alike): a connection with more than its first read
// waiting is drained into it and the bytes are parsed before the next
// connection's turn.
inline constexpr size_t kLoopReadBuffer = 64 * 1024;
char* SharedReadBuffer();
// TLS connections read through OpenSSL, record by record (16 KiB at most),
// into a buffer of their own.
inline constexpr size_t kTlsReadBuffer = 16 * 1024;

// kTls: wss (TLS over TCP) instead of ws.
template <bool kTls>
class WsConnection {
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
  using TlsStream = net::ssl::stream<tcp::socket>;
  enum class State : uint8_t { kIdle, kConnecting, kUpgrading, kOpen, kClosing, kDone };

  auto& Socket() {
    if constexpr (kTls) {
      return stream_->next_layer();
    } else {
      return stream_;
    }
  }
  // What a handler holds to keep a TLS stream alive (nothing for plain).
  struct NoHold {};
  auto TlsHold() const {
    if constexpr (kTls) {
      return stream_;
    } else {
      return NoHold{};
    }
  }
  bool HasSocket() const {
    if constexpr (kTls) {
      return stream_ != nullptr;
    } else {
      return stream_.is_open();
    }
  }
  void OnConnected(const boost::system::error_code& ec, uint64_t gen);
  void SendUpgrade();
  void StartRead();
  void OnRead(const boost::system::error_code& ec, size_t n, uint64_t gen);
  void OnBytes(const char* data, size_t n);
  void OnFrames(std::string_view data, Clock::time_point now);
  void SendFrame(protocol::ws::Opcode opcode, std::string_view payload);
  void Flush();
  void End(WsEnd end, std::string_view why);
  void Drop();

  net::io_context& ioc_;
  WsConnectionOwner& owner_;
  std::shared_ptr<void> keepalive_;
  // Plain: the socket, reopened for each connection (it lives as long as
  // the owner, which every pending operation keeps alive). TLS: a new stream
  // per connection, shared with the handlers of operations that touch it
  // when they resume, so that dropping a connection never leaves them a
  // dangling one.
  std::conditional_t<kTls, std::shared_ptr<TlsStream>, LoopSocket> stream_;
  protocol::ws::FrameReader reader_;
  std::string handshake_;  // upgrade: the response so far (then released)
  std::string key_;        // upgrade: our Sec-WebSocket-Key (then released)
  std::string out_;        // frames not yet handed to the socket
  std::string writing_;    // frames an async write is sending
  std::unique_ptr<char[]> tls_buffer_;  // TLS only: the read buffer
  // Plain only: what one readiness event reads first (see StartRead).
  std::array<char, 256> first_read_;
  uint64_t gen_ = 0;  // bumped when a connection ends: its handlers become no-ops
  int refused_status_ = 0;
  uint16_t close_code_ = 0;
  State state_ = State::kIdle;
  bool write_pending_ = false;
};

extern template class WsConnection<false>;
extern template class WsConnection<true>;

}  // namespace llmload::worker
