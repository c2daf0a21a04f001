#include "services/worker/http_connection.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "services/worker/session_util.h"
#include "services/worker/tls.h"

namespace llmload::worker {
namespace {

namespace http1 = protocol::http1;

template <bool kTls>
auto MakeClosedStream(net::io_context& ioc) {
  if constexpr (kTls) {
    return std::shared_ptr<net::ssl::stream<tcp::socket>>();
  } else {
    return LoopSocket(ioc.get_executor());
  }
}

bool WouldBlock(const boost::system::error_code& ec) {
  return ec == net::error::would_block || ec == net::error::try_again;
}

}  // namespace

template <bool kTls>
HttpConnection<kTls>::HttpConnection(net::io_context& ioc, HttpConnectionOwner& owner)
    : ioc_(ioc), owner_(owner), stream_(MakeClosedStream<kTls>(ioc)) {}

template <bool kTls>
HttpConnection<kTls>::~HttpConnection() {
  Drop();
}

template <bool kTls>
void HttpConnection<kTls>::Open(const TargetInfo& target, uint64_t salt,
                                std::shared_ptr<void> keepalive) {
  Drop();
  keepalive_ = std::move(keepalive);
  state_ = State::kConnecting;
  response_bytes_ = 0;
  const uint64_t gen = gen_;
  if constexpr (kTls) {
    stream_ = std::make_shared<TlsStream>(ioc_, *target.tls_context);
    if (!tls_buffer_) {
      tls_buffer_.reset(new char[kTlsReadBuffer]);
    }
    if (!SetUpTlsClient(*stream_, target.host, target.verify)) {
      net::post(ioc_, [this, keep = keepalive_, gen] {
        if (gen == gen_) {
          End(HttpEnd::kConnectFailed, "cannot set SNI");
        }
      });
      return;
    }
  }
  AsyncConnect(Socket(), target.endpoints, target.source_addresses, salt,
               [this, keep = keepalive_, s = TlsHold(), gen](const boost::system::error_code& ec) {
                 OnConnected(ec, gen);
               });
}

template <bool kTls>
void HttpConnection<kTls>::OnConnected(const boost::system::error_code& ec, uint64_t gen) {
  if (gen != gen_) {
    return;
  }
  if (ec) {
    return End(HttpEnd::kConnectFailed, "connect: " + ec.message());
  }
  boost::system::error_code ignored;
  Socket().set_option(tcp::no_delay(true), ignored);
  if constexpr (kTls) {
    stream_->async_handshake(
        net::ssl::stream_base::client,
        [this, keep = keepalive_, s = TlsHold(), gen](const boost::system::error_code& ec) {
          if (gen != gen_) {
            return;
          }
          if (ec) {
            return End(HttpEnd::kConnectFailed, "TLS: " + ec.message());
          }
          Opened();
        });
  } else {
    Socket().non_blocking(true, ignored);
    Opened();
  }
}

template <bool kTls>
void HttpConnection<kTls>::Opened() {
  state_ = State::kIdle;
  StartRead();
  owner_.OnHttpOpen(Clock::now());
}

template <bool kTls>
void HttpConnection<kTls>::Send(std::string_view request) {
  if (state_ != State::kIdle) {
    return;
  }
  reader_.Reset();
  response_bytes_ = 0;
  completed_ = false;
  keep_alive_ = true;
  state_ = State::kAwaiting;
  if constexpr (!kTls) {
    if (!write_pending_ && out_.empty()) {
      // The usual case: the kernel takes the whole request at once, and
      // nothing of it is kept.
      boost::system::error_code ec;
      const size_t n = Socket().write_some(net::buffer(request), ec);
      if (ec && !WouldBlock(ec)) {
        return;  // the read side sees the failure and reports it
      }
      if (n == request.size()) {
        return;
      }
      request.remove_prefix(n);
    }
  }
  out_.append(request);
  Flush();
}

template <bool kTls>
void HttpConnection<kTls>::Flush() {
  if (write_pending_ || out_.empty() || !HasSocket()) {
    return;
  }
  if constexpr (!kTls) {
    boost::system::error_code ec;
    const size_t n = Socket().write_some(net::buffer(out_), ec);
    if (ec && !WouldBlock(ec)) {
      std::string().swap(out_);
      return;  // the read side sees the failure and reports it
    }
    out_.erase(0, n);
    if (out_.empty()) {
      std::string().swap(out_);
      return;
    }
  }
  // The rest goes out from a string of its own (rarely needed: the kernel
  // usually takes a whole request), so that out_ may grow meanwhile.
  writing_ = std::make_unique<std::string>(std::move(out_));
  std::string().swap(out_);
  write_pending_ = true;
  const uint64_t gen = gen_;
  auto& stream = [this]() -> auto& {
    if constexpr (kTls) {
      return *stream_;
    } else {
      return stream_;
    }
  }
  ();
  net::async_write(
      stream, net::buffer(*writing_),
      [this, keep = keepalive_, s = TlsHold(), gen](const boost::system::error_code& ec, size_t) {
        if (gen != gen_) {
          return;
        }
        write_pending_ = false;
        writing_.reset();
        if (!ec) {
          Flush();
        }
      });
}

template <bool kTls>
void HttpConnection<kTls>::StartRead() {
  const uint64_t gen = gen_;
  if constexpr (kTls) {
    stream_->async_read_some(net::buffer(tls_buffer_.get(), kTlsReadBuffer),
                             [this, keep = keepalive_, s = TlsHold(), gen](
                                 const boost::system::error_code& ec, size_t n) {
                               if (gen != gen_) {
                                 return;
                               }
                               if (ec) {
                                 return OnReadError(ec);
                               }
                               OnBytes(tls_buffer_.get(), n);
                               if (gen == gen_) {
                                 StartRead();
                               }
                             });
  } else {
    // A read, not a wait for readability (see WsConnection::StartRead).
    Socket().async_read_some(net::buffer(first_read_),
                             [this, keep = keepalive_, gen](const boost::system::error_code& ec,
                                                            size_t n) { OnRead(ec, n, gen); });
  }
}

template <bool kTls>
void HttpConnection<kTls>::OnRead(const boost::system::error_code& ec, size_t n, uint64_t gen) {
  if (gen != gen_) {
    return;
  }
  if (ec) {
    return OnReadError(ec);
  }
  OnBytes(first_read_.data(), n);
  if (gen != gen_) {
    return;
  }
  if (n == first_read_.size()) {
    // More may be waiting: drain it through the loop's shared buffer.
    char* buffer = SharedReadBuffer();
    for (;;) {
      boost::system::error_code rec;
      const size_t got = Socket().read_some(net::buffer(buffer, kLoopReadBuffer), rec);
      if (WouldBlock(rec)) {
        break;
      }
      if (rec) {
        return OnReadError(rec);
      }
      OnBytes(buffer, got);
      if (gen != gen_) {
        return;
      }
      if (got < kLoopReadBuffer) {
        break;  // drained: the next arrival wakes the reactor
      }
    }
  }
  StartRead();
}

template <bool kTls>
void HttpConnection<kTls>::OnReadError(const boost::system::error_code& ec) {
  if (state_ == State::kAwaiting && reader_.started()) {
    // A body delimited by the end of the connection ends here; any other
    // response is cut short.
    completed_ = false;
    read_at_ = Clock::now();
    const uint64_t gen = gen_;
    const absl::Status s = reader_.OnEof(*this);
    if (gen != gen_) {
      return;
    }
    if (s.ok() && completed_) {
      state_ = State::kIdle;
      Drop();
      owner_.OnHttpComplete(/*keep_alive=*/false, read_at_);
      return;
    }
  }
  End(HttpEnd::kLost, "read: " + ec.message());
}

template <bool kTls>
void HttpConnection<kTls>::OnBytes(const char* data, size_t n) {
  if (state_ != State::kAwaiting) {
    return End(HttpEnd::kProtocolError, "bytes from the target with no request in flight");
  }
  read_at_ = Clock::now();
  response_bytes_ += n;
  completed_ = false;
  const uint64_t gen = gen_;
  const absl::StatusOr<size_t> consumed = reader_.Feed(std::string_view(data, n), *this);
  if (gen != gen_) {
    return;  // the owner aborted
  }
  if (!consumed.ok()) {
    return End(HttpEnd::kProtocolError, std::string(consumed.status().message()));
  }
  if (!completed_) {
    return;
  }
  if (*consumed < n) {
    return End(HttpEnd::kProtocolError, "bytes after the end of the response");
  }
  state_ = State::kIdle;
  const bool keep = keep_alive_;
  if (!keep) {
    Drop();
  }
  owner_.OnHttpComplete(keep, read_at_);
}

template <bool kTls>
void HttpConnection<kTls>::OnHead(const http1::ResponseHead& head) {
  keep_alive_ = head.keep_alive;
  owner_.OnHttpHead(head, read_at_);
}

template <bool kTls>
bool HttpConnection<kTls>::OnBody(std::string_view bytes) {
  const uint64_t gen = gen_;
  return owner_.OnHttpBody(bytes, read_at_) && gen == gen_;
}

template <bool kTls>
void HttpConnection<kTls>::OnComplete() {
  completed_ = true;
}

template <bool kTls>
void HttpConnection<kTls>::End(HttpEnd end, std::string_view why) {
  if (state_ == State::kClosed) {
    return;
  }
  const uint64_t bytes = state_ == State::kAwaiting ? response_bytes_ : 0;
  Drop();
  owner_.OnHttpEnd(end, bytes, why);
}

template <bool kTls>
void HttpConnection<kTls>::Abort() {
  Drop();
}

template <bool kTls>
void HttpConnection<kTls>::Drop() {
  ++gen_;
  if (HasSocket()) {
    boost::system::error_code ignored;
    Socket().close(ignored);
    if constexpr (kTls) {
      stream_.reset();
    }
  }
  std::string().swap(out_);
  writing_.reset();
  write_pending_ = false;
  state_ = State::kClosed;
  keepalive_.reset();
}

template class HttpConnection<false>;
template class HttpConnection<true>;

}  // namespace llmload::worker
