#include "services/worker/ws_connection.h"

#include <cstring>
#include <random>

#include "services/worker/lean_stream_impl.h"

namespace llmload::worker {
namespace {

namespace ws = protocol::ws;

// Masking keys and handshake nonces (RFC 6455 asks for unpredictable ones;
// a per-thread generator seeded from the OS is that, and costs nothing).
uint64_t NextRandom() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace

char* SharedReadBuffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kLoopReadBuffer]);
  return buffer.get();
}

template <bool kTls>
WsConnection<kTls>::WsConnection(net::io_context& ioc, WsConnectionOwner& owner,
                                 size_t max_message_bytes)
    : Stream(ioc), owner_(owner), reader_(max_message_bytes) {}

template <bool kTls>
WsConnection<kTls>::~WsConnection() {
  Drop();
}

template <bool kTls>
void WsConnection<kTls>::Open(const TargetInfo& target, std::string_view path,
                              const HeaderList& headers, uint64_t salt,
                              std::shared_ptr<void> keepalive) {
  Drop();
  reader_.Reset();
  state_ = State::kConnecting;
  refused_status_ = 0;
  close_code_ = 0;
  this->ConnectStream(StreamTarget::Of(target, /*websocket=*/true), salt, std::move(keepalive));
  // The upgrade request is ready before the connect completes; the target
  // and headers need not outlive this call.
  uint8_t nonce[16];
  const uint64_t a = NextRandom(), b = NextRandom();
  std::memcpy(nonce, &a, 8);
  std::memcpy(nonce + 8, &b, 8);
  key_ = ws::ClientKey(nonce);
  this->pending_out() = ws::UpgradeRequest(target.ws_host_header, path, key_, headers);
}

template <bool kTls>
void WsConnection<kTls>::OnStreamConnectFailed(std::string why) {
  End(WsEnd::kConnectFailed, why);
}

template <bool kTls>
void WsConnection<kTls>::OnStreamOpen() {
  state_ = State::kUpgrading;
  this->Flush();
  if (state_ == State::kUpgrading) {
    this->StartRead();
  }
}

template <bool kTls>
void WsConnection<kTls>::OnStreamReadError(const boost::system::error_code& ec) {
  End(state_ == State::kClosing ? WsEnd::kClosed : WsEnd::kLost, "read: " + ec.message());
}

template <bool kTls>
void WsConnection<kTls>::OnStreamBytes(const char* data, size_t n) {
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
    const uint64_t gen = this->gen();
    owner_.OnWsOpen(now);
    if (gen != this->gen() || bytes.empty()) {
      return;
    }
  }
  OnFrames(bytes, now);
}

template <bool kTls>
void WsConnection<kTls>::OnFrames(std::string_view data, Clock::time_point now) {
  const uint64_t gen = this->gen();
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
    if (ended || gen != this->gen()) {
      reader_.Stop();
    }
  });
  if (!s.ok() && !ended && gen == this->gen()) {
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
  // Built in a per-thread buffer, so that no session keeps a write buffer it
  // does not need: the stream copies only what the kernel does not take.
  thread_local std::string frame;
  frame.clear();
  ws::AppendClientFrame(frame, opcode, payload, static_cast<uint32_t>(NextRandom()));
  this->Write(frame);
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
  this->DropStream();
  std::string().swap(handshake_);
  std::string().swap(key_);
  state_ = State::kDone;
}

template class WsConnection<false>;
template class WsConnection<true>;

}  // namespace llmload::worker
