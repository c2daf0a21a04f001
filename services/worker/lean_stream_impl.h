// File: lean_stream_impl.h
//
// The member functions of LeanStream (lean_stream.h), for the .cc files
// that instantiate a connection over it.

#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "services/worker/lean_stream.h"
#include "services/worker/session_util.h"
#include "services/worker/tls.h"

namespace llmload::worker {

inline bool WouldBlock(const boost::system::error_code& ec) {
  return ec == net::error::would_block || ec == net::error::try_again;
}

template <class Derived, bool kTls>
LeanStream<Derived, kTls>::LeanStream(net::io_context& ioc) : ioc_(ioc), stream_([&ioc] {
  if constexpr (kTls) {
    return std::shared_ptr<TlsStream>();
  } else {
    return LoopSocket(ioc.get_executor());
  }
}()) {}

template <class Derived, bool kTls>
void LeanStream<Derived, kTls>::ConnectStream(const StreamTarget& target, uint64_t salt,
                                              std::shared_ptr<void> keepalive) {
  DropStream();
  keepalive_ = std::move(keepalive);
  const uint64_t gen = gen_;
  if constexpr (kTls) {
    stream_ = std::make_shared<TlsStream>(ioc_, *target.tls_context);
    if (!tls_buffer_) {
      tls_buffer_.reset(new char[kTlsReadBuffer]);
    }
    if (!SetUpTlsClient(*stream_, *target.host, target.verify)) {
      net::post(ioc_, [this, keep = keepalive_, gen] {
        if (gen == gen_) {
          Self().OnStreamConnectFailed("cannot set SNI");
        }
      });
      return;
    }
  }
  AsyncConnect(Socket(), *target.endpoints, *target.sources, salt,
               [this, keep = keepalive_, s = TlsHold(), gen](const boost::system::error_code& ec) {
                 OnConnected(ec, gen);
               });
}

template <class Derived, bool kTls>
void LeanStream<Derived, kTls>::OnConnected(const boost::system::error_code& ec, uint64_t gen) {
  if (gen != gen_) {
    return;
  }
  if (ec) {
    return Self().OnStreamConnectFailed("connect: " + ec.message());
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
            return Self().OnStreamConnectFailed("TLS: " + ec.message());
          }
          Self().OnStreamOpen();
        });
  } else {
    Socket().non_blocking(true, ignored);
    Self().OnStreamOpen();
  }
}

template <class Derived, bool kTls>
void LeanStream<Derived, kTls>::StartRead() {
  const uint64_t gen = gen_;
  if constexpr (kTls) {
    stream_->async_read_some(
        net::buffer(tls_buffer_.get(), kTlsReadBuffer),
        [this, keep = keepalive_, s = TlsHold(), gen](const boost::system::error_code& ec,
                                                      size_t n) {
          if (gen != gen_) {
            return;
          }
          if (ec) {
            return Self().OnStreamReadError(ec);
          }
          Self().OnStreamBytes(tls_buffer_.get(), n);
          if (gen == gen_) {
            StartRead();
          }
        });
  } else {
    // A read (not a wait for readability): asio tries it at once only when
    // the last read filled its buffer, and otherwise queues it without a
    // system call, while a wait would re-arm epoll (epoll_ctl) every time.
    Socket().async_read_some(
        net::buffer(first_read_),
        [this, keep = keepalive_, gen](const boost::system::error_code& ec, size_t n) {
          OnRead(ec, n, gen);
        });
  }
}

template <class Derived, bool kTls>
void LeanStream<Derived, kTls>::OnRead(const boost::system::error_code& ec, size_t n,
                                       uint64_t gen) {
  if (gen != gen_) {
    return;
  }
  if (ec) {
    return Self().OnStreamReadError(ec);
  }
  Self().OnStreamBytes(first_read_.data(), n);
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
        return Self().OnStreamReadError(rec);
      }
      Self().OnStreamBytes(buffer, got);
      if (gen != gen_) {
        return;
      }
      // A short read drained the socket: the next arrival wakes the reactor
      // again, so there is no need to spend a system call on EAGAIN.
      if (got < kLoopReadBuffer) {
        break;
      }
    }
  }
  StartRead();
}

template <class Derived, bool kTls>
void LeanStream<Derived, kTls>::Write(std::string_view bytes) {
  if constexpr (!kTls) {
    if (HasSocket() && !write_pending_ && out_.empty()) {
      // The usual case: the kernel takes it all, and nothing is kept.
      boost::system::error_code ec;
      const size_t n = Socket().write_some(net::buffer(bytes), ec);
      if (ec && !WouldBlock(ec)) {
        return;  // the read side sees the failure and reports it
      }
      if (n == bytes.size()) {
        return;
      }
      bytes.remove_prefix(n);
    }
  }
  out_.append(bytes);
  Flush();
}

template <class Derived, bool kTls>
void LeanStream<Derived, kTls>::Flush() {
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
  // usually takes everything at once), so that out_ may grow meanwhile.
  writing_ = std::make_unique<std::string>(std::move(out_));
  std::string().swap(out_);
  write_pending_ = true;
  const uint64_t gen = gen_;
  net::async_write(Stream(), net::buffer(*writing_),
                   [this, keep = keepalive_, s = TlsHold(), gen](
                       const boost::system::error_code& ec, size_t) {
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

template <class Derived, bool kTls>
void LeanStream<Derived, kTls>::DropStream() {
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
  keepalive_.reset();
}

}  // namespace llmload::worker
