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
#include "services/worker/session_driver.h"
#include "services/worker/ws_connection.h"

namespace llmload::worker {
namespace {

namespace json = boost::json;
namespace cf = protocol::centrifugo;

constexpr uint32_t kConnectCommandId = 1;
constexpr size_t kMaxWsMessageBytes = 1 << 20;

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
// its own. The lifecycle is the shared skeleton's (session_driver.h): the
// set-up (session create, connect, upgrade, connect reply) holds one of the
// loop's connection slots and is bounded by connectTimeout; a session lost
// after it opened is set up again (a new emulator session) after the
// backoff; the first set-up is not retried.
//
// RunSpec.reconnect_storm: a session the storm picks drops its WebSocket at
// the storm's moment (no close handshake, as a network failure would), stays
// away reconnectAfter, and connects again with the same token asking the
// emulator to recover the channel from the last offset it saw. Its phase
// (a request in flight stays in flight) and its one timer carry on; the
// storm's moments are the driver's own deadline (DriverDeadline).
template <bool kTls>
class CentrifugoSession final : public SessionDriver, public WsConnectionOwner {
 public:
  CentrifugoSession(std::shared_ptr<LoopShard> shard, int32_t client_id)
      : SessionDriver(std::move(shard), client_id),
        conn_(this->shard().ioc(), *this, kMaxWsMessageBytes) {
    const v1::RunSpec& spec = S().spec;
    if (spec.has_reconnect_storm() &&
        load::StormSampler(spec.reconnect_storm()).Drops(this->client_id())) {
      storm_ = Storm::kPending;
      storm_at_ = this->shard().load_start() + ToClock(spec.reconnect_storm().at());
    }
  }

  // ---- WsConnectionOwner ----

  void OnWsOpen(Clock::time_point now) override {
    M().RecordUs(v1::CONNECT, Micros(now - ws_start_));
    if (storm_ == Storm::kReconnecting) {
      // Back after the storm: ask for what the channel published meanwhile.
      Send(cf::EncodeConnectCommand(token_, kConnectCommandId,
                                    cf::StreamPosition{channel_, last_offset_, epoch_}));
      return;
    }
    Send(cf::EncodeConnectCommand(token_, kConnectCommandId));
    if (storm_ != Storm::kPending) {
      std::string().swap(token_);  // sent: no need to keep it (a storm reconnection needs it)
    }
  }

  void OnWsMessage(std::string_view message, Clock::time_point now) override {
    if (ended()) {
      return;
    }
    M().Add(v1::BYTES_IN, message.size());
    bool stop = false;
    const absl::Status s = shard().centrifugo_parser().Parse(
        message, [&](const cf::ServerEvent& e) { stop = stop || !HandleEvent(e, now); });
    if (!s.ok() && !stop && Live()) {
      Lost(v1::PROTOCOL_ERROR, "malformed centrifugo frame");
    }
  }

  void OnWsEnd(WsEnd end, std::string_view why) override {
    if (ended()) {
      return;
    }
    if (phase() == Phase::kClosing) {
      return Closed();
    }
    if (storm_ == Storm::kReconnecting) {
      storm_ = Storm::kOver;  // the reconnection failed: the session starts over
    }
    Lost(WsEndCounter(end, conn_.refused_status()), why);
  }

 private:
  std::string Path(std::string_view p) const {
    const TargetInfo& t = S().TargetFor(client_id());
    return JoinTarget(t.base_path, p, t.query);
  }

  bool Connecting() const { return phase() == Phase::kQueued || phase() == Phase::kConnecting; }

  // RunSpec.reconnect_storm, for a session it picks.
  enum class Storm : uint8_t {
    kNone,          // not dropped by the storm (or no storm)
    kPending,       // to be dropped at storm_at_
    kAway,          // dropped: connects again at storm_at_
    kReconnecting,  // the connection and its recovering connect, due by storm_at_
    kOver,
  };

  static Clock::duration ToClock(const google::protobuf::Duration& d) {
    return std::chrono::duration_cast<Clock::duration>(
        absl::ToChronoNanoseconds(FromProtoDuration(d)));
  }

  bool StormAway() const { return storm_ == Storm::kAway || storm_ == Storm::kReconnecting; }

  // Whether the connection that delivers events is still the session's:
  // not after it ended, was abandoned or was lost.
  bool Live() const { return !ended() && phase() != Phase::kBackoff; }

