// File: http_session.h
//
// One accepted connection (plain TCP or TLS) speaking HTTP/1.1 with
// keep-alive: read a request (bounded header and body), route it, write the
// response, run the response's after_send action, repeat. A WebSocket
// upgrade for a registered path hands the connection to that endpoint.
//
// Responses come in three shapes (router.h): a whole message (optionally
// after a delay), no answer at all (the connection is dropped: fault
// injection), or a streaming body. A streaming body is sent with
// Transfer-Encoding: chunked, one chunk per batch of due steps; at most one
// write is in flight and bytes produced meanwhile are joined into the next
// chunk. A client that lets more than max_stream_backlog_bytes pile up is
// dropped.
//
// Errors answer and close: body too large 413, header too large 431,
// unparsable 400. A keep-alive connection idle for idle_timeout, a TLS
// handshake or a write that stalls for write_timeout, is closed. A
// connection accepted beyond the connection limit answers its one request
// with 503 "Server at capacity" and closes.
//
// Thread-compatible: confined to its event loop.

#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "boost/asio/steady_timer.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http/empty_body.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/serializer.hpp"
#include "boost/beast/http/string_body.hpp"
#include "services/emulator/event_loop.h"
#include "services/emulator/router.h"
#include "services/emulator/stream.h"
#include "services/emulator/transport.h"

namespace llmload::emulator {

struct HttpSessionOptions {
  std::chrono::nanoseconds idle_timeout = std::chrono::seconds(60);
  std::chrono::nanoseconds write_timeout = std::chrono::seconds(30);
  size_t max_body_bytes = 64 * 1024;
  size_t max_header_bytes = 8 * 1024;
  size_t max_stream_backlog_bytes = 4 * 1024 * 1024;
};

class HttpSession final : public ServerConnection,
                          public StreamSink,
                          public std::enable_shared_from_this<HttpSession> {
 public:
  // options and router must outlive the session. over_limit: the connection
  // was accepted beyond the connection limit (answer 503 and close).
  HttpSession(ServerStream&& stream, const HttpSessionOptions& options, const Router& router,
              ConnectionGuard guard, EventLoop& loop, bool over_limit = false);

  // Call on the loop's thread. Performs the TLS handshake first when the
  // stream is TLS.
  void Start();

  // ServerConnection
  void Shutdown() override;

  // StreamSink (the streaming body)
  void EmitData(std::string data) override;
  void Flush() override;
  void Disconnect() override;
  void Finished() override;

 private:
  void OnHandshake(boost::beast::error_code ec);
  void DoRead();
  void OnRead(boost::beast::error_code ec, std::size_t bytes);
  void Respond(HttpResponse response, bool keep_alive);
  void Send(HttpResponse response, bool keep_alive);
  void OnWrite(bool keep_alive, boost::beast::error_code ec, std::size_t bytes);
  void OnStreamHeadWritten(boost::beast::error_code ec, std::size_t bytes);
  void WriteChunk();
  void OnChunkWritten(boost::beast::error_code ec, std::size_t bytes);
  void FinishRequest();
  void DoClose();
  void Drop();

  const HttpSessionOptions& options_;
  const Router& router_;
  ConnectionGuard guard_;
  EventLoop& loop_;
  const bool over_limit_;
  ServerStream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  HttpResponse response_;  // alive while being written
  bool keep_alive_ = false;
  boost::asio::steady_timer delay_timer_;

  // Streaming body.
  StreamRunner runner_;
  std::optional<boost::beast::http::response<boost::beast::http::empty_body>> stream_head_;
  std::optional<boost::beast::http::response_serializer<boost::beast::http::empty_body>>
      head_serializer_;
  std::string pending_;  // produced, not yet written
  std::string writing_;  // the chunk being written (framing included)
  bool write_in_flight_ = false;
  bool head_sent_ = false;
  bool stream_finished_ = false;
  bool terminator_in_flight_ = false;
  bool dropped_ = false;
};

}  // namespace llmload::emulator
