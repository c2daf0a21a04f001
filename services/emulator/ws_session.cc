#include "services/emulator/ws_session.h"

#include <deque>
#include <utility>

#include "boost/asio/steady_timer.hpp"
#include "boost/beast/core/bind_handler.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/websocket.hpp"
#include "lib/common/log.h"

namespace llmload::emulator {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace websocket = beast::websocket;

class WsSession final : public ServerConnection,
                        public StreamSink,
                        public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(ServerStream&& stream, const WsEndpointOptions& options,
            std::unique_ptr<WsHandler> handler, ConnectionGuard guard, EventLoop& loop)
      : options_(options),
        handler_(std::move(handler)),
        guard_(std::move(guard)),
        loop_(loop),
        ws_(std::move(stream)),
        deadline_timer_(loop.context()),
        close_timer_(loop.context()),
        runner_(loop.context()) {}

  void Run(const HttpRequest& request) {
    websocket::stream_base::timeout timeouts;
    timeouts.handshake_timeout = options_.handshake_timeout;
    timeouts.idle_timeout = websocket::stream_base::none();
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    ws_.read_message_max(options_.max_message_bytes);
    bool echo = false;
    if (!options_.subprotocol.empty()) {
      const auto offered = request[http::field::sec_websocket_protocol];
      echo = std::string_view(offered.data(), offered.size()).find(options_.subprotocol) !=
             std::string_view::npos;
    }
    ws_.set_option(websocket::stream_base::decorator(
        [echo, sub = options_.subprotocol](websocket::response_type& res) {
          res.set(http::field::server, "llmload-emulator");
          if (echo) {
            res.set(http::field::sec_websocket_protocol, sub);
          }
        }));
    ws_.async_accept(request, beast::bind_front_handler(&WsSession::OnAccept, shared_from_this()));
  }

  // ServerConnection
  void Shutdown() override {
    Close(websocket::close_reason(websocket::close_code::going_away, "shutdown"), false);
  }

  // StreamSink
  void EmitData(std::string data) override { Enqueue(std::move(data)); }
  void Disconnect() override { Drop(); }
  void Finished() override {
    if (!closing_) {
      Apply(handler_->OnStreamEnd());
    }
  }

 private:
  void OnAccept(beast::error_code ec) {
    if (ec) {
      LLMLOAD_LOG(kDebug, "WebSocket handshake failed.").Kv("error", ec.message());
      return;
    }
    loop_.Track(weak_from_this());
    Apply(handler_->OnOpen());
    DoRead();
  }

  void DoRead() {
    ws_.async_read(buffer_, beast::bind_front_handler(&WsSession::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t bytes) {
    if (ec) {
      return Teardown();
    }
    if (!closing_) {
      if (ws_.got_text()) {
        const auto data = buffer_.cdata();
        Apply(handler_->OnText(
            std::string_view(static_cast<const char*>(data.data()), data.size())));
      } else {
        Apply(handler_->OnBinary());
      }
    }
    buffer_.consume(bytes);
    if (!torn_down_) {
      DoRead();
    }
  }

  void Apply(WsActions actions) {
    if (closing_) {
      return;
    }
    if (actions.cancel_stream) {
      runner_.Cancel();
    }
    if (actions.drop) {
      return Drop();
    }
    for (std::string& frame : actions.frames) {
      Enqueue(std::move(frame));
    }
    if (actions.deadline.has_value()) {
      deadline_timer_.cancel();
      if (actions.deadline->count() > 0) {
        deadline_timer_.expires_after(*actions.deadline);
        deadline_timer_.async_wait([self = shared_from_this()](beast::error_code e) {
          if (!e && !self->closing_) {
            self->Apply(self->handler_->OnDeadline());
          }
        });
      }
    }
    if (actions.close.has_value()) {
      return Close(*actions.close, true);
    }
    if (actions.stream != nullptr && !closing_) {
      runner_.Cancel();
      runner_.Start(std::move(actions.stream), this, shared_from_this());
    }
  }

  void Enqueue(std::string frame) {
    if (closing_) {
      return;
    }
    outbox_bytes_ += frame.size();
    if (outbox_bytes_ > options_.max_outbox_bytes) {
      LLMLOAD_LOG(kWarn, "WebSocket client too slow; dropping it.").Kv("queued_bytes", outbox_bytes_);
      return Drop();
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
    writing_ = true;
    ws_.text(true);
    ws_.async_write(net::buffer(current_),
                    beast::bind_front_handler(&WsSession::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    writing_ = false;
    if (ec) {
      return Teardown();
    }
    if (!outbox_.empty()) {
      DoWrite();
    } else if (close_pending_) {
      DoClose();
    }
  }

  void Close(websocket::close_reason reason, bool flush) {
    if (closing_) {
      return;
    }
    closing_ = true;
    close_reason_ = reason;
    runner_.Cancel();
    deadline_timer_.cancel();
    if (!flush) {
      outbox_.clear();
      outbox_bytes_ = 0;
    }
    close_timer_.expires_after(options_.close_timeout);
    close_timer_.async_wait([self = shared_from_this()](beast::error_code e) {
      if (!e && !self->torn_down_) {
        self->ws_.next_layer().CloseNow();
      }
    });
    if (!writing_ && outbox_.empty()) {
      DoClose();
    } else {
      close_pending_ = true;
    }
  }

  void DoClose() {
    close_pending_ = false;
    ws_.async_close(close_reason_, [self = shared_from_this()](beast::error_code) {});
  }

  void Drop() {
    closing_ = true;
    runner_.Cancel();
    deadline_timer_.cancel();
    close_timer_.cancel();
    outbox_.clear();
    outbox_bytes_ = 0;
    ws_.next_layer().CloseNow();
  }

  void Teardown() {
    if (torn_down_) {
      return;
    }
    torn_down_ = true;
    closing_ = true;
    runner_.Cancel();
    deadline_timer_.cancel();
    close_timer_.cancel();
    outbox_.clear();
    outbox_bytes_ = 0;
  }

  const WsEndpointOptions& options_;
  std::unique_ptr<WsHandler> handler_;
  ConnectionGuard guard_;
  EventLoop& loop_;
  websocket::stream<ServerStream> ws_;
  beast::flat_buffer buffer_;
  net::steady_timer deadline_timer_;
  net::steady_timer close_timer_;
  StreamRunner runner_;

  std::deque<std::string> outbox_;
  size_t outbox_bytes_ = 0;
  std::string current_;
  bool writing_ = false;
  bool closing_ = false;
  bool close_pending_ = false;
  bool torn_down_ = false;
  websocket::close_reason close_reason_;
};

}  // namespace

WsEndpoint::WsEndpoint(WsEndpointOptions options, HandlerFactory factory)
    : options_(std::move(options)), factory_(std::move(factory)) {}

void WsEndpoint::Accept(ServerStream stream, HttpRequest request, ConnectionGuard guard,
                        EventLoop& loop) {
  auto session = std::make_shared<WsSession>(std::move(stream), options_, factory_(request),
                                             std::move(guard), loop);
  session->Run(request);
}

}  // namespace llmload::emulator
