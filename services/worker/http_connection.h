// File: http_connection.h
//
// One client HTTP/1.1 keep-alive connection of a session driver: TCP connect
// (from a source address when the spec spreads them), TLS for https, one
// request at a time and its response, streamed to the owner as it arrives.
//
// The counterpart of ws_connection.h for the HTTP drivers, on the same
// byte stream (lean_stream.h: a 256-byte first read, which holds a whole
// SSE token event of a paced stream, the loop's shared buffer for the rest,
// writes straight to the socket). The response is decoded by
// protocol::http1::ResponseReader, which holds nothing but a few integers
// while a body streams, so the connection's own state between reads is a
// few dozen bytes.
//
// A read stays pending while the connection is idle between requests, so a
// target closing an idle keep-alive connection is noticed at once (the
// owner sees OnHttpEnd and connects again when it next needs to).
//
// The owner gets its callbacks on the loop's thread and keeps the
// connection alive by handing Open() a shared_ptr that every pending
// operation holds. Abort() drops the socket at once and makes every pending
// operation a no-op; no callback follows it. Inside OnHttpHead and
// OnHttpBody the owner may Abort() but not Open() or Send(); inside
// OnHttpComplete and OnHttpEnd it may do anything.

#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "lib/protocol/http1_client.h"
#include "services/worker/lean_stream.h"
#include "services/worker/shard.h"

namespace llmload::worker {

enum class HttpEnd {
  kConnectFailed,  // TCP connect or TLS handshake failed
  kProtocolError,  // a malformed response, or bytes nobody asked for
  kLost,           // the connection ended (a response in flight is cut short)
};

class HttpConnectionOwner {
 public:
  // Connected (and TLS established): a request may be sent.
  virtual void OnHttpOpen(Clock::time_point now) = 0;
  // The response's final head (interim 1xx responses are skipped).
  virtual void OnHttpHead(const protocol::http1::ResponseHead& head, Clock::time_point now) = 0;
  // Body bytes (de-chunked). False: stop delivering this read's bytes (the
  // owner has aborted the connection).
  virtual bool OnHttpBody(std::string_view bytes, Clock::time_point now) = 0;
  // The response is complete. `keep_alive` false: the connection is closed
  // already (is_open() is false).
  virtual void OnHttpComplete(bool keep_alive, Clock::time_point now) = 0;
  // The connection is over. `response_bytes`: bytes of the response in
  // flight received before the end (0 with no request in flight, or when
  // the target closed a reused connection before answering). Not called
  // after Abort().
  virtual void OnHttpEnd(HttpEnd end, uint64_t response_bytes, std::string_view why) = 0;

 protected:
  ~HttpConnectionOwner() = default;
};

// kTls: https (TLS over TCP).
template <bool kTls>
class HttpConnection final : private protocol::http1::ResponseSink,
                             private LeanStream<HttpConnection<kTls>, kTls> {
  using Stream = LeanStream<HttpConnection<kTls>, kTls>;
  friend Stream;

 public:
  HttpConnection(net::io_context& ioc, HttpConnectionOwner& owner);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Connects to `target` (its HTTP endpoints); `salt` picks the source
  // address. Ends an earlier connection first (silently).
  void Open(const TargetInfo& target, uint64_t salt, std::shared_ptr<void> keepalive);
  // Sends one request (the whole of it, head and body, as bytes) and reads
  // its response. Only while open and no response is pending.
  void Send(std::string_view request);
  void Abort();

  bool is_open() const { return state_ == State::kIdle || state_ == State::kAwaiting; }
  bool awaiting() const { return state_ == State::kAwaiting; }
  // Bytes of the current response received so far.
  uint64_t response_bytes() const { return response_bytes_; }

 private:
  enum class State : uint8_t { kClosed, kConnecting, kIdle, kAwaiting };

  // LeanStream
  void OnStreamOpen();
  void OnStreamConnectFailed(std::string why);
  void OnStreamBytes(const char* data, size_t n);
  void OnStreamReadError(const boost::system::error_code& ec);

  void End(HttpEnd end, std::string_view why);
  void Drop();

  // protocol::http1::ResponseSink
  void OnHead(const protocol::http1::ResponseHead& head) override;
  bool OnBody(std::string_view bytes) override;
  void OnComplete() override;

  HttpConnectionOwner& owner_;
  protocol::http1::ResponseReader reader_;
  uint64_t response_bytes_ = 0;
  Clock::time_point read_at_{};  // when the bytes being fed were read
  State state_ = State::kClosed;
  bool completed_ = false;  // the reader completed the response being fed
  bool keep_alive_ = true;  // of the response being fed
};

extern template class HttpConnection<false>;
extern template class HttpConnection<true>;

}  // namespace llmload::worker
