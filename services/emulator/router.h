// File: router.h
//
// Routes requests on the emulator's single port by method and path, so each
// protocol (the llm-emulator REST API and Centrifugo WebSocket today; Realm,
// WS chat, SSE providers and HTTP JSON later) lives in its own handler class
// and registers its routes here.
//
// HTTP handlers are plain functions from a request to a response (no
// sockets), so they are unit-tested directly. A response may carry an
// after_send action the connection runs once the response is written (the
// llm-emulator starts publishing only after /api/run has answered, as the
// original's background task does). WebSocket endpoints take over the
// socket after the upgrade request.
//
//   Router router;
//   router.AddHttp(http::verb::get, "/health", [](const HttpRequest&, std::string_view) {...});
//   router.AddHttpPrefix(http::verb::delete_, "/api/sessions/", handler);  // suffix = the id
//   router.AddWebSocket("/connection/websocket", &centrifugo_endpoint);
//
// Thread-safety: configure before serving; then const and shared by all
// loops.

#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http/message.hpp"
#include "boost/beast/http/string_body.hpp"
#include "boost/beast/http/verb.hpp"
#include "services/emulator/event_loop.h"
#include "services/emulator/stream.h"
#include "services/emulator/transport.h"

namespace llmload::emulator {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

struct HttpResponse {
  boost::beast::http::response<boost::beast::http::string_body> message;
  // Runs on the connection's loop once the response is fully written.
  absl::AnyInvocable<void() &&> after_send;
  // Wait this long before answering (a non-streaming response's
  // generation time).
  std::chrono::nanoseconds delay{0};
  // Close the connection after `delay` without answering (fault
  // "disconnect" of a non-streaming request).
  bool drop_connection = false;
  // A streaming body: the head of `message` is sent with chunked transfer
  // encoding, then the stream's steps as they fall due.
  std::unique_ptr<StreamSource> stream;
};

// A response with content-type application/json and the body's length.
HttpResponse JsonResponse(boost::beast::http::status status, std::string body);

// path_suffix: for prefix routes, the path after the prefix; else empty.
using HttpHandler = std::function<HttpResponse(const HttpRequest&, std::string_view path_suffix)>;

class WebSocketEndpoint {
 public:
  virtual ~WebSocketEndpoint() = default;
  // Takes over a connection whose request is a WebSocket upgrade for this
  // endpoint's path. Called on `loop`'s thread.
  virtual void Accept(ServerStream stream, HttpRequest request, ConnectionGuard guard,
                      EventLoop& loop) = 0;
};

class Router {
 public:
  void AddHttp(boost::beast::http::verb method, std::string path, HttpHandler handler);
  // Matches paths that start with prefix and have a non-empty suffix without '/'.
  void AddHttpPrefix(boost::beast::http::verb method, std::string prefix, HttpHandler handler);
  // GET <path> with an upgrade request.
  void AddWebSocket(std::string path, WebSocketEndpoint* endpoint);

  // The WebSocket endpoint registered for the request's path, or nullptr.
  WebSocketEndpoint* FindWebSocket(const HttpRequest& request) const;

  // Runs the matching HTTP handler. No route for the path: 404
  // {"detail":"Not Found"}; a route for the path but not the method: 405
  // {"detail":"Method Not Allowed"} with an allow header; a WebSocket path
  // without upgrade: 400. The query string is ignored for matching.
  HttpResponse Dispatch(const HttpRequest& request) const;

 private:
  struct Route {
    boost::beast::http::verb method;
    std::string path;
    bool prefix = false;
    HttpHandler handler;
  };
  std::vector<Route> routes_;
  std::vector<std::pair<std::string, WebSocketEndpoint*>> websockets_;
};

// The request target without its query string.
std::string_view RequestPath(const HttpRequest& request);

}  // namespace llmload::emulator
