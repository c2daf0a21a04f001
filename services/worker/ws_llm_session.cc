#include "services/worker/ws_llm_session.h"

#include <cstdlib>
#include <deque>
#include <string>
#include <type_traits>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/protocol/ws_llm_client.h"
#include "services/common/grpc_util.h"
#include "services/worker/session_util.h"

namespace llmload::worker {
namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace wsllm = protocol::wsllm;

constexpr size_t kMaxMessageBytes = 1 << 20;
constexpr auto kKeepAlive = std::chrono::seconds(20);

// kTls: the WebSocket runs over an ssl::stream (wss).
template <bool kTls>
class WsLlmSession final : public Session,
                           public std::enable_shared_from_this<WsLlmSession<kTls>> {
  using Transport = std::conditional_t<kTls, net::ssl::stream<tcp::socket>, tcp::socket>;
  using std::enable_shared_from_this<WsLlmSession<kTls>>::shared_from_this;

 public:
  WsLlmSession(std::shared_ptr<LoopShard> shard, int32_t client_id)
      : shard_(std::move(shard)),
        client_id_(client_id),
        client_(shard_->settings().spec.target().protocol() == v1::REALM ? wsllm::Dialect::kRealm
                                                                         : wsllm::Dialect::kWsChat),
        timer_(shard_->ioc()),
        retry_timer_(shard_->ioc()),
        keepalive_timer_(shard_->ioc()) {
    const v1::Target& t = shard_->settings().spec.target();
    connect_timeout_ = DurationOr(t.connect_timeout(), t.has_connect_timeout(),
                                  std::chrono::milliseconds(10000));
    request_timeout_ = shard_->settings().request_timeout;
    ttft_timeout_ = DurationOr(t.ttft_timeout(), t.has_ttft_timeout(), request_timeout_);
    reconnect_attempts_ = t.reconnect_attempts() == 0 ? 3 : std::max(0, t.reconnect_attempts());
    reconnect_backoff_ = DurationOr(t.reconnect_backoff(), t.has_reconnect_backoff(),
                                    std::chrono::milliseconds(1000));
    if (!t.api_key_env().empty()) {
      if (const char* key = std::getenv(t.api_key_env().c_str()); key != nullptr) {
        api_key_ = key;
      }
    }
    // The WebSocket path is the target URL's path (ws://host:port/api/ws).
    path_ = shard_->settings().target.base_path;
    if (path_.empty()) {
      path_ = client_.dialect() == wsllm::Dialect::kWsChat ? "/api/ws" : "/";
    }
  }

  void Start() override {
    session_start_ = Clock::now();
    Connect();
  }

  void Cancel() override {
    if (done_) {
      return;
    }
    cancelled_ = true;
    CloseSocket();
    Finish();
  }

  void Resume() override {
    if (phase_ == Phase::kIdle && !cancelled_) {
      Next();
    }
  }

 private:
  enum class Phase { kConnecting, kSetup, kIdle, kScheduled, kInFlight, kClosing, kDone };

  metrics::MetricSet& M() { return shard_->metrics(); }

  // ---- connection and set-up ----

  void Connect() {
    phase_ = Phase::kConnecting;
    connect_start_ = Clock::now();
    if constexpr (kTls) {
      ws_.emplace(shard_->ioc(), *shard_->settings().target.tls_context);
    } else {
      ws_.emplace(shard_->ioc());
    }
    ws_->read_message_max(kMaxMessageBytes);
    rbuf_.clear();
    outbox_.clear();
    ArmDeadline(connect_timeout_);
    const TargetInfo& t = shard_->settings().target;
    AsyncConnect(beast::get_lowest_layer(*ws_), t.ws_endpoints, t.source_addresses,
                 static_cast<uint64_t>(client_id_),
                 [self = shared_from_this()](const boost::system::error_code& ec) {
                   self->OnTcp(ec);
                 });
  }

  void OnTcp(const boost::system::error_code& ec) {
    if (cancelled_ || done_) {
      return;
    }
    if (ec) {
      return SetupFailed(timed_out_ ? v1::TIMEOUT : v1::CONNECT_FAILED, "connect failed");
    }
    boost::system::error_code ignored;
    beast::get_lowest_layer(*ws_).set_option(tcp::no_delay(true), ignored);
    if constexpr (kTls) {
      const TargetInfo& t = shard_->settings().target;
      if (!SetUpTlsClient(ws_->next_layer(), t.ws_host, t.verify)) {
        return SetupFailed(v1::CONNECT_FAILED, "cannot set SNI");
      }
      ws_->next_layer().async_handshake(
          net::ssl::stream_base::client,
          [self = shared_from_this()](const boost::system::error_code& ec) {
            if (self->cancelled_ || self->done_) {
              return;
            }
            if (ec) {
              return self->SetupFailed(self->timed_out_ ? v1::TIMEOUT : v1::CONNECT_FAILED,
                                       "TLS handshake failed");
            }
            self->Upgrade();
          });
      return;
    }
    Upgrade();
  }

  void Upgrade() {
    ws_->async_handshake(shard_->settings().target.ws_host_header, path_,
                         [self = shared_from_this()](const boost::system::error_code& ec) {
                           self->OnUpgrade(ec);
                         });
  }

  void OnUpgrade(const boost::system::error_code& ec) {
    if (cancelled_ || done_) {
      return;
    }
    if (ec) {
      return SetupFailed(timed_out_ ? v1::TIMEOUT : v1::CONNECT_FAILED, "websocket upgrade failed");
    }
    M().RecordUs(v1::CONNECT, Micros(Clock::now() - connect_start_));
    phase_ = Phase::kSetup;
    if (auto opening = client_.OpeningFrame(api_key_)) {
      Send(std::move(*opening));
    }
    DoRead();
  }

  void OnReady(Clock::time_point now) {
    timer_.cancel();
    if (!opened_) {
      opened_ = true;
      M().RecordUs(v1::SESSION_SETUP, Micros(now - session_start_));
      M().Add(v1::SESSIONS_OPENED);
    }
    failures_in_a_row_ = 0;
    ArmKeepAlive();
    Next();
  }

  void SetupFailed(v1::Counter counter, const char* why) {
    if (done_) {
      return;
    }
    timer_.cancel();
    M().Add(counter);
    CloseSocket();
    if (counter == v1::HTTP_4XX || failures_in_a_row_ >= reconnect_attempts_) {
      if (!opened_) {
        M().Add(v1::SESSIONS_FAILED);
      }
      LLMLOAD_LOG(kDebug, "Session set-up failed.")
          .Kv("client_id", client_id_)
          .Kv("reason", why);
      return Finish();
    }
    Reconnect();
  }

  void Reconnect() {
    const auto wait = BackoffDelay(reconnect_backoff_, failures_in_a_row_,
                                   static_cast<uint64_t>(client_id_));
    ++failures_in_a_row_;
    M().Add(v1::RECONNECTS);
    phase_ = Phase::kConnecting;
    retry_timer_.expires_after(wait);
    retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && !self->done_) {
        self->Connect();
      }
    });
  }

  // ---- I/O ----

  void Send(std::string text) {
    M().Add(v1::BYTES_OUT, text.size());
    outbox_.push_back(std::move(text));
    if (outbox_.size() == 1) {
      DoWrite();
    }
  }

  void DoWrite() {
    ws_->text(true);
    ws_->async_write(net::buffer(outbox_.front()),
                     [self = shared_from_this(), gen = generation_](
                         const boost::system::error_code& ec, size_t) {
                       if (ec || gen != self->generation_) {
                         return;  // the read side reports the failure
                       }
                       self->outbox_.pop_front();
                       if (!self->outbox_.empty()) {
                         self->DoWrite();
                       }
                     });
  }

  void DoRead() {
    ws_->async_read(rbuf_, [self = shared_from_this(), gen = generation_](
                               const boost::system::error_code& ec, size_t n) {
      if (gen == self->generation_) {
        self->OnRead(ec, n);
      }
    });
  }

  void OnRead(const boost::system::error_code& ec, size_t n) {
    if (cancelled_ || done_) {
      return;
    }
    if (ec) {
      if (phase_ == Phase::kClosing) {
        return Finish();
      }
      if (phase_ == Phase::kConnecting || phase_ == Phase::kSetup) {
        return SetupFailed(timed_out_ ? v1::TIMEOUT : v1::DISCONNECTED, "closed during set-up");
      }
      return ConnectionLost(ec == websocket::error::message_too_big ? v1::PROTOCOL_ERROR
                            : timed_out_                            ? v1::TIMEOUT
                                                                    : v1::DISCONNECTED);
    }
    const Clock::time_point now = Clock::now();
    M().Add(v1::BYTES_IN, n);
    const auto data = rbuf_.cdata();
    std::string_view frame(static_cast<const char*>(data.data()), data.size());
    const uint64_t gen = generation_;
    absl::Status s = client_.Parse(frame, [&](const wsllm::WsEvent& e) { OnEvent(e, now); });
    rbuf_.consume(rbuf_.size());
    if (done_ || gen != generation_) {
      return;
    }
    if (!s.ok()) {
      return ConnectionLost(v1::PROTOCOL_ERROR);
    }
    DoRead();
  }

  void OnEvent(const wsllm::WsEvent& e, Clock::time_point now) {
    using Kind = wsllm::WsEvent::Kind;
    switch (e.kind) {
      case Kind::kReady:
        if (phase_ == Phase::kSetup) {
          OnReady(now);
        }
        return;
      case Kind::kAuthOk:
        return;  // the welcome follows
      case Kind::kAuthFailed:
        return SetupFailed(v1::HTTP_4XX, "authentication failed");
      case Kind::kPing:
        Send(e.reply);
        return;
      case Kind::kChunk:
        if (phase_ == Phase::kInFlight) {
          meter_.Chunk(M(), now);
        }
        return;
      case Kind::kComplete:
        if (phase_ == Phase::kInFlight) {
          Completed(now, e.reported_tokens);
        }
        return;
      case Kind::kError:
        if (phase_ == Phase::kInFlight) {
          RequestFailed(e);
        }
        return;
      case Kind::kIgnore:
        return;
    }
  }

  // ---- requests ----

  void Next() {
    if (cancelled_ || done_) {
      return;
    }
    const NextStep step = shard_->NextRequest(this, requests_);
    switch (step.kind) {
      case NextStep::Kind::kClose:
        return BeginClose();
      case NextStep::Kind::kWait:
        phase_ = Phase::kIdle;
        return;
      case NextStep::Kind::kRequest:
        break;
    }
    requests_ = step.cycle;
    step_ = step;
    const Clock::time_point due = DueTime(step, retry_after_);
    if (due > Clock::now()) {
      phase_ = Phase::kScheduled;
      retry_timer_.expires_at(due);
      retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec && self->phase_ == Phase::kScheduled) {
          self->SendRequest();
        }
      });
      return;
    }
    SendRequest();
  }

  void SendRequest() {
    const ShardSettings& s = shard_->settings();
    const v1::Target& t = s.spec.target();
    const v1::Emulation& emu = s.spec.emulation();
    std::string prompt = t.prompt().empty() ? std::string("Say something.") : t.prompt();
    if (t.prompts_size() > 0) {
      prompt = t.prompts(static_cast<int>((client_id_ + requests_ - 1) % t.prompts_size()));
    }
    request_id_ = absl::StrCat("llmload_", client_id_, "_", requests_);
    wsllm::RequestParams p;
    p.id = request_id_;
    p.prompt = prompt;
    p.model = t.model();
    p.tenant = t.tenant();
    p.max_tokens = t.max_tokens() > 0 ? t.max_tokens() : emu.length_words();
    if (emu.has_token_delay()) {
      p.token_delay_ms = absl::ToDoubleMilliseconds(FromProtoDuration(emu.token_delay()));
    }
    phase_ = Phase::kInFlight;
    meter_.Begin(step_, Clock::now());
    ArmDeadline(ttft_timeout_);
    Send(client_.EncodeRequest(p));
  }

  void Completed(Clock::time_point now, int64_t reported) {
    timer_.cancel();
    shard_->RequestDone(meter_.Complete(M(), now, reported));
    Next();
  }

  void RequestFailed(const wsllm::WsEvent& e) {
    timer_.cancel();
    v1::Counter c = v1::HTTP_5XX;
    if (e.error_code == "RATE_LIMIT_EXCEEDED") {
      c = v1::RATE_LIMITED;
      retry_after_ = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(
                                        std::max(0.0, e.retry_after_seconds) * 1000));
    } else if (e.error_code == "UNAUTHORIZED" || e.error_code == "DISPATCH_ERROR" ||
               e.error_code == "INVALID_MESSAGE" || e.error_code == "UNKNOWN_MESSAGE_TYPE") {
      c = v1::HTTP_4XX;
    }
    shard_->RequestDone(RequestMeter::Fail(M(), c));
    Next();
  }

  // The connection broke (or sent garbage): the request in flight fails,
  // the session reconnects and goes on.
  void ConnectionLost(v1::Counter counter) {
    timer_.cancel();
    keepalive_timer_.cancel();
    if (phase_ == Phase::kInFlight) {
      shard_->RequestDone(RequestMeter::Fail(M(), counter));
    } else if (counter == v1::PROTOCOL_ERROR) {
      M().Add(counter);
    }
    CloseSocket();
    if (shard_->cancelled()) {
      return Finish();
    }
    failures_in_a_row_ = 0;
    Reconnect();
  }

  void BeginClose() {
    phase_ = Phase::kClosing;
    timer_.cancel();
    keepalive_timer_.cancel();
    ws_->async_close(websocket::close_code::normal,
                     [self = shared_from_this()](const boost::system::error_code&) {
                       // The pending read completes with `closed` and finishes.
                       if (self->phase_ == Phase::kClosing) {
                         self->CloseSocket();
                         self->Finish();
                       }
                     });
  }

  void CloseSocket() {
    ++generation_;  // handlers of the old connection become no-ops
    if (ws_) {
      boost::system::error_code ignored;
      beast::get_lowest_layer(*ws_).close(ignored);
    }
  }

  // ---- timers ----

  void ArmDeadline(std::chrono::milliseconds d) {
    timed_out_ = false;
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this(), gen = generation_](
                          const boost::system::error_code& ec) {
      if (ec || self->done_ || gen != self->generation_) {
        return;
      }
      if (self->phase_ == Phase::kConnecting || self->phase_ == Phase::kSetup) {
        self->timed_out_ = true;
        self->SetupFailed(v1::TIMEOUT, "set-up timed out");
      } else if (self->phase_ == Phase::kInFlight) {
        self->timed_out_ = true;
        self->ConnectionLost(v1::TIMEOUT);
      }
    });
  }

  void ArmKeepAlive() {
    if (client_.EncodeKeepAlive("x").empty()) {
      return;
    }
    keepalive_timer_.expires_after(kKeepAlive);
    keepalive_timer_.async_wait([self = shared_from_this(), gen = generation_](
                                    const boost::system::error_code& ec) {
      if (ec || self->done_ || gen != self->generation_ || self->phase_ == Phase::kClosing) {
        return;
      }
      self->Send(self->client_.EncodeKeepAlive(absl::StrCat("keepalive_", self->client_id_)));
      self->ArmKeepAlive();
    });
  }

  void Finish() {
    if (done_) {
      return;
    }
    done_ = true;
    phase_ = Phase::kDone;
    timer_.cancel();
    retry_timer_.cancel();
    keepalive_timer_.cancel();
    shard_->SessionEnded(this);
  }

  std::shared_ptr<LoopShard> shard_;
  const int32_t client_id_;
  wsllm::WsLlmClient client_;
  std::string api_key_;
  std::string path_;
  std::chrono::milliseconds connect_timeout_{}, request_timeout_{}, ttft_timeout_{},
      reconnect_backoff_{};
  int reconnect_attempts_ = 3;

  std::optional<websocket::stream<Transport>> ws_;
  net::steady_timer timer_;
  net::steady_timer retry_timer_;
  net::steady_timer keepalive_timer_;
  beast::flat_buffer rbuf_;
  std::deque<std::string> outbox_;
  uint64_t generation_ = 0;

  Phase phase_ = Phase::kConnecting;
  bool opened_ = false;
  bool cancelled_ = false;
  bool done_ = false;
  bool timed_out_ = false;
  int failures_in_a_row_ = 0;
  int64_t requests_ = 0;
  std::string request_id_;
  NextStep step_;
  RequestMeter meter_;
  Clock::time_point session_start_, connect_start_, retry_after_;
};

}  // namespace

std::shared_ptr<Session> MakeWsLlmSession(std::shared_ptr<LoopShard> shard, int32_t client_id) {
  if (shard->settings().target.ws_tls) {
    return std::make_shared<WsLlmSession<true>>(std::move(shard), client_id);
  }
  return std::make_shared<WsLlmSession<false>>(std::move(shard), client_id);
}

}  // namespace llmload::worker