  // The connection failed: the set-up (the first one ends the session;
  // a later one is tried again while attempts remain), or an open session,
  // which is set up anew after the backoff.
  void Lost(v1::Counter counter, std::string_view why) {
    if (Connecting()) {
      return SetupFailed(counter, why, /*fatal=*/!opened());
    }
    LLMLOAD_LOG(kDebug, "Session failed.")
        .Kv("client_id", client_id())
        .Kv("session_id", session_id_)
        .Kv("reason", std::string(why));
    ConnectionLost(counter);
  }

  // ---- the skeleton's hooks ----

  // Set-up: a new emulator session (the one a lost connection leaves behind
  // is deleted; nobody waits for the answer), then the WebSocket.
  void OpenConnection() override {
    ++attempt_;
    DeleteSession(/*then_finish=*/false);
    // A new emulator session: a new channel.
    std::string().swap(channel_);
    std::string().swap(epoch_);
    last_offset_ = 0;
    after_reconnect_ = false;
    shard().http(client_id()).Request(
        HttpCall{http::verb::post, Path("/api/sessions/create"), ""},
        [self = Self(), attempt = attempt_](HttpResult&& r) {
          self->OnCreated(std::move(r), attempt);
        });
  }

  void AbortConnection() override {
    conn_.Abort();
    if (StormAway()) {
      storm_ = Storm::kOver;  // the session is lost or ends: no recovery
      run_waits_ = false;
    }
  }

  void CloseConnection() override {
    if (StormAway()) {
      // The last response completed while the storm kept the session away.
      storm_ = Storm::kOver;
      return Closed();
    }
    conn_.Close();  // OnWsEnd calls Closed
  }

  // The emulator session is deleted before the session ends (unless the
  // run was cancelled: then nothing more goes to the target).
  void Teardown() override {
    conn_.Abort();
    if (session_id_.empty() || shard().cancelled()) {
      return Finish();
    }
    DeleteSession(/*then_finish=*/true);
  }

  std::shared_ptr<CentrifugoSession> Self() {
    return std::static_pointer_cast<CentrifugoSession>(shared_from_this());
  }

  void OnCreated(HttpResult&& r, uint32_t attempt) {
    if (ended() || attempt != attempt_ || phase() != Phase::kConnecting) {
      return;
    }
    AddHttpBytes(r);
    if (r.ec || r.response.result_int() != 200) {
      const v1::Counter c = ClassifyHttp(r);
      return SetupFailed(c, "session create failed", /*fatal=*/!opened() || c == v1::HTTP_4XX);
    }
    json::error_code ec;
    json::value v = json::parse(r.response.body(), ec);
    const json::object* o = (!ec && v.is_object()) ? &v.get_object() : nullptr;
    const json::value* sid = o != nullptr ? o->if_contains("session_id") : nullptr;
    const json::value* tok = o != nullptr ? o->if_contains("token") : nullptr;
    if (sid == nullptr || tok == nullptr || !sid->is_string() || !tok->is_string()) {
      return SetupFailed(v1::PROTOCOL_ERROR, "session create answer lacks session_id/token",
                         /*fatal=*/!opened());
    }
    session_id_ = std::string(sid->get_string());
    token_ = std::string(tok->get_string());
    ws_start_ = Clock::now();
    const TargetInfo& t = S().TargetFor(client_id());
    conn_.Open(t, JoinTarget(t.ws_base_path, "/connection/websocket", t.ws_query), t.headers,
               static_cast<uint64_t>(client_id()), shared_from_this());
  }

  void Send(std::string_view text) {
    M().Add(v1::BYTES_OUT, text.size());
    conn_.SendText(text);
  }

