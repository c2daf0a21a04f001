// File: transport.h
//
// ServerStream: one accepted connection, plain TCP or TLS, behind one type
// so the HTTP session and every WebSocket endpoint serve both the plain
// port and the TLS port (--tls_port with --tls_cert_file/--tls_key_file)
// with the same code. It is a Beast AsyncStream: reads and writes go to
// the TLS layer when there is one, and its next layer is always the
// beast::tcp_stream (timeouts, closing the socket).
//
//   ServerStream plain(std::move(socket));
//   ServerStream tls(std::move(socket), ssl_context);  // then async_handshake
//
// Thread-compatible: confined to the connection's event loop.

#pragma once

#include <memory>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl/context.hpp"
#include "boost/asio/ssl/stream.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/websocket/ssl.hpp"
#include "boost/beast/websocket/teardown.hpp"

namespace llmload::emulator {

class ServerStream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  using tls_type = boost::asio::ssl::stream<boost::beast::tcp_stream>;

  explicit ServerStream(boost::asio::ip::tcp::socket&& socket) : plain_(std::move(socket)) {}
  ServerStream(boost::asio::ip::tcp::socket&& socket, boost::asio::ssl::context& context)
      : tls_(std::make_unique<tls_type>(std::move(socket), context)) {}
  ServerStream(ServerStream&&) = default;
  ServerStream& operator=(ServerStream&&) = default;

  bool is_tls() const { return tls_ != nullptr; }
  tls_type* tls() { return tls_.get(); }

  executor_type get_executor() { return next_layer().get_executor(); }
  boost::beast::tcp_stream& next_layer() { return tls_ ? tls_->next_layer() : *plain_; }
  const boost::beast::tcp_stream& next_layer() const {
    return tls_ ? tls_->next_layer() : *plain_;
  }

  template <class MutableBufferSequence, class ReadHandler>
  void async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
    if (tls_) {
      tls_->async_read_some(buffers, std::forward<ReadHandler>(handler));
    } else {
      plain_->async_read_some(buffers, std::forward<ReadHandler>(handler));
    }
  }

  template <class ConstBufferSequence, class WriteHandler>
  void async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
    if (tls_) {
      tls_->async_write_some(buffers, std::forward<WriteHandler>(handler));
    } else {
      plain_->async_write_some(buffers, std::forward<WriteHandler>(handler));
    }
  }

  // Closes the TCP socket at once (no TLS close_notify, no FIN handshake).
  void CloseNow() {
    boost::system::error_code ignored;
    next_layer().socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
    next_layer().socket().close(ignored);
  }

 private:
  std::optional<boost::beast::tcp_stream> plain_;
  std::unique_ptr<tls_type> tls_;
};

// WebSocket teardown for ServerStream (found by argument-dependent lookup).
inline void teardown(boost::beast::role_type role, ServerStream& stream,
                     boost::system::error_code& ec) {
  using boost::beast::teardown;
  using boost::beast::websocket::teardown;
  if (stream.tls() != nullptr) {
    teardown(role, *stream.tls(), ec);
  } else {
    teardown(role, stream.next_layer().socket(), ec);
  }
}

template <class TeardownHandler>
void async_teardown(boost::beast::role_type role, ServerStream& stream,
                    TeardownHandler&& handler) {
  using boost::beast::async_teardown;
  using boost::beast::websocket::async_teardown;
  if (stream.tls() != nullptr) {
    async_teardown(role, *stream.tls(), std::forward<TeardownHandler>(handler));
  } else {
    async_teardown(role, stream.next_layer(), std::forward<TeardownHandler>(handler));
  }
}

// A server TLS context from PEM files. INVALID_ARGUMENT naming the file
// that cannot be used.
absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const std::string& cert_file, const std::string& key_file);

}  // namespace llmload::emulator
