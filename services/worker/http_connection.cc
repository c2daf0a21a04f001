#include "services/worker/http_connection.h"

#include "services/worker/lean_stream_impl.h"

namespace llmload::worker {

namespace http1 = protocol::http1;

template <bool kTls>
HttpConnection<kTls>::HttpConnection(net::io_context& ioc, HttpConnectionOwner& owner)
    : Stream(ioc), owner_(owner) {}

template <bool kTls>
HttpConnection<kTls>::~HttpConnection() {
  Drop();
}

template <bool kTls>
void HttpConnection<kTls>::Open(const TargetInfo& target, uint64_t salt,
                                std::shared_ptr<void> keepalive) {
  Drop();
  state_ = State::kConnecting;
  response_bytes_ = 0;
  this->ConnectStream(StreamTarget::Of(target, /*websocket=*/false), salt, std::move(keepalive));
}

template <bool kTls>
void HttpConnection<kTls>::OnStreamConnectFailed(std::string why) {
  End(HttpEnd::kConnectFailed, why);
}

template <bool kTls>
void HttpConnection<kTls>::OnStreamOpen() {
  state_ = State::kIdle;
  this->StartRead();
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
  this->Write(request);
}

template <bool kTls>
void HttpConnection<kTls>::OnStreamReadError(const boost::system::error_code& ec) {
  if (state_ == State::kAwaiting && reader_.started()) {
    // A body delimited by the end of the connection ends here; any other
    // response is cut short.
    completed_ = false;
    read_at_ = Clock::now();
    const uint64_t gen = this->gen();
    const absl::Status s = reader_.OnEof(*this);
    if (gen != this->gen()) {
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
void HttpConnection<kTls>::OnStreamBytes(const char* data, size_t n) {
  if (state_ != State::kAwaiting) {
    return End(HttpEnd::kProtocolError, "bytes from the target with no request in flight");
  }
  read_at_ = Clock::now();
  response_bytes_ += n;
  completed_ = false;
  const uint64_t gen = this->gen();
  const absl::StatusOr<size_t> consumed = reader_.Feed(std::string_view(data, n), *this);
  if (gen != this->gen()) {
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
  const uint64_t gen = this->gen();
  return owner_.OnHttpBody(bytes, read_at_) && gen == this->gen();
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
  this->DropStream();
  state_ = State::kClosed;
}

template class HttpConnection<false>;
template class HttpConnection<true>;

}  // namespace llmload::worker
