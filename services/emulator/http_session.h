// File: http_session.h
//
// One accepted TCP connection speaking HTTP/1.1 with keep-alive: read a
// request (bounded header and body), route it, write the response, run the
// response's after_send action, repeat. A WebSocket upgrade for a
// registered path hands the socket to that endpoint.
//
// Errors answer and close: body too large 413, header too large 431,
// unparsable 400. A keep-alive connection idle for idle_timeout, or a write
// that stalls for write_timeout, is closed.
//
// Thread-compatible: confined to its event loop.

#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>

#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/string_body.hpp"
#include "services/emulator/event_loop.h"
#include "services/emulator/router.h"

namespace llmload::emulator {

struct HttpSessionOptions {
  std::chrono::nanoseconds idle_timeout = std::chrono::seconds(60);
  std::chrono::nanoseconds write_timeout = std::chrono::seconds(30);
  size_t max_body_bytes = 64 * 1024;
  size_t max_header_bytes = 8 * 1024;
};

class HttpSession final : public ServerConnection,
                          public std::enable_shared_from_this<HttpSession> {
 public:
  // options and router must outlive the session.
  HttpSession(boost::asio::ip::tcp::socket&& socket, const HttpSessionOptions& options,
              const Router& router, ConnectionGuard guard, EventLoop& loop);

  // Call on the loop's thread.
  void Start();

  // ServerConnection
  void Shutdown() override;

 private:
  void DoRead();
  void OnRead(boost::beast::error_code ec, std::size_t bytes);
  void Send(HttpResponse response, bool keep_alive);
  void OnWrite(bool keep_alive, boost::beast::error_code ec, std::size_t bytes);
  void DoClose();

  const HttpSessionOptions& options_;
  const Router& router_;
  ConnectionGuard guard_;
  EventLoop& loop_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  HttpResponse response_;  // alive while being written
};

}  // namespace llmload::emulator
