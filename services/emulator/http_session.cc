#include "services/emulator/http_session.h"

#include <utility>

#include "boost/beast/core/bind_handler.hpp"
#include "boost/beast/http/error.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/write.hpp"
#include "boost/beast/websocket/rfc6455.hpp"
#include "lib/common/log.h"

namespace llmload::emulator {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

}  // namespace

HttpSession::HttpSession(net::ip::tcp::socket&& socket, const HttpSessionOptions& options,
                         const Router& router, ConnectionGuard guard, EventLoop& loop)
    : options_(options),
      router_(router),
      guard_(std::move(guard)),
      loop_(loop),
      stream_(std::move(socket)) {}

void HttpSession::Start() {
  loop_.Track(weak_from_this());
  DoRead();
}

void HttpSession::Shutdown() {
  beast::error_code ignored;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  stream_.close();
}

void HttpSession::DoRead() {
  parser_.emplace();
  parser_->body_limit(options_.max_body_bytes);
  parser_->header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
  stream_.expires_after(options_.idle_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
}

void HttpSession::OnRead(beast::error_code ec, std::size_t) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
      ec == net::error::operation_aborted) {
    return DoClose();
  }
  if (ec == http::error::body_limit) {
    return Send(JsonResponse(http::status::payload_too_large,
                             "{\"detail\":\"Request body too large\"}"),
                false);
  }
  if (ec == http::error::header_limit) {
    return Send(JsonResponse(http::status::request_header_fields_too_large,
                             "{\"detail\":\"Request header fields too large\"}"),
                false);
  }
  if (ec) {
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      return Send(JsonResponse(http::status::bad_request, "{\"detail\":\"Bad Request\"}"), false);
    }
    LLMLOAD_LOG(kDebug, "HTTP read failed.").Kv("error", ec.message());
    return DoClose();
  }
  HttpRequest request = parser_->release();
  if (beast::websocket::is_upgrade(request)) {
    if (WebSocketEndpoint* endpoint = router_.FindWebSocket(request); endpoint != nullptr) {
      stream_.expires_never();
      endpoint->Accept(stream_.release_socket(), std::move(request), std::move(guard_), loop_);
      return;
    }
  }
  const bool keep_alive = request.keep_alive();
  HttpResponse response = router_.Dispatch(request);
  response.message.version(request.version());
  Send(std::move(response), keep_alive);
}

void HttpSession::Send(HttpResponse response, bool keep_alive) {
  response_ = std::move(response);
  response_.message.keep_alive(keep_alive);
  response_.message.set(http::field::server, "llmload-emulator");
  stream_.expires_after(options_.write_timeout);
  http::async_write(stream_, response_.message,
                    beast::bind_front_handler(&HttpSession::OnWrite, shared_from_this(),
                                              keep_alive));
}

void HttpSession::OnWrite(bool keep_alive, beast::error_code ec, std::size_t) {
  if (ec) {
    LLMLOAD_LOG(kDebug, "HTTP write failed.").Kv("error", ec.message());
    return DoClose();
  }
  if (response_.after_send) {
    auto action = std::move(response_.after_send);
    response_.after_send = nullptr;
    std::move(action)();
  }
  if (!keep_alive) {
    return DoClose();
  }
  DoRead();
}

void HttpSession::DoClose() {
  beast::error_code ignored;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
}

}  // namespace llmload::emulator
