// File: http_pool.h
//
// HTTP/1.1 keep-alive connections to one target, shared by the sessions of
// one event loop (as a browser or undici pool shares them), so a session
// costs one WebSocket and not a socket more. Loop-confined: call only on the
// loop's thread.
//
// A request reports the time its response headers arrived (the "request"
// metric) and the complete response. A request that fails on a reused idle
// connection before any byte of the response arrived is retried once on a
// fresh connection (the server may have closed the idle one).

#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>

namespace llmload::worker {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct HttpResult {
  boost::system::error_code ec;  // transport error (net::error::timed_out on deadline)
  http::response<http::string_body> response;
  Clock::time_point headers_at;  // when the status line and headers were read
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

// One request: the message is built when a connection takes it, so that a
// request waiting for one (thousands may, when every session of a loop
// calls at once) holds two strings and not a whole message.
struct HttpCall {
  http::verb verb = http::verb::get;
  std::string target;
  std::string body;  // sent as application/json when not empty
};

class HttpPool : public std::enable_shared_from_this<HttpPool> {
 public:
  using Callback = std::function<void(HttpResult&&)>;

  // At most `max_conns` connections are open at once (idle or busy); further
  // requests wait in FIFO order for one to be released.
  HttpPool(net::io_context& ioc, std::vector<tcp::endpoint> endpoints, std::string host,
           std::chrono::milliseconds timeout, size_t max_conns);
  ~HttpPool();
  HttpPool(const HttpPool&) = delete;
  HttpPool& operator=(const HttpPool&) = delete;

  // Sends `call` with Host, Content-Length and keep-alive.
  void Request(HttpCall call, Callback cb);
  // Closes every idle and in-flight connection (their callbacks see an
  // error) and refuses nothing afterwards but keeps no idle connection. Call
  // it when the pool's owner is done: idle connections hold the pool alive.
  void CloseAll();
  size_t idle() const { return idle_.size(); }
  size_t waiting() const { return waiting_.size(); }

 private:
  class Conn;
  friend class Conn;
  void Release(std::shared_ptr<Conn> conn);
  // Starts waiting requests while connections are available.
  void Pump();
  void Dispatch(HttpCall call, Callback cb);
  http::request<http::string_body> Message(HttpCall call) const;

  net::io_context& ioc_;
  std::vector<tcp::endpoint> endpoints_;
  std::string host_;
  std::chrono::milliseconds timeout_;
  size_t max_conns_;
  std::deque<std::pair<HttpCall, Callback>> waiting_;
  std::vector<std::shared_ptr<Conn>> idle_;
  absl::flat_hash_set<Conn*> busy_;
  bool closed_ = false;
};

}  // namespace llmload::worker
