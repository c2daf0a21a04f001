// File: lean_stream.h
//
// The byte stream under the worker's client connections (ws_connection.h,
// http_connection.h): TCP connect from a chosen source address, TLS when
// asked, reads and writes, built for tens of thousands of mostly waiting
// connections per loop.
//
// Over plain TCP a stream keeps a 256-byte buffer for the first read of
// each readiness event, which holds a whole token message of a paced stream
// (one system call per token, as in a bare epoll loop); when a read fills
// it, the rest is drained into one 64 KiB buffer shared by the whole loop.
// Writes go straight to the socket; only what the kernel refuses waits in a
// buffer. Over TLS the stream needs a read buffer of its own.
//
// LeanStream is a base of its connection (`Derived`, CRTP), which gets
//
//   void OnStreamOpen();                      // connected (TLS established)
//   void OnStreamConnectFailed(std::string why);
//   void OnStreamBytes(const char* data, size_t n);
//   void OnStreamReadError(const boost::system::error_code& ec);
//
// on the loop's thread. Every pending operation holds the keep-alive handed
// to ConnectStream (the session owning the connection) and the generation
// of the stream it was started on: DropStream() closes the socket and makes
// every pending operation a no-op. The member functions are defined in
// lean_stream_impl.h, included by the connections' .cc files only.

#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "services/worker/shard.h"

namespace llmload::worker {

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

// Where a stream connects: the endpoints to try, the local addresses
// connections are spread over, and for TLS the context, the name for SNI
// and whether the peer is verified.
struct StreamTarget {
  const std::vector<tcp::endpoint>* endpoints = nullptr;
  const std::vector<net::ip::address>* sources = nullptr;
  net::ssl::context* tls_context = nullptr;  // TLS only
  const std::string* host = nullptr;         // TLS only: SNI and verification
  bool verify = true;                        // TLS only

  // A target's HTTP side (`websocket` false) or its WebSocket side.
  static StreamTarget Of(const TargetInfo& t, bool websocket) {
    StreamTarget s;
    s.endpoints = websocket ? &t.ws_endpoints : &t.endpoints;
    s.sources = &t.source_addresses;
    s.tls_context = t.tls_context.get();
    s.host = websocket ? &t.ws_host : &t.host;
    s.verify = t.verify;
    return s;
  }
};

template <class Derived, bool kTls>
class LeanStream {
 protected:
  using TlsStream = net::ssl::stream<tcp::socket>;

  explicit LeanStream(net::io_context& ioc);
  ~LeanStream() = default;
  LeanStream(const LeanStream&) = delete;
  LeanStream& operator=(const LeanStream&) = delete;

  // Drops any earlier stream and connects; `salt` picks the source address.
  // OnStreamOpen or OnStreamConnectFailed follows (never from inside).
  void ConnectStream(const StreamTarget& target, uint64_t salt, std::shared_ptr<void> keepalive);
  // Reads until DropStream, delivering OnStreamBytes / OnStreamReadError.
  void StartRead();
  // Writes `bytes` (copied only if the kernel does not take them at once).
  void Write(std::string_view bytes);
  // Bytes queued before the stream is open go out with the next Flush.
  std::string& pending_out() { return out_; }
  void Flush();
  // Closes the socket; pending operations become no-ops.
  void DropStream();

  bool HasSocket() const {
    if constexpr (kTls) {
      return stream_ != nullptr;
    } else {
      return stream_.is_open();
    }
  }
  uint64_t gen() const { return gen_; }
  bool write_pending() const { return write_pending_; }
  net::io_context& ioc() { return ioc_; }

  // What a handler holds to keep a TLS stream alive (nothing for plain).
  struct NoHold {};
  auto TlsHold() const {
    if constexpr (kTls) {
      return stream_;
    } else {
      return NoHold{};
    }
  }
  std::shared_ptr<void> keepalive_;

 private:
  Derived& Self() { return static_cast<Derived&>(*this); }
  auto& Socket() {
    if constexpr (kTls) {
      return stream_->next_layer();
    } else {
      return stream_;
    }
  }
  auto& Stream() {
    if constexpr (kTls) {
      return *stream_;
    } else {
      return stream_;
    }
  }
  void OnConnected(const boost::system::error_code& ec, uint64_t gen);
  void OnRead(const boost::system::error_code& ec, size_t n, uint64_t gen);

  net::io_context& ioc_;
  // Plain: the socket, reopened for each connection (it lives as long as
  // the owner, which every pending operation keeps alive). TLS: a new stream
  // per connection, shared with the handlers of operations that touch it
  // when they resume, so that dropping a connection never leaves them a
  // dangling one.
  std::conditional_t<kTls, std::shared_ptr<TlsStream>, LoopSocket> stream_;
  std::string out_;                       // bytes not yet handed to the socket
  std::unique_ptr<std::string> writing_;  // bytes an async write is sending
  std::unique_ptr<char[]> tls_buffer_;    // TLS only: the read buffer
  std::array<char, 256> first_read_;      // plain only: see StartRead
  uint64_t gen_ = 0;  // bumped when a stream is dropped: its handlers become no-ops
  bool write_pending_ = false;
};

}  // namespace llmload::worker
