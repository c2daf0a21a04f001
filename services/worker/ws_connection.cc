#include "services/worker/ws_connection.h"

#include <cstring>
#include <random>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "services/worker/session_util.h"
#include "services/worker/tls.h"

namespace llmload::worker {
namespace {

namespace ws = protocol::ws;

// Masking keys and handshake nonces (RFC 6455 asks for unpredictable ones;
// a per-thread generator seeded from the OS is that, and costs nothing).
uint64_t NextRandom() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

template <bool kTls>
auto MakeIdleStream(net::io_context& ioc) {
  if constexpr (kTls) {
    return std::shared_ptr<net::ssl::stream<tcp::socket>>();
  } else {
    return LoopSocket(ioc.get_executor());
  }
}

}  // namespace

char* SharedReadBuffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kLoopReadBuffer]);
  return buffer.get();
}

template <bool kTls>
WsConnection<kTls>::WsConnection(net::io_context& ioc, WsConnectionOwner& owner,
                                 size_t max_message_bytes)
    : ioc_(ioc), owner_(owner), stream_(MakeIdleStream<kTls>(ioc)), reader_(max_message_bytes) {}

template <bool kTls>
WsConnection<kTls>::~WsConnection() {
  Drop();
}

template <bool kTls>
void WsConnection<kTls>::Open(const TargetInfo& target, std::string_view path,
                              const HeaderList& headers, uint64_t salt,
                              std::shared_ptr<void> keepalive) {
  Drop();
  keepalive_ = std::move(keepalive);
  if constexpr (kTls) {
    stream_ = std::make_shared<TlsStream>(ioc_, *target.tls_context);
    if (!tls_buffer_) {
      tls_buffer_.reset(new char[kTlsReadBuffer]);
    }
  }
  reader_.Reset();
  state_ = State::kConnecting;
  refused_status_ = 0;
  close_code_ = 0;
  // The upgrade request is ready before the connect completes; the target
  // and headers need not outlive this call.
  uint8_t nonce[16];
  const uint64_t a = NextRandom(), b = NextRandom();
  std::memcpy(nonce, &a, 8);
  std::memcpy(nonce + 8, &b, 8);
  key_ = ws::ClientKey(nonce);
  out_ = ws::UpgradeRequest(target.ws_host_header, path, key_, headers);
  const uint64_t gen = gen_;
  auto on_connected = [this, keep = keepalive_, s = TlsHold(), gen](
                          const boost::system::error_code& ec) { OnConnected(ec, gen); };
  if constexpr (kTls) {
    if (!SetUpTlsClient(*stream_, target.ws_host, target.verify)) {
      net::post(ioc_, [this, keep = keepalive_, gen] {
        if (gen == gen_) {
          End(WsEnd::kConnectFailed, "cannot set SNI");
        }
      });
      return;
    }
  }
  AsyncConnect(Socket(), target.ws_endpoints, target.source_addresses, salt,
               std::move(on_connected));
}

template <bool kTls>
void WsConnection<kTls>::OnConnected(const boost::system::error_code& ec, uint64_t gen) {
  if (gen != gen_) {
    return;
  }
  if (ec) {
    return End(WsEnd::kConnectFailed, "connect: " + ec.message());
  }
  boost::system::error_code ignored;
  Socket().set_option(tcp::no_delay(true), ignored);
  if constexpr (kTls) {
    stream_->async_handshake(net::ssl::stream_base::client,
                             [this, keep = keepalive_, s = TlsHold(),
                              gen](const boost::system::error_code& ec) {
                               if (gen != gen_) {
                                 return;
                               }
                               if (ec) {
                                 return End(WsEnd::kConnectFailed, "TLS: " + ec.message());
                               }
                               SendUpgrade();
                             });
  } else {
    Socket().non_blocking(true, ignored);
    SendUpgrade();
  }
}

template <bool kTls>
void WsConnection<kTls>::SendUpgrade() {
  state_ = State::kUpgrading;
  Flush();
  if (state_ == State::kUpgrading) {
    StartRead();
  }
}

