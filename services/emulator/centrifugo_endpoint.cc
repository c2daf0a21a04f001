#include "services/emulator/centrifugo_endpoint.h"

#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "boost/asio/steady_timer.hpp"
#include "boost/beast/core/bind_handler.hpp"
#include "boost/beast/core/buffers_to_string.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/websocket.hpp"
#include "lib/common/log.h"
#include "services/emulator/ids.h"

namespace llmload::emulator {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace websocket = beast::websocket;
namespace centrifugo = protocol::centrifugo;
using tcp = net::ip::tcp;

// Queued frames are joined up to this size into one WebSocket message.
constexpr size_t kMaxBatchBytes = 64 * 1024;

class CentrifugoSession final : public ServerConnection,
                                public ChannelSubscriber,
                                public CentrifugoChannels,
                                public std::enable_shared_from_this<CentrifugoSession> {
 public:
  CentrifugoSession(ServerStream&& stream, const CentrifugoEndpointOptions& options,
                    ChannelHub* hub, ConnectionGuard guard, EventLoop& loop)
      : options_(options),
        hub_(hub),
        guard_(std::move(guard)),
        loop_(loop),
        ws_(std::move(stream)),
        ping_timer_(loop.context()),
        pong_timer_(loop.context()),
        deadline_timer_(loop.context()),
        expiry_timer_(loop.context()),
        handler_(&options.handler, this, NewUuid4()) {}

  ~CentrifugoSession() override { handler_.OnClosed(); }

  void Run(HttpRequest request) {
    websocket::stream_base::timeout timeouts;
    timeouts.handshake_timeout = options_.handshake_timeout;
    timeouts.idle_timeout = websocket::stream_base::none();  // app-level pings instead
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    ws_.read_message_max(options_.max_message_bytes);
    // JSON is the default; echo the subprotocol when a client names it.
    const auto protocols = request[http::field::sec_websocket_protocol];
    const bool json_subprotocol =
        absl::StrContains(absl::string_view(protocols.data(), protocols.size()), "centrifuge-json");
    ws_.set_option(websocket::stream_base::decorator([json_subprotocol](websocket::response_type& res) {
      res.set(http::field::server, "llmload-emulator");
      if (json_subprotocol) {
        res.set(http::field::sec_websocket_protocol, "centrifuge-json");
      }
    }));
    ws_.async_accept(request,
                     beast::bind_front_handler(&CentrifugoSession::OnAccept, shared_from_this()));
  }

  // ServerConnection
  void Shutdown() override { Close(centrifugo::ServerDisconnectCode::kShutdown, false); }

  // ChannelSubscriber
  void DeliverPush(std::string frame) override { Enqueue(std::move(frame)); }
  void DeliverFault(Fault fault) override {
    if (fault == Fault::kDisconnect) {
      Teardown();
      beast::error_code ignored;
      beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
      beast::get_lowest_layer(ws_).socket().close(ignored);
    } else if (fault == Fault::kMalformed) {
      Enqueue("{\"push\":{\"channel\":");
    }
  }

  // CentrifugoChannels
  centrifugo::ServerSubscription Subscribe(const std::string& channel,
                                           const centrifugo::SubRecovery& recovery) override {
    return hub_->Subscribe(channel, weak_from_this(), this, &loop_.context(), recovery);
  }
  void Unsubscribe(const std::string& channel) override { hub_->Unsubscribe(channel, this); }

 private:
  void OnAccept(beast::error_code ec) {
    if (ec) {
      LLMLOAD_LOG(kDebug, "WebSocket handshake failed.").Kv("error", ec.message());
      return;
    }
    loop_.Track(weak_from_this());
    deadline_timer_.expires_after(options_.stale_timeout);
    deadline_timer_.async_wait(
        beast::bind_front_handler(&CentrifugoSession::OnDeadline, shared_from_this()));
    DoRead();
  }

  void DoRead() {
    ws_.async_read(buffer_,
                   beast::bind_front_handler(&CentrifugoSession::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t bytes) {
    if (ec) {
      if (ec != websocket::error::closed && ec != net::error::operation_aborted &&
          ec != net::error::eof) {
        LLMLOAD_LOG(kDebug, "WebSocket read ended.")
            .Kv("client", handler_.client_id())
            .Kv("error", ec.message());
      }
      return Teardown();
    }
    if (!closing_) {
      const auto data = buffer_.cdata();
      const std::string_view text(static_cast<const char*>(data.data()), data.size());
      CentrifugoOutput out = handler_.OnMessage(text, absl::ToUnixSeconds(absl::Now()));
      Apply(std::move(out));
    }
    buffer_.consume(bytes);
    DoRead();
  }

  void Apply(CentrifugoOutput out) {
    if (!out.frame.empty()) {
      Enqueue(std::move(out.frame));
    }
    if (out.connected) {
      deadline_timer_.cancel();
      ArmPing();
    }
    if (out.expires_at_unix.has_value()) {
      const int64_t left =
          std::max<int64_t>(0, *out.expires_at_unix - absl::ToUnixSeconds(absl::Now()));
      expiry_timer_.expires_after(std::chrono::seconds(left));
      expiry_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (!ec && !self->closing_) {
          self->Apply(self->handler_.OnExpiryDeadline(absl::ToUnixSeconds(absl::Now())));
        }
      });
    }
    if (out.disconnect.has_value()) {
      Close(*out.disconnect, true);
    }
  }

  void Enqueue(std::string frame) {
    if (closing_) {
      return;
    }
    outbox_bytes_ += frame.size();
    if (outbox_bytes_ > options_.max_outbox_bytes) {
      LLMLOAD_LOG(kWarn, "WebSocket client too slow; closing.")
          .Kv("client", handler_.client_id())
          .Kv("queued_bytes", outbox_bytes_);
      Close(centrifugo::ServerDisconnectCode::kSlow, false);
      return;
    }
    outbox_.push_back(std::move(frame));
    if (!writing_) {
      DoWrite();
    }
  }

  void DoWrite() {
    current_ = std::move(outbox_.front());
    outbox_.pop_front();
    outbox_bytes_ -= current_.size();
    while (!outbox_.empty() && current_.size() + 1 + outbox_.front().size() <= kMaxBatchBytes) {
      current_.push_back('\n');
      current_ += outbox_.front();
      outbox_bytes_ -= outbox_.front().size();
      outbox_.pop_front();
    }
    writing_ = true;
    ws_.text(true);
    ws_.async_write(net::buffer(current_),
                    beast::bind_front_handler(&CentrifugoSession::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    writing_ = false;
    if (ec) {
      return Teardown();  // the pending read fails too and ends the session
    }
    if (!outbox_.empty()) {
      DoWrite();
    } else if (close_pending_) {
      DoClose();
    }
  }

  // Starts the close handshake once queued frames are written (flush) or
  // at once (queued frames dropped).
  void Close(centrifugo::ServerDisconnectCode code, bool flush) {
    if (closing_) {
      return;
    }
    closing_ = true;
    close_code_ = code;
    handler_.OnClosed();
    ping_timer_.cancel();
    pong_timer_.cancel();
    expiry_timer_.cancel();
    if (!flush) {
      outbox_.clear();
      outbox_bytes_ = 0;
    }
    deadline_timer_.expires_after(options_.close_timeout);
    deadline_timer_.async_wait(
        beast::bind_front_handler(&CentrifugoSession::OnDeadline, shared_from_this()));
    if (!writing_ && outbox_.empty()) {
      DoClose();
    } else {
      close_pending_ = true;
    }
  }

  void DoClose() {
    close_pending_ = false;
    const std::string_view reason = centrifugo::ServerDisconnectReason(close_code_);
    websocket::close_reason cr(static_cast<websocket::close_code>(close_code_),
                               beast::string_view(reason.data(), reason.size()));
    ws_.async_close(cr, beast::bind_front_handler(&CentrifugoSession::OnClose, shared_from_this()));
  }

  void OnClose(beast::error_code ec) {
    if (ec && ec != net::error::operation_aborted) {
      LLMLOAD_LOG(kDebug, "WebSocket close failed.").Kv("error", ec.message());
    }
  }

  void ArmPing() {
    ping_timer_.expires_after(options_.ping_interval);
    ping_timer_.async_wait(
        beast::bind_front_handler(&CentrifugoSession::OnPingTimer, shared_from_this()));
  }

  void OnPingTimer(beast::error_code ec) {
    if (ec || closing_) {
      return;
    }
    Apply(handler_.OnPingDue());
    if (closing_) {
      return;
    }
    pong_timer_.expires_after(options_.pong_timeout);
    pong_timer_.async_wait(
        beast::bind_front_handler(&CentrifugoSession::OnPongTimer, shared_from_this()));
    ArmPing();
  }

  void OnPongTimer(beast::error_code ec) {
    if (ec || closing_) {
      return;
    }
    Apply(handler_.OnPongDeadline());
  }

  // Before connect: the stale deadline. While closing: the close deadline.
  void OnDeadline(beast::error_code ec) {
    if (ec || torn_down_) {
      return;
    }
    if (!closing_) {
      Apply(handler_.OnStaleDeadline());
      return;
    }
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  void Teardown() {
    if (torn_down_) {
      return;
    }
    torn_down_ = true;
    closing_ = true;
    handler_.OnClosed();
    ping_timer_.cancel();
    pong_timer_.cancel();
    deadline_timer_.cancel();
    expiry_timer_.cancel();
    outbox_.clear();
    outbox_bytes_ = 0;
  }

  const CentrifugoEndpointOptions& options_;
  ChannelHub* hub_;
  ConnectionGuard guard_;
  EventLoop& loop_;
  websocket::stream<ServerStream> ws_;
  beast::flat_buffer buffer_;
  net::steady_timer ping_timer_;
  net::steady_timer pong_timer_;
  net::steady_timer deadline_timer_;
  net::steady_timer expiry_timer_;
  CentrifugoHandler handler_;

  std::deque<std::string> outbox_;
  size_t outbox_bytes_ = 0;
  std::string current_;  // the frame being written
  bool writing_ = false;
  bool closing_ = false;
  bool close_pending_ = false;
  bool torn_down_ = false;
  centrifugo::ServerDisconnectCode close_code_ = centrifugo::ServerDisconnectCode::kShutdown;
};

}  // namespace

CentrifugoEndpoint::CentrifugoEndpoint(CentrifugoEndpointOptions options, ChannelHub* hub)
    : options_(std::move(options)), hub_(hub) {}

void CentrifugoEndpoint::Accept(ServerStream stream, HttpRequest request, ConnectionGuard guard,
                                EventLoop& loop) {
  auto session =
      std::make_shared<CentrifugoSession>(std::move(stream), options_, hub_, std::move(guard), loop);
  session->Run(std::move(request));
}

}  // namespace llmload::emulator