  // Returns false when the events that follow in the message are moot.
  bool HandleEvent(const cf::ServerEvent& e, Clock::time_point now) {
    switch (e.kind) {
      case cf::ServerEvent::Kind::kPing:
        if (pong_) {
          Send(cf::kPongCommand);
        }
        return true;
      case cf::ServerEvent::Kind::kConnectReply:
        if (storm_ == Storm::kReconnecting && e.id == kConnectCommandId) {
          OnReconnected(e, now);
          return Live();
        }
        if (phase() == Phase::kConnecting && e.id == kConnectCommandId) {
          pong_ = e.pong;
          TakePosition(e);
          SetupDone(now);  // a reconnection is not a new session
        }
        return Live();
      case cf::ServerEvent::Kind::kReplyError:
        if (storm_ == Storm::kReconnecting && e.id == kConnectCommandId) {
          storm_ = Storm::kOver;
          Lost(v1::CONNECT_FAILED, "reconnect rejected");
          return false;
        }
        if (phase() == Phase::kConnecting && e.id == kConnectCommandId) {
          SetupFailed(v1::CONNECT_FAILED, "connect rejected", /*fatal=*/true);
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
        if (phase() == Phase::kInFlight) {
          if (e.has_token) {
            OnToken(now, /*record_gap=*/!burst);
          }
          if (e.done && !stream_done_ && phase() == Phase::kInFlight) {
            stream_done_ = true;
            done_at_ = now;
            MaybeFinishCycle();
          }
        }
        return Live();
      }
      case cf::ServerEvent::Kind::kDisconnectPush:
        Lost(v1::DISCONNECTED, "server disconnect");
        return false;
      default:
        return true;
    }
  }

  // --- cycles ---

  void SendRequest() override {
    http_done_ = stream_done_ = false;
    if (StormAway()) {
      // No connection to receive the tokens: the request goes out (and its
      // meter starts) when the session is back.
      run_waits_ = true;
      return;
    }
    const int64_t cycle = request_number();
    json::object body;
    body["session_id"] = session_id_;
    // The spec's prompt for this request (of a conversation, its last user
    // message), else the original client's question.
    const std::string question = absl::StrCat("Question ", cycle, " from client ", client_id());
    const RequestPrompt prompt =
        PromptFor(S(), client_id(), cycle, /*whole_conversation=*/false, question);
    body["question"] = json::string_view(prompt.text.data(), prompt.text.size());
    const auto& emu = S().spec.emulation();
    if (prompt.length_words > 0) {
      body["length_words"] = prompt.length_words;
    }
    if (emu.has_token_delay()) {
      body["token_delay_seconds"] = absl::ToDoubleSeconds(FromProtoDuration(emu.token_delay()));
    }
    meter().SetInputEstimate(prompt.estimated_input_tokens);  // the API reports no usage
    HttpCall run{http::verb::post, Path("/api/run"), json::serialize(body)};
    shard().http(client_id()).Request(std::move(run), [self = Self(), cycle](HttpResult&& r) {
      self->OnRunResponse(std::move(r), cycle);
    });
  }

  void OnRunResponse(HttpResult&& r, int64_t cycle) {
    if (ended() || phase() != Phase::kInFlight || cycle != request_number()) {
      return;
    }
    AddHttpBytes(r);
    if (r.ec || r.response.result_int() / 100 != 2) {
      const v1::Counter c = ClassifyHttp(r);
      if (c == v1::TIMEOUT) {
        return Lost(c, "/api/run timed out");
      }
      // The request was refused: no tokens will come. Count it, go on.
      return RequestFailed(c);
    }
    M().RecordUs(v1::REQUEST, Micros(r.headers_at - meter().send_at()));
    http_done_ = true;
    MaybeFinishCycle();
  }

  // One publication, one token.
  void OnToken(Clock::time_point now, bool record_gap) {
    if (meter().Chunk(M(), now, record_gap)) {
      Schedule();  // the idle gap replaces the ttft limit
    }
    if (meter().CancelDue(now)) {
      Abandon(now);
    }
  }

  void MaybeFinishCycle() {
    if (http_done_ && stream_done_) {
      RequestCompleted(done_at_, /*reported_tokens=*/-1);
    }
  }

  // --- the reconnect storm ---

  Clock::time_point DriverDeadline() const override {
    return storm_ == Storm::kNone || storm_ == Storm::kOver ? kNever : storm_at_;
  }

  void OnDriverDeadline(Clock::time_point now) override {
    switch (storm_) {
      case Storm::kPending:
        return OnStorm(now);
      case Storm::kAway:
        return StormReconnect(now);
      case Storm::kReconnecting:
        storm_ = Storm::kOver;
        return Lost(v1::TIMEOUT, "reconnection timed out");
      default:
        return;
    }
  }

