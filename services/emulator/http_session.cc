#include "services/emulator/http_session.h"

#include <cstdio>
#include <utility>

#include "boost/asio/ssl/stream_base.hpp"
#include "boost/asio/write.hpp"
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

HttpSession::HttpSession(ServerStream&& stream, const HttpSessionOptions& options,
                         const Router& router, ConnectionGuard guard, EventLoop& loop,
                         bool over_limit)
    : options_(options),
      router_(router),
      guard_(std::move(guard)),
      loop_(loop),
      over_limit_(over_limit),
      stream_(std::move(stream)),
      delay_timer_(loop.context()),
      runner_(loop.context()) {}

void HttpSession::Start() {
  loop_.Track(weak_from_this());
  if (stream_.is_tls()) {
    stream_.next_layer().expires_after(options_.write_timeout);
    stream_.tls()->async_handshake(
        net::ssl::stream_base::server,
        beast::bind_front_handler(&HttpSession::OnHandshake, shared_from_this()));
    return;
  }
  DoRead();
}

void HttpSession::OnHandshake(beast::error_code ec) {
  if (ec) {
    LLMLOAD_LOG(kDebug, "TLS handshake failed.").Kv("error", ec.message());
    return Drop();
  }
  DoRead();
}

void HttpSession::Shutdown() {
  if (dropped_) {
    return;
  }
  Drop();
}

void HttpSession::DoRead() {
  parser_.emplace();
  parser_->body_limit(options_.max_body_bytes);
  parser_->header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
  stream_.next_layer().expires_after(options_.idle_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
}

void HttpSession::OnRead(beast::error_code ec, std::size_t) {
  if (dropped_) {
    return;
  }
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
  if (over_limit_) {
    HttpResponse busy = JsonResponse(http::status::service_unavailable,
                                     "{\"detail\":\"Server at capacity\"}");
    busy.message.version(request.version());
    return Send(std::move(busy), false);
  }
  if (beast::websocket::is_upgrade(request)) {
    if (WebSocketEndpoint* endpoint = router_.FindWebSocket(request); endpoint != nullptr) {
      stream_.next_layer().expires_never();
      dropped_ = true;  // the endpoint owns the connection from here
      endpoint->Accept(std::move(stream_), std::move(request), std::move(guard_), loop_);
      return;
    }
  }
  const bool keep_alive = request.keep_alive();
  HttpResponse response = router_.Dispatch(request);
  response.message.version(request.version());
  Respond(std::move(response), keep_alive);
}

void HttpSession::Respond(HttpResponse response, bool keep_alive) {
  if (response.delay <= std::chrono::nanoseconds(0)) {
    if (response.drop_connection) {
      return Drop();
    }
    return Send(std::move(response), keep_alive);
  }
  response_ = std::move(response);
  keep_alive_ = keep_alive;
  delay_timer_.expires_after(response_.delay);
  delay_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->dropped_) {
      return;
    }
    HttpResponse r = std::move(self->response_);
    r.delay = std::chrono::nanoseconds(0);
    self->Respond(std::move(r), self->keep_alive_);
  });
}

void HttpSession::Send(HttpResponse response, bool keep_alive) {
  response_ = std::move(response);
  keep_alive_ = keep_alive;
  response_.message.keep_alive(keep_alive);
  response_.message.set(http::field::server, "llmload-emulator");
  stream_.next_layer().expires_after(options_.write_timeout);
  if (response_.stream != nullptr) {
    stream_head_.emplace();
    stream_head_->base() = response_.message.base();
    stream_head_->erase(http::field::content_length);
    stream_head_->chunked(true);
    stream_head_->keep_alive(keep_alive);
    head_serializer_.emplace(*stream_head_);
    head_sent_ = false;
    stream_finished_ = false;
    pending_.clear();
    http::async_write_header(
        stream_, *head_serializer_,
        beast::bind_front_handler(&HttpSession::OnStreamHeadWritten, shared_from_this()));
    return;
  }
  http::async_write(stream_, response_.message,
                    beast::bind_front_handler(&HttpSession::OnWrite, shared_from_this(),
                                              keep_alive));
}

void HttpSession::OnWrite(bool keep_alive, beast::error_code ec, std::size_t) {
  if (ec) {
    LLMLOAD_LOG(kDebug, "HTTP write failed.").Kv("error", ec.message());
    return Drop();
  }
  keep_alive_ = keep_alive;
  FinishRequest();
}

void HttpSession::FinishRequest() {
  if (response_.after_send) {
    auto action = std::move(response_.after_send);
    response_.after_send = nullptr;
    std::move(action)();
  }
  response_ = HttpResponse();
  if (!keep_alive_) {
    return DoClose();
  }
  DoRead();
}

void HttpSession::OnStreamHeadWritten(beast::error_code ec, std::size_t) {
  head_serializer_.reset();
  if (ec || dropped_) {
    return Drop();
  }
  head_sent_ = true;
  stream_.next_layer().expires_never();
  runner_.Start(std::move(response_.stream), this, shared_from_this());
}

void HttpSession::EmitData(std::string data) {
  if (dropped_) {
    return;
  }
  pending_ += data;
  if (pending_.size() > options_.max_stream_backlog_bytes) {
    LLMLOAD_LOG(kWarn, "HTTP client too slow for its stream; dropping it.")
        .Kv("queued_bytes", pending_.size());
    Drop();
  }
}

void HttpSession::Flush() {
  if (!dropped_ && !write_in_flight_ && !pending_.empty()) {
    WriteChunk();
  }
}

void HttpSession::Finished() {
  if (dropped_) {
    return;
  }
  stream_finished_ = true;
  if (!write_in_flight_) {
    WriteChunk();
  }
}

void HttpSession::Disconnect() { Drop(); }

void HttpSession::WriteChunk() {
  writing_.clear();
  if (!pending_.empty()) {
    char size[24];
    const int n = std::snprintf(size, sizeof(size), "%zx\r\n", pending_.size());
    writing_.reserve(static_cast<size_t>(n) + pending_.size() + 7);
    writing_.append(size, static_cast<size_t>(n));
    writing_ += pending_;
    writing_ += "\r\n";
    pending_.clear();
  }
  terminator_in_flight_ = stream_finished_;
  if (terminator_in_flight_) {
    writing_ += "0\r\n\r\n";
  }
  write_in_flight_ = true;
  stream_.next_layer().expires_after(options_.write_timeout);
  net::async_write(stream_, net::buffer(writing_),
                   beast::bind_front_handler(&HttpSession::OnChunkWritten, shared_from_this()));
}

void HttpSession::OnChunkWritten(beast::error_code ec, std::size_t) {
  write_in_flight_ = false;
  if (dropped_) {
    return;
  }
  if (ec) {
    LLMLOAD_LOG(kDebug, "HTTP stream write failed.").Kv("error", ec.message());
    return Drop();
  }
  stream_.next_layer().expires_never();
  if (terminator_in_flight_) {
    terminator_in_flight_ = false;
    head_sent_ = false;
    stream_finished_ = false;
    return FinishRequest();
  }
  if (!pending_.empty() || stream_finished_) {
    WriteChunk();
  }
}

void HttpSession::DoClose() {
  if (dropped_) {
    return;
  }
  beast::error_code ignored;
  stream_.next_layer().socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
}

void HttpSession::Drop() {
  if (dropped_) {
    return;
  }
  dropped_ = true;
  runner_.Cancel();
  delay_timer_.cancel();
  stream_.CloseNow();
}

}  // namespace llmload::emulator