template <bool kTls>
void WsConnection<kTls>::StartRead() {
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
            return End(state_ == State::kClosing ? WsEnd::kClosed : WsEnd::kLost,
                       "read: " + ec.message());
          }
          OnBytes(tls_buffer_.get(), n);
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

template <bool kTls>
void WsConnection<kTls>::OnRead(const boost::system::error_code& ec, size_t n, uint64_t gen) {
  if (gen != gen_) {
    return;
  }
  if (ec) {
    return End(state_ == State::kClosing ? WsEnd::kClosed : WsEnd::kLost,
               "read: " + ec.message());
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
      if (rec == net::error::would_block || rec == net::error::try_again) {
        break;
      }
      if (rec) {
        return End(state_ == State::kClosing ? WsEnd::kClosed : WsEnd::kLost,
                   "read: " + rec.message());
      }
      OnBytes(buffer, got);
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

template <bool kTls>
void WsConnection<kTls>::OnBytes(const char* data, size_t n) {
  const Clock::time_point now = Clock::now();
  std::string_view bytes(data, n);
  if (state_ == State::kUpgrading) {
    handshake_.append(bytes);
    const ws::UpgradeResponse r = ws::ParseUpgradeResponse(handshake_, key_);
    switch (r.state) {
      case ws::UpgradeResponse::State::kIncomplete:
        return;
      case ws::UpgradeResponse::State::kRefused:
        refused_status_ = r.status;
        return End(WsEnd::kUpgradeRefused, r.error);
      case ws::UpgradeResponse::State::kInvalid:
        return End(WsEnd::kProtocolError, r.error);
      case ws::UpgradeResponse::State::kAccepted:
        break;
    }
    // Frames may follow the header block in the same read.
    const size_t frames_in_handshake = handshake_.size() - r.header_bytes;
    bytes = bytes.substr(n - frames_in_handshake);
    std::string().swap(handshake_);
    std::string().swap(key_);
    state_ = State::kOpen;
    const uint64_t gen = gen_;
    owner_.OnWsOpen(now);
    if (gen != gen_ || bytes.empty()) {
      return;
    }
  }
  OnFrames(bytes, now);
}

template <bool kTls>
void WsConnection<kTls>::OnFrames(std::string_view data, Clock::time_point now) {
  const uint64_t gen = gen_;
  bool ended = false;
  const absl::Status s = reader_.Feed(data, [&](ws::Opcode op, std::string_view payload) {
    switch (op) {
      case ws::Opcode::kText:
      case ws::Opcode::kBinary:
        if (state_ == State::kOpen || state_ == State::kClosing) {
          owner_.OnWsMessage(payload, now);
        }
        break;
      case ws::Opcode::kPing:
        SendFrame(ws::Opcode::kPong, payload);
        break;
      case ws::Opcode::kPong:
      case ws::Opcode::kContinuation:
        break;
      case ws::Opcode::kClose: {
        ws::ClosePayload close;
        if (auto cs = ws::ParseClosePayload(payload, &close); !cs.ok()) {
          ended = true;
          End(WsEnd::kProtocolError, std::string(cs.message()));
          break;
        }
        close_code_ = close.code;
        ended = true;
        if (state_ == State::kClosing) {
          End(WsEnd::kClosed, "");
        } else {
          // Echo the close (RFC 6455 5.5.1), then drop the connection.
          const uint8_t echo[2] = {static_cast<uint8_t>(close.code >> 8),
                                   static_cast<uint8_t>(close.code & 0xff)};
          SendFrame(ws::Opcode::kClose,
                    close.code == 0 ? std::string_view()
                                    : std::string_view(reinterpret_cast<const char*>(echo), 2));
          End(WsEnd::kClosedByPeer, "closed by the target with code " + std::to_string(close.code));
        }
        break;
      }
    }
    if (ended || gen != gen_) {
      reader_.Stop();
    }
  });
  if (!s.ok() && !ended && gen == gen_) {
    // 1009 for a message over the limit, 1002 for anything else.
    const uint16_t code = s.code() == absl::StatusCode::kResourceExhausted ? 1009 : 1002;
    const uint8_t payload[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code & 0xff)};
    SendFrame(ws::Opcode::kClose, std::string_view(reinterpret_cast<const char*>(payload), 2));
    End(WsEnd::kProtocolError, std::string(s.message()));
  }
}

template <bool kTls>
void WsConnection<kTls>::SendText(std::string_view text) {
  if (state_ != State::kOpen) {
    return;
  }
  SendFrame(ws::Opcode::kText, text);
}

template <bool kTls>
void WsConnection<kTls>::SendFrame(ws::Opcode opcode, std::string_view payload) {
  const auto mask = static_cast<uint32_t>(NextRandom());
  if constexpr (!kTls) {
    if (HasSocket() && !write_pending_ && out_.empty()) {
      // The usual case: nothing queued, and the kernel takes the whole
      // frame. It is built in a per-thread buffer so that no session keeps
      // a write buffer it does not need.
      thread_local std::string frame;
      frame.clear();
      ws::AppendClientFrame(frame, opcode, payload, mask);
      boost::system::error_code ec;
      const size_t n = Socket().write_some(net::buffer(frame), ec);
      if (ec && ec != net::error::would_block && ec != net::error::try_again) {
        return;  // the read side sees the failure and reports it
      }
      if (n < frame.size()) {
        out_.assign(frame, n);
        Flush();
      }
      return;
    }
  }
  ws::AppendClientFrame(out_, opcode, payload, mask);
  Flush();
}

template <bool kTls>
void WsConnection<kTls>::Flush() {
  if (write_pending_ || out_.empty() || !HasSocket()) {
    return;
  }
  if constexpr (!kTls) {
    // Most frames are small: hand them to the kernel now.
    boost::system::error_code ec;
    const size_t n = Socket().write_some(net::buffer(out_), ec);
    if (ec && ec != net::error::would_block && ec != net::error::try_again) {
      // The read side sees the failure and reports it.
      out_.clear();
      return;
    }
    out_.erase(0, n);
    if (out_.empty()) {
      std::string().swap(out_);
      return;
    }
  }
  writing_.swap(out_);
  write_pending_ = true;
  const uint64_t gen = gen_;
  auto& stream = [this]() -> auto& {
    if constexpr (kTls) {
      return *stream_;
    } else {
      return stream_;
    }
  }();
  net::async_write(stream, net::buffer(writing_),
                   [this, keep = keepalive_, s = TlsHold(), gen](
                       const boost::system::error_code& ec, size_t) {
                     if (gen != gen_) {
                       return;
                     }
                     write_pending_ = false;
                     std::string().swap(writing_);
                     if (!ec) {
                       Flush();
                     }
                   });
}

template <bool kTls>
void WsConnection<kTls>::Close() {
  if (state_ != State::kOpen) {
    if (state_ != State::kClosing && state_ != State::kDone && state_ != State::kIdle) {
      End(WsEnd::kClosed, "closed before the upgrade");
    }
    return;
  }
  state_ = State::kClosing;
  const uint8_t normal[2] = {0x03, 0xe8};  // 1000
  SendFrame(ws::Opcode::kClose, std::string_view(reinterpret_cast<const char*>(normal), 2));
}

template <bool kTls>
void WsConnection<kTls>::End(WsEnd end, std::string_view why) {
  if (state_ == State::kDone || state_ == State::kIdle) {
    return;
  }
  Drop();
  owner_.OnWsEnd(end, why);
}

template <bool kTls>
void WsConnection<kTls>::Abort() {
  Drop();
}

template <bool kTls>
void WsConnection<kTls>::Drop() {
  ++gen_;
  if (HasSocket()) {
    boost::system::error_code ignored;
    Socket().close(ignored);
    if constexpr (kTls) {
      stream_.reset();
    }
  }
  std::string().swap(handshake_);
  std::string().swap(key_);
  std::string().swap(out_);
  std::string().swap(writing_);
  write_pending_ = false;
  state_ = State::kDone;
  keepalive_.reset();
}

template class WsConnection<false>;
template class WsConnection<true>;

}  // namespace llmload::worker