  // The storm's moment: a session with an open, set-up connection drops it,
  // with or without a request in flight. One that is not connected then
  // (setting up, waiting to reconnect after a failure, closing) is left
  // alone.
  void OnStorm(Clock::time_point now) {
    storm_ = Storm::kOver;
    const bool connected = phase() == Phase::kIdle || phase() == Phase::kScheduled ||
                           phase() == Phase::kInFlight;
    if (ended() || shard().cancelled() || !connected || channel_.empty()) {
      // Kept only for the storm, unless a set-up still has to send it.
      if (!Connecting()) {
        std::string().swap(token_);
      }
      return;
    }
    conn_.Abort();
    storm_ = Storm::kAway;
    dropped_at_ = now;
    storm_at_ = now + ToClock(S().spec.reconnect_storm().reconnect_after());
  }

  // Back from the storm, without a set-up slot: the connection is the
  // session's own, and the whole reconnection is due within connectTimeout.
  void StormReconnect(Clock::time_point now) {
    storm_ = Storm::kReconnecting;
    storm_at_ = now + S().connect_timeout;
    ws_start_ = now;
    const TargetInfo& t = S().TargetFor(client_id());
    conn_.Open(t, JoinTarget(t.ws_base_path, "/connection/websocket", t.ws_query), t.headers,
               static_cast<uint64_t>(client_id()), shared_from_this());
  }

  // The connect reply of the reconnection; its recovered publications follow
  // as events of their own.
  void OnReconnected(const cf::ServerEvent& e, Clock::time_point now) {
    storm_ = Storm::kOver;
    std::string().swap(token_);
    pong_ = e.pong;
    M().RecordUs(v1::TIME_TO_RECONNECT, Micros(now - dropped_at_));
    M().Add(v1::RECONNECTS);
    after_reconnect_ = true;
    if (e.has_sub && std::string_view(e.epoch) != epoch_) {
      // A new stream (the channel's history is gone): offsets start again,
      // and what the old stream published after last_offset_ is lost
      // uncounted.
      LLMLOAD_LOG(kDebug, "Channel epoch changed across the reconnection.")
          .Kv("client_id", client_id())
          .Kv("recovered", e.recovered);
      TakePosition(e);
    }
    if (run_waits_ && phase() == Phase::kInFlight) {
      run_waits_ = false;
      meter().Begin(now);
      SendRequest();
    }
  }

  // The stream position of a connect reply's subscription. Only a session
  // the storm will drop keeps the channel and epoch (for its recovering
  // connect); every session counts gaps by offset.
  void TakePosition(const cf::ServerEvent& e) {
    if (!e.has_sub) {
      return;
    }
    last_offset_ = e.offset;
    if (storm_ == Storm::kPending || storm_ == Storm::kOver) {
      channel_ = std::string(e.channel);
      epoch_ = std::string(e.epoch);
    }
  }

  // DELETE /api/sessions/{id}: fire and forget, or then end the session.
  void DeleteSession(bool then_finish) {
    if (session_id_.empty()) {
      if (then_finish) {
        Finish();
      }
      return;
    }
    HttpCall del{http::verb::delete_, Path(absl::StrCat("/api/sessions/", session_id_)), ""};
    session_id_.clear();
    shard().http(client_id()).Request(std::move(del), [self = Self(), then_finish](HttpResult&& r) {
      self->AddHttpBytes(r);
      if (then_finish) {
        self->Finish();
      }
    });
  }

  void AddHttpBytes(const HttpResult& r) {
    M().Add(v1::BYTES_IN, r.bytes_in);
    M().Add(v1::BYTES_OUT, r.bytes_out);
  }

  WsConnection<kTls> conn_;
  std::string session_id_;
  std::string token_;  // the connect command's JWT, until it is sent
  Clock::time_point ws_start_, done_at_;
  uint32_t attempt_ = 0;  // set-ups begun: an answer to an earlier one is moot
  bool pong_ = false;
  // The channel's stream as this session has seen it: for the recovery
  // after a storm and for counting gaps.
  std::string channel_;
  std::string epoch_;
  uint64_t last_offset_ = 0;
  Storm storm_ = Storm::kNone;
  bool run_waits_ = false;        // a request due while away: sent on return
  bool after_reconnect_ = false;  // the next live token ends the outage's gap
  Clock::time_point storm_at_ = kNever;  // the storm's next moment for this session
  Clock::time_point dropped_at_;
  // Per cycle.
  bool http_done_ = false;
  bool stream_done_ = false;
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
