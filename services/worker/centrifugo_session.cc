#include "services/worker/centrifugo_session.h"

#include <string>
#include <string_view>

#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/load/records.h"
#include "services/common/grpc_util.h"
#include "services/worker/session_util.h"
#include "services/worker/ws_connection.h"

namespace llmload::worker {
namespace {

namespace json = boost::json;
namespace cf = protocol::centrifugo;

constexpr uint32_t kConnectCommandId = 1;
constexpr size_t kMaxWsMessageBytes = 1 << 20;
// How long a close handshake may take before the socket is just dropped.
constexpr auto kCloseGrace = std::chrono::seconds(2);

// Counter for a failed HTTP exchange.
v1::Counter ClassifyHttp(const HttpResult& r) {
  if (r.ec == net::error::timed_out) {
    return v1::TIMEOUT;
  }
  if (r.ec) {
    return r.ec == net::error::connection_refused || r.ec == net::error::host_unreachable ||
                   r.ec == net::error::network_unreachable
               ? v1::CONNECT_FAILED
               : v1::DISCONNECTED;
  }
  const unsigned status = r.response.result_int();
  if (status == 429) {
    return v1::RATE_LIMITED;
  }
  return status >= 500 ? v1::HTTP_5XX : v1::HTTP_4XX;
}

// kTls: the WebSocket runs over TLS (a wss:// wsUrl); the HTTP calls go
// through the loop's pool either way.
//
// The WebSocket is the worker's lean client (ws_connection.h), the one the
// WS_CHAT and REALM drivers use: an idle session holds its socket, a small
// first-read buffer and its few strings, not a Beast stream with buffers of
// its own. Set-up (session create, connect, upgrade, connect reply) holds
// one of the loop's connection slots, as the other WebSocket drivers do.
template <bool kTls>
class CentrifugoSession final : public Session,
                                public WsConnectionOwner,
                                public std::enable_shared_from_this<CentrifugoSession<kTls>> {
  using std::enable_shared_from_this<CentrifugoSession<kTls>>::shared_from_this;

 public:
  CentrifugoSession(std::shared_ptr<LoopShard> shard, int32_t client_id)
      : shard_(std::move(shard)),
        client_id_(client_id),
        conn_(shard_->ioc(), *this, kMaxWsMessageBytes),
        timer_(shard_->ioc().get_executor()),
        storm_timer_(shard_->ioc().get_executor()) {}

  void Start() override {
    session_start_ = Clock::now();
    ArmStorm();
    Create();
  }

  void Cancel() override {
    if (phase_ == Phase::kDone) {
      return;
    }
    cancelled_ = true;
    timer_.cancel();
    storm_timer_.cancel();
    conn_.Abort();
    Finish();
  }

  void Resume() override {
    if (phase_ == Phase::kIdle && !cancelled_) {
      StartCycle();
    }
  }

  void OnConnectSlot() override {
    has_slot_ = true;
    if (cancelled_ || phase_ != Phase::kQueued) {
      return ReleaseSlot();
    }
    SendCreate();
  }

  // ---- WsConnectionOwner ----

  void OnWsOpen(Clock::time_point now) override {
    M().RecordUs(v1::CONNECT, Micros(now - connect_start_));
    if (storm_ == Storm::kAway) {
      // Back after the storm: ask for what the channel published meanwhile.
      storm_ = Storm::kRecovering;
      Send(cf::EncodeConnectCommand(
          token_, kConnectCommandId,
          cf::StreamPosition{channel_, last_offset_, epoch_}));
      std::string().swap(token_);
      return;
    }
    phase_ = Phase::kAwaitConnectReply;
    Send(cf::EncodeConnectCommand(token_, kConnectCommandId));
    if (storm_ != Storm::kPending) {
      std::string().swap(token_);  // sent: no need to keep it
    }
  }

  void OnWsMessage(std::string_view message, Clock::time_point now) override {
    if (cancelled_ || phase_ == Phase::kDone) {
      return;
    }
    M().Add(v1::BYTES_IN, message.size());
    bool stop = false;
    const absl::Status s = shard_->centrifugo_parser().Parse(
        message, [&](const cf::ServerEvent& e) { stop = stop || !HandleEvent(e, now); });
    if (!s.ok() && !stop && phase_ != Phase::kDone) {
      conn_.Abort();
      FailActive(v1::PROTOCOL_ERROR, "malformed centrifugo frame");
    }
  }

  void OnWsEnd(WsEnd end, std::string_view why) override {
    if (cancelled_ || phase_ == Phase::kDone) {
      return;
    }
    if (phase_ == Phase::kClosing) {
      return AfterClose();
    }
    if (storm_ == Storm::kRecovering) {
      // The reconnection after the storm failed: the session starts over.
      storm_ = Storm::kOver;
      storm_timer_.cancel();
    }
    FailActive(WsEndCounter(end, conn_.refused_status()), why);
  }

 private:
  enum class Phase {
    kQueued,  // waiting for a connection set-up slot of the loop
    kCreate,
    kConnect,  // TCP and the upgrade
    kAwaitConnectReply,
    kIdle,       // open and waiting for the load model (NextStep::kWait)
    kScheduled,  // a request is due at a future intended time
    kCycle,      // a request is in flight
    kClosing,
    kReconnectWait,  // a lost connection: a new session after the backoff
    kDone
  };
  // RunSpec.reconnect_storm, for a session it drops. While kAway and
  // kRecovering the session keeps its phase (a request in flight stays in
  // flight) but has no connection.
  enum class Storm {
    kNone,        // not dropped by the storm (or no storm)
    kPending,     // to be dropped at the storm's moment
    kAway,        // dropped: waiting reconnect_after
    kRecovering,  // reconnecting: the connect with recover is on its way
    kOver,
  };

  std::string Path(std::string_view p) const {
    const TargetInfo& t = shard_->settings().TargetFor(client_id_);
    return JoinTarget(t.base_path, p, t.query);
  }
  metrics::MetricSet& M() { return shard_->metrics(this); }

  // --- session set-up ---

  // Set-up, first or again after a lost connection, waits for a slot.
  void Create() {
    phase_ = Phase::kQueued;
    if (!shard_->AcquireConnectSlot(shared_from_this())) {
      return;  // OnConnectSlot continues
    }
    has_slot_ = true;
    SendCreate();
  }

  void ReleaseSlot() {
    if (has_slot_) {
      has_slot_ = false;
      shard_->ReleaseConnectSlot();
    }
  }

  void SendCreate() {
    phase_ = Phase::kCreate;
    http::request<http::string_body> req{http::verb::post, Path("/api/sessions/create"), 11};
    shard_->http(client_id_).Request(std::move(req), [self = shared_from_this()](HttpResult&& r) {
      self->OnCreated(std::move(r));
    });
  }

  void OnCreated(HttpResult&& r) {
    if (cancelled_ || phase_ != Phase::kCreate) {
      return;
    }
    AddHttpBytes(r);
    if (r.ec || r.response.result_int() != 200) {
      return FailSetup(ClassifyHttp(r), "session create failed");
    }
    json::error_code ec;
    json::value v = json::parse(r.response.body(), ec);
    const json::object* o = (!ec && v.is_object()) ? &v.get_object() : nullptr;
    const json::value* sid = o != nullptr ? o->if_contains("session_id") : nullptr;
    const json::value* tok = o != nullptr ? o->if_contains("token") : nullptr;
    if (sid == nullptr || tok == nullptr || !sid->is_string() || !tok->is_string()) {
      return FailSetup(v1::PROTOCOL_ERROR, "session create answer lacks session_id/token");
    }
    session_id_ = std::string(sid->get_string());
    token_ = std::string(tok->get_string());
    DoConnect();
  }

  void DoConnect() {
    phase_ = Phase::kConnect;
    connect_start_ = Clock::now();
    ArmTimer();
    const TargetInfo& t = shard_->settings().TargetFor(client_id_);
    conn_.Open(t, JoinTarget(t.ws_base_path, "/connection/websocket", t.ws_query), t.headers,
               static_cast<uint64_t>(client_id_), shared_from_this());
  }

  void Send(std::string_view text) {
    M().Add(v1::BYTES_OUT, text.size());
    conn_.SendText(text);
  }

  // Whether the connection that delivers events is still the session's:
  // not after it ended, was abandoned or was lost.
  bool Live() const { return phase_ != Phase::kDone && phase_ != Phase::kReconnectWait; }

  // Returns false when the events that follow in the message are moot.
  bool HandleEvent(const cf::ServerEvent& e, Clock::time_point now) {
    switch (e.kind) {
      case cf::ServerEvent::Kind::kPing:
        if (pong_) {
          Send(cf::kPongCommand);
        }
        return true;
      case cf::ServerEvent::Kind::kConnectReply:
        if (storm_ == Storm::kRecovering && e.id == kConnectCommandId) {
          OnReconnected(e, now);
          return Live();
        }
        if (phase_ == Phase::kAwaitConnectReply && e.id == kConnectCommandId) {
          pong_ = e.pong;
          TakePosition(e);
          timer_.cancel();
          ReleaseSlot();
          failures_in_a_row_ = 0;
          if (!setup_done_) {  // a reconnection is not a new session
            M().RecordUs(v1::SESSION_SETUP, Micros(now - session_start_));
            M().Add(v1::SESSIONS_OPENED);
            setup_done_ = true;
          }
          StartCycle();
        }
        return Live();
      case cf::ServerEvent::Kind::kReplyError:
        if (storm_ == Storm::kRecovering && e.id == kConnectCommandId) {
          storm_ = Storm::kOver;
          storm_timer_.cancel();
          conn_.Abort();
          FailActive(v1::CONNECT_FAILED, "reconnect rejected");
          return false;
        }
        if (phase_ == Phase::kAwaitConnectReply && e.id == kConnectCommandId) {
          conn_.Abort();
          FailSetup(v1::CONNECT_FAILED, "connect rejected");
          return false;
        }
        return true;
      case cf::ServerEvent::Kind::kPublication: {
        // Offsets place every publication in the channel's stream: one at or
        // below the last seen is a repeat (recovered and also delivered
        // live), one beyond the next leaves a gap nobody filled.
        bool burst = e.from_recovery;
        if (e.offset != 0) {
          if (e.offset <= last_offset_) {
            return Live();
          }
          if (last_offset_ != 0 && e.offset > last_offset_ + 1) {
            M().Add(v1::PUBLICATIONS_MISSED, e.offset - last_offset_ - 1);
          }
          last_offset_ = e.offset;
        }
        if (e.from_recovery) {
          M().Add(v1::PUBLICATIONS_RECOVERED);
        } else if (after_reconnect_ && e.has_token) {
          // The first live token after the outage: its gap is the outage's.
          burst = true;
          after_reconnect_ = false;
        }
        if (phase_ == Phase::kCycle) {
          if (e.has_token) {
            OnToken(now, /*record_gap=*/!burst);
          }
          if (e.done && !stream_done_ && phase_ == Phase::kCycle) {
            stream_done_ = true;
            done_at_ = now;
            MaybeFinishCycle();
          }
        }
        return Live();
      }
      case cf::ServerEvent::Kind::kDisconnectPush:
        conn_.Abort();
        FailActive(v1::DISCONNECTED, "server disconnect");
        return false;
      default:
        return true;
    }
  }

  // --- cycles ---

  void StartCycle() {
    if (cancelled_) {
      return;
    }
    const NextStep step = shard_->NextRequest(this, cycle_);
    switch (step.kind) {
      case NextStep::Kind::kClose:
        return BeginClose();
      case NextStep::Kind::kWait:
        phase_ = Phase::kIdle;
        return;
      case NextStep::Kind::kRequest:
        break;
    }
    cycle_ = static_cast<int>(step.cycle);
    phase_ = Phase::kCycle;
    http_done_ = stream_done_ = false;
    step_ = step;
    if (step.intended > Clock::now()) {
      // Not due yet: wait on the cycle timer, then send.
      phase_ = Phase::kScheduled;
      timer_.expires_at(step.intended);
      timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec && self->phase_ == Phase::kScheduled) {
          self->phase_ = Phase::kCycle;
          self->SendRun();
        }
      });
      return;
    }
    SendRun();
  }

  void SendRun() {
    if (storm_ == Storm::kAway || storm_ == Storm::kRecovering) {
      // No connection to receive the tokens: the request waits for it.
      run_waits_ = true;
      return;
    }
    json::object body;
    body["session_id"] = session_id_;
    // The spec's prompt for this request (of a conversation, its last user
    // message), else the original client's question.
    const std::string question = absl::StrCat("Question ", cycle_, " from client ", client_id_);
    const RequestPrompt prompt = PromptFor(shard_->settings(), client_id_, cycle_,
                                           /*whole_conversation=*/false, question);
    body["question"] = json::string_view(prompt.text.data(), prompt.text.size());
    const auto& emu = shard_->settings().spec.emulation();
    if (prompt.length_words > 0) {
      body["length_words"] = prompt.length_words;
    }
    if (emu.has_token_delay()) {
      body["token_delay_seconds"] = absl::ToDoubleSeconds(FromProtoDuration(emu.token_delay()));
    }
    http::request<http::string_body> req{http::verb::post, Path("/api/run"), 11};
    req.set(http::field::content_type, "application/json");
    req.body() = json::serialize(body);
    meter_.Begin(step_, Clock::now());
    meter_.SetInputEstimate(prompt.estimated_input_tokens);  // the API reports no usage
    ArmTimer();
    shard_->http(client_id_)
        .Request(std::move(req), [self = shared_from_this(), cycle = cycle_](HttpResult&& r) {
          self->OnRunResponse(std::move(r), cycle);
        });
  }

  void OnRunResponse(HttpResult&& r, int cycle) {
    if (cancelled_ || phase_ != Phase::kCycle || cycle != cycle_) {
      return;
    }
    AddHttpBytes(r);
    if (r.ec || r.response.result_int() / 100 != 2) {
      const v1::Counter c = ClassifyHttp(r);
      if (c == v1::TIMEOUT) {
        return FailActive(c, "/api/run timed out");
      }
      // The request was refused: no tokens will come. Count it, go on.
      timer_.cancel();
      shard_->RequestDone(this, RequestMeter::Fail(M(), c));
      return StartCycle();
    }
    M().RecordUs(v1::REQUEST, Micros(r.headers_at - meter_.send_at()));
    http_done_ = true;
    MaybeFinishCycle();
  }

  // One publication, one token.
  void OnToken(Clock::time_point now, bool record_gap) {
    if (meter_.Chunk(M(), now, record_gap)) {
      ArmTimer();  // a fresh wait for the rest of the response
    }
    if (meter_.CancelDue(now)) {
      Abandon(now);
    }
  }

  void MaybeFinishCycle() {
    if (!http_done_ || !stream_done_) {
      return;
    }
    timer_.cancel();
    shard_->RequestDone(this, meter_.Complete(M(), done_at_, /*reported_tokens=*/-1));
    StartCycle();
  }

  // --- timeouts, failures, teardown ---

  void ArmTimer() {
    const Clock::time_point limit = Clock::now() + shard_->settings().request_timeout;
    // In a cycle, no later than the moment the spec abandons the request.
    timer_.expires_at(phase_ == Phase::kCycle ? std::min(limit, meter_.cancel_at()) : limit);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) {
        self->OnTimer();
      }
    });
  }

  void OnTimer() {
    switch (phase_) {
      case Phase::kCycle: {
        const Clock::time_point now = Clock::now();
        if (meter_.CancelDue(now)) {
          return Abandon(now);
        }
        conn_.Abort();
        return FailActive(v1::TIMEOUT, "response timed out");
      }
      case Phase::kConnect:
      case Phase::kAwaitConnectReply:
        conn_.Abort();
        return FailSetup(v1::TIMEOUT, "session set-up timed out");
      case Phase::kClosing:  // the target did not answer the close in time
        conn_.Abort();
        return AfterClose();
      default:
        return;
    }
  }

  void FailSetup(v1::Counter counter, std::string_view why) {
    if (phase_ == Phase::kDone) {
      return;
    }
    M().Add(counter);
    ReleaseSlot();
    if (setup_done_) {
      // Re-establishing a session that was open: try again while attempts
      // remain, else the session ends (it was counted as opened).
      if (failures_in_a_row_ < shard_->settings().reconnect_attempts && !shard_->cancelled()) {
        return Reconnect();
      }
      return Teardown();
    }
    M().Add(v1::SESSIONS_FAILED);
    LLMLOAD_LOG(kDebug, "Session set-up failed.")
        .Kv("client_id", client_id_)
        .Kv("reason", std::string(why))
        .Kv("counter", metrics::CounterName(counter));
    Teardown();
  }

  // A failure after set-up: the cycle in flight (if any) fails, the
  // connection and the emulator session are dropped (the stream's state is
  // unknown), and a new session is set up after the reconnection backoff to
  // run the remaining cycles.
  void FailActive(v1::Counter counter, std::string_view why) {
    if (phase_ == Phase::kDone) {
      return;
    }
    if (!setup_done_ || phase_ == Phase::kConnect || phase_ == Phase::kAwaitConnectReply ||
        phase_ == Phase::kCreate) {
      return FailSetup(counter, why);
    }
    if (phase_ == Phase::kCycle) {
      shard_->RequestDone(this, RequestMeter::Fail(M(), counter));
    }
    LLMLOAD_LOG(kDebug, "Session failed.")
        .Kv("client_id", client_id_)
        .Kv("session_id", session_id_)
        .Kv("reason", std::string(why));
    if (shard_->cancelled() || cancelled_) {
      return Teardown();
    }
    Reconnect();
  }

  // The spec abandons the request in flight (RunSpec.cancellation), as a
  // user closing the tab: the WebSocket is dropped mid-response and the
  // emulator session deleted, the request counts as cancelled, and a new
  // session is set up at once (not a reconnection after a failure) for the
  // next request.
  void Abandon(Clock::time_point now) {
    timer_.cancel();
    shard_->RequestDone(this, meter_.Abandon(M(), now));
    if (shard_->cancelled()) {
      return Teardown();
    }
    DropConnection();
    phase_ = Phase::kReconnectWait;
    net::post(shard_->ioc(), [self = shared_from_this()] {
      if (self->phase_ == Phase::kReconnectWait && !self->cancelled_) {
        self->Start();
      }
    });
  }

  // Closes the WebSocket and deletes the emulator session behind it;
  // nobody waits for the answer.
  void DropConnection() {
    conn_.Abort();
    if (storm_ == Storm::kAway || storm_ == Storm::kRecovering) {
      storm_ = Storm::kOver;
      storm_timer_.cancel();
      run_waits_ = false;
    }
    channel_.clear();
    epoch_.clear();
    last_offset_ = 0;
    after_reconnect_ = false;
    if (!session_id_.empty()) {
      http::request<http::string_body> req{http::verb::delete_,
                                           Path(absl::StrCat("/api/sessions/", session_id_)), 11};
      shard_->http(client_id_).Request(std::move(req), [self = shared_from_this()](HttpResult&& r) {
        self->AddHttpBytes(r);
      });
      session_id_.clear();
    }
  }

  void Reconnect() {
    DropConnection();
    const auto wait = BackoffDelay(shard_->settings().reconnect_backoff, failures_in_a_row_,
                                   static_cast<uint64_t>(client_id_));
    ++failures_in_a_row_;
    M().Add(v1::RECONNECTS);
    phase_ = Phase::kReconnectWait;
    timer_.expires_after(wait);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && self->phase_ == Phase::kReconnectWait && !self->cancelled_) {
        self->Start();
      }
    });
  }

  void BeginClose() {
    if (storm_ == Storm::kAway || storm_ == Storm::kRecovering) {
      // The last response completed while the storm kept the session away.
      storm_ = Storm::kOver;
      storm_timer_.cancel();
    }
    phase_ = Phase::kClosing;
    timer_.expires_after(kCloseGrace);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) {
        self->OnTimer();
      }
    });
    conn_.Close();  // OnWsEnd calls AfterClose
  }

  void AfterClose() {
    if (phase_ != Phase::kClosing) {
      return;
    }
    phase_ = Phase::kDone;
    timer_.cancel();
    conn_.Abort();
    DeleteSessionThenFinish();
  }

  void Teardown() {
    const bool had_session = !session_id_.empty();
    phase_ = Phase::kDone;
    timer_.cancel();
    storm_timer_.cancel();
    conn_.Abort();
    if (had_session && !shard_->cancelled()) {
      DeleteSessionThenFinish();
    } else {
      Finish();
    }
  }

  void DeleteSessionThenFinish() {
    phase_ = Phase::kDone;
    if (session_id_.empty() || shard_->cancelled()) {
      return Finish();
    }
    http::request<http::string_body> req{http::verb::delete_,
                                         Path(absl::StrCat("/api/sessions/", session_id_)), 11};
    shard_->http(client_id_).Request(std::move(req), [self = shared_from_this()](HttpResult&& r) {
      self->AddHttpBytes(r);
      self->Finish();
    });
  }

  void Finish() {
    if (finished_) {
      return;
    }
    finished_ = true;
    phase_ = Phase::kDone;
    storm_timer_.cancel();
    ReleaseSlot();
    shard_->SessionEnded(this);
  }

  // --- the reconnect storm (RunSpec.reconnect_storm) ---

  // On the session's first start: when the storm picks this client, a
  // timer for its moment.
  void ArmStorm() {
    const v1::RunSpec& spec = shard_->settings().spec;
    if (storm_ != Storm::kNone || !spec.has_reconnect_storm() ||
        !load::StormSampler(spec.reconnect_storm()).Drops(client_id_)) {
      return;
    }
    storm_ = Storm::kPending;
    const auto at = std::chrono::duration_cast<Clock::duration>(
        absl::ToChronoNanoseconds(FromProtoDuration(spec.reconnect_storm().at())));
    storm_timer_.expires_at(shard_->load_start() + at);
    storm_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) {
        self->OnStorm();
      }
    });
  }

  // The storm's moment: a session with an open, set-up connection drops it
  // the way a network failure would (no close handshake), with or without a
  // request in flight. One that is not connected then (setting up, waiting
  // to reconnect after a failure, closing) is left alone.
  void OnStorm() {
    if (storm_ != Storm::kPending) {
      return;
    }
    storm_ = Storm::kOver;
    const bool connected = phase_ == Phase::kIdle || phase_ == Phase::kScheduled ||
                           phase_ == Phase::kCycle;
    if (cancelled_ || shard_->cancelled() || !connected || channel_.empty()) {
      // Kept only for the storm, unless a set-up still has to send it.
      if (phase_ != Phase::kQueued && phase_ != Phase::kCreate && phase_ != Phase::kConnect) {
        std::string().swap(token_);
      }
      return;
    }
    // token_ was kept for this: the reconnection presents it again.
    conn_.Abort();
    storm_ = Storm::kAway;
    dropped_at_ = Clock::now();
    const auto away = std::chrono::duration_cast<Clock::duration>(absl::ToChronoNanoseconds(
        FromProtoDuration(shard_->settings().spec.reconnect_storm().reconnect_after())));
    storm_timer_.expires_after(away);
    storm_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) {
        self->StormReconnect();
      }
    });
  }

  void StormReconnect() {
    if (storm_ != Storm::kAway || cancelled_ || phase_ == Phase::kDone) {
      return;
    }
    connect_start_ = Clock::now();
    // The reconnection's own deadline (the request in flight keeps its own).
    storm_timer_.expires_after(shard_->settings().request_timeout);
    storm_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && (self->storm_ == Storm::kAway || self->storm_ == Storm::kRecovering)) {
        self->storm_ = Storm::kOver;
        self->conn_.Abort();
        self->FailActive(v1::TIMEOUT, "reconnection timed out");
      }
    });
    const TargetInfo& t = shard_->settings().TargetFor(client_id_);
    conn_.Open(t, JoinTarget(t.ws_base_path, "/connection/websocket", t.ws_query), t.headers,
               static_cast<uint64_t>(client_id_), shared_from_this());
  }

  // The connect reply of the reconnection; its recovered publications
  // follow as events of their own.
  void OnReconnected(const cf::ServerEvent& e, Clock::time_point now) {
    storm_ = Storm::kOver;
    storm_timer_.cancel();
    pong_ = e.pong;
    M().RecordUs(v1::TIME_TO_RECONNECT, Micros(now - dropped_at_));
    M().Add(v1::RECONNECTS);
    after_reconnect_ = true;
    if (e.has_sub && std::string_view(e.epoch) != epoch_) {
      // A new stream (the channel's history is gone): offsets start again,
      // and what the old stream published after last_offset_ is lost
      // uncounted.
      LLMLOAD_LOG(kDebug, "Channel epoch changed across the reconnection.")
          .Kv("client_id", client_id_)
          .Kv("recovered", e.recovered);
      TakePosition(e);
    }
    if (run_waits_) {
      run_waits_ = false;
      SendRun();
    }
  }

  // The stream position of a connect reply's subscription.
  void TakePosition(const cf::ServerEvent& e) {
    if (!e.has_sub) {
      return;
    }
    channel_ = std::string(e.channel);
    epoch_ = std::string(e.epoch);
    last_offset_ = e.offset;
  }

  void AddHttpBytes(const HttpResult& r) {
    M().Add(v1::BYTES_IN, r.bytes_in);
    M().Add(v1::BYTES_OUT, r.bytes_out);
  }

  std::shared_ptr<LoopShard> shard_;
  const int32_t client_id_;
  WsConnection<kTls> conn_;
  LoopTimer timer_;
  LoopTimer storm_timer_;  // the storm's moment, then the time away
  std::string session_id_;
  std::string token_;  // the connect command's JWT, until it is sent
  Phase phase_ = Phase::kQueued;
  bool pong_ = false;
  bool has_slot_ = false;  // holds one of the loop's connection set-up slots
  bool setup_done_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
  int failures_in_a_row_ = 0;
  int cycle_ = 0;
  // Per cycle.
  bool http_done_ = false;
  bool stream_done_ = false;
  NextStep step_;
  // The channel's stream as this session has seen it: for the recovery
  // after a storm and for counting gaps.
  std::string channel_;
  std::string epoch_;
  uint64_t last_offset_ = 0;
  Storm storm_ = Storm::kNone;
  bool run_waits_ = false;       // a request due while away: sent on return
  bool after_reconnect_ = false;  // the next live token ends the outage's gap
  Clock::time_point dropped_at_;
  RequestMeter meter_;
  Clock::time_point session_start_, connect_start_, done_at_;
};

}  // namespace

std::shared_ptr<Session> MakeCentrifugoSession(std::shared_ptr<LoopShard> shard,
                                               int32_t client_id) {
  if (shard->settings().TargetFor(client_id).ws_tls) {
    return std::make_shared<CentrifugoSession<true>>(std::move(shard), client_id);
  }
  return std::make_shared<CentrifugoSession<false>>(std::move(shard), client_id);
}

}  // namespace llmload::worker
