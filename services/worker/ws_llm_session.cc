#include "services/worker/ws_llm_session.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/protocol/ws_llm_client.h"
#include "services/common/grpc_util.h"
#include "services/worker/session_util.h"
#include "services/worker/ws_connection.h"

namespace llmload::worker {
namespace {

namespace wsllm = protocol::wsllm;

constexpr size_t kMaxMessageBytes = 1 << 20;
constexpr auto kKeepAlive = std::chrono::seconds(20);
// How long a close handshake may take before the socket is just dropped.
constexpr auto kCloseGrace = std::chrono::seconds(2);
constexpr Clock::time_point kNever = Clock::time_point::max();

// The tool frames of one ws-chat request (target.tools): times from the
// send to the first tool_call and the first tool_result, the distinct
// toolCallIds announced and the tool_result frames. Recorded only when the
// request completes.
class ToolFrames {
 public:
  void Begin(Clock::time_point sent) {
    sent_ = sent;
    first_call_ = first_result_ = kNever;
    call_ids_.clear();
    results_ = 0;
  }
  void OnFrame(const wsllm::WsEvent& e, Clock::time_point now) {
    if (e.kind == wsllm::WsEvent::Kind::kToolCall) {
      first_call_ = std::min(first_call_, now);
      // A call reports several frames (start, progress, complete): count
      // its id once. Bounded: a target announcing more ids is not believed.
      if (call_ids_.size() < kMaxCalls &&
          std::find(call_ids_.begin(), call_ids_.end(), e.tool_call_id) == call_ids_.end()) {
        call_ids_.emplace_back(e.tool_call_id);
      }
    } else {
      first_result_ = std::min(first_result_, now);
      ++results_;
    }
  }
  void Record(metrics::MetricSet& m) const {
    if (first_call_ != kNever) {
      m.RecordUs(v1::TIME_TO_TOOL_CALL, Micros(first_call_ - sent_));
    }
    if (first_result_ != kNever) {
      m.RecordUs(v1::TIME_TO_TOOL_RESULT, Micros(first_result_ - sent_));
    }
    if (!call_ids_.empty()) {
      m.Add(v1::TOOL_CALLS, call_ids_.size());
    }
    if (results_ > 0) {
      m.Add(v1::TOOL_RESULTS, results_);
    }
  }

 private:
  static constexpr size_t kMaxCalls = 256;
  Clock::time_point sent_{};
  Clock::time_point first_call_ = kNever, first_result_ = kNever;
  std::vector<std::string> call_ids_;
  uint64_t results_ = 0;
};

// Realm's name of a target.realmFunction.
std::string_view RealmFunctionName(v1::RealmFunction f) {
  switch (f) {
    case v1::REALM_HEALTH:
      return "health";
    case v1::REALM_METADATA:
      return "metadata";
    case v1::REALM_PIPELINE:
      return "pipeline";
    default:
      return "generate";
  }
}

// kTls: the WebSocket runs over TLS (wss).
//
// Timeouts cost nothing per token: the session keeps one timer, armed for
// the earliest thing it must act on (a set-up or request deadline, the next
// keep-alive, a scheduled request or reconnect). Each chunk only stamps its
// arrival; when the timer fires, the deadline is recomputed from those
// stamps and the timer re-armed if the session is still within it.
template <bool kTls>
class WsLlmSession final : public Session,
                           public WsConnectionOwner,
                           public std::enable_shared_from_this<WsLlmSession<kTls>> {
  using std::enable_shared_from_this<WsLlmSession<kTls>>::shared_from_this;

 public:
  WsLlmSession(std::shared_ptr<LoopShard> shard, int32_t client_id)
      : shard_(std::move(shard)),
        client_id_(client_id),
        client_(shard_->settings().spec.target().protocol() == v1::REALM ? wsllm::Dialect::kRealm
                                                                         : wsllm::Dialect::kWsChat),
        conn_(shard_->ioc(), *this, kMaxMessageBytes),
        timer_(shard_->ioc().get_executor()) {
    keepalive_ = !client_.EncodeKeepAlive("x").empty();
    const auto& tools = shard_->settings().spec.target().tools();
    tools_.assign(tools.begin(), tools.end());
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
    conn_.Abort();
    Finish();
  }

  void Resume() override {
    if (phase_ == Phase::kIdle && !cancelled_) {
      Next();
    }
  }

  // ---- WsConnectionOwner ----

  void OnWsOpen(Clock::time_point now) override {
    M().RecordUs(v1::CONNECT, Micros(now - connect_start_));
    conversation_on_conn_ = false;  // a new connection: a new conversation on the server
    phase_ = Phase::kSetup;
    const v1::Target& t = shard_->settings().spec.target();
    std::string api_key;
    if (!t.api_key_env().empty()) {
      if (const char* key = std::getenv(t.api_key_env().c_str()); key != nullptr) {
        api_key = key;
      }
    }
    if (auto opening = client_.OpeningFrame(api_key)) {
      Send(*opening);
    }
  }

  void OnWsMessage(std::string_view message, Clock::time_point now) override {
    M().Add(v1::BYTES_IN, message.size());
    const absl::Status s =
        client_.Parse(message, [&](const wsllm::WsEvent& e) { OnEvent(e, now); });
    if (!s.ok() && !done_ && conn_.is_open()) {
      conn_.Abort();
      if (phase_ == Phase::kConnecting || phase_ == Phase::kSetup) {
        return SetupFailed(v1::PROTOCOL_ERROR, "malformed message during set-up");
      }
      ConnectionLost(v1::PROTOCOL_ERROR);
    }
  }

  void OnWsEnd(WsEnd end, std::string_view why) override {
    if (done_) {
      return;
    }
    if (phase_ == Phase::kClosing) {
      return Finish();
    }
    const v1::Counter counter = WsEndCounter(end, conn_.refused_status());
    if (phase_ == Phase::kConnecting || phase_ == Phase::kSetup) {
      return SetupFailed(counter, why);
    }
    ConnectionLost(counter);
  }

 private:
  enum class Phase {
    kQueued,      // waiting for a connection set-up slot of the loop
    kConnecting,  // TCP, TLS, upgrade
    kSetup,       // upgraded; waiting for the target's ready (auth, welcome)
    kIdle,        // ready, the load model said wait
    kScheduled,   // a request is due at due_
    kInFlight,
    kBackoff,     // reconnecting at due_
    kClosing,
    kDone,
  };

  metrics::MetricSet& M() { return shard_->metrics(this); }

  const ShardSettings& S() const { return shard_->settings(); }

  // ---- connection and set-up ----

  void Connect() {
    phase_ = Phase::kQueued;
    if (!shard_->AcquireConnectSlot(shared_from_this())) {
      return;  // OnConnectSlot continues
    }
    has_slot_ = true;
    OpenConnection();
  }

  void OnConnectSlot() override {
    has_slot_ = true;
    if (done_ || cancelled_) {
      return ReleaseSlot();
    }
    OpenConnection();
  }

  // The set-up ended (ready, failed or abandoned): the next session may
  // connect.
  void ReleaseSlot() {
    if (has_slot_) {
      has_slot_ = false;
      shard_->ReleaseConnectSlot();
    }
  }

  void OpenConnection() {
    phase_ = Phase::kConnecting;
    connect_start_ = Clock::now();
    const TargetInfo& t = shard_->settings().TargetFor(client_id_);
    const std::string path = JoinTarget(
        t.ws_base_path,
        t.ws_base_path.empty() && client_.dialect() == wsllm::Dialect::kWsChat ? "/api/ws" : "",
        t.ws_query);
    conn_.Open(t, path, t.headers, static_cast<uint64_t>(client_id_), shared_from_this());
    Schedule();
  }

  void OnReady(Clock::time_point now) {
    ReleaseSlot();
    if (!opened_) {
      opened_ = true;
      M().RecordUs(v1::SESSION_SETUP, Micros(now - session_start_));
      M().Add(v1::SESSIONS_OPENED);
    }
    failures_in_a_row_ = 0;
    keepalive_at_ = keepalive_ ? now + kKeepAlive : kNever;
    Next();
  }

  void SetupFailed(v1::Counter counter, std::string_view why) {
    if (done_) {
      return;
    }
    M().Add(counter);
    conn_.Abort();
    ReleaseSlot();
    if (counter == v1::HTTP_4XX || failures_in_a_row_ >= S().reconnect_attempts ||
        shard_->cancelled()) {
      if (!opened_) {
        M().Add(v1::SESSIONS_FAILED);
      }
      LLMLOAD_LOG(kDebug, "Session set-up failed.")
          .Kv("client_id", client_id_)
          .Kv("reason", std::string(why));
      return Finish();
    }
    Reconnect();
  }

  void Reconnect() {
    const auto wait = BackoffDelay(S().reconnect_backoff, failures_in_a_row_,
                                   static_cast<uint64_t>(client_id_));
    ++failures_in_a_row_;
    M().Add(v1::RECONNECTS);
    phase_ = Phase::kBackoff;
    due_ = Clock::now() + wait;
    keepalive_at_ = kNever;
    Schedule();
  }

  void Send(std::string_view text) {
    M().Add(v1::BYTES_OUT, text.size());
    conn_.SendText(text);
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
        // After the first chunk the deadline becomes the idle gap, which may
        // be sooner than the time-to-first-token limit the timer was armed
        // for; later chunks only move it later, which the timer finds when
        // it fires.
        if (phase_ != Phase::kInFlight) {
          return;
        }
        if (meter_.Chunk(M(), now)) {
          Schedule();
        }
        if (meter_.CancelDue(now)) {
          Abandon(now);
        }
        return;
      case Kind::kToolCall:
      case Kind::kToolResult:
        if (phase_ == Phase::kInFlight) {
          tool_frames_.OnFrame(e, now);
        }
        return;
      case Kind::kComplete:
        if (phase_ == Phase::kInFlight) {
          if (e.reported_input_tokens >= 0) {
            meter_.ReportInput(e.reported_input_tokens);
          }
          tool_frames_.Record(M());
          shard_->RequestDone(this, meter_.Complete(M(), now, e.reported_tokens));
          Next();
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
        return Schedule();
      case NextStep::Kind::kRequest:
        break;
    }
    requests_ = step.cycle;
    step_ = step;
    const Clock::time_point due = DueTime(step, retry_after_);
    if (due > Clock::now()) {
      phase_ = Phase::kScheduled;
      due_ = due;
      return Schedule();
    }
    SendRequest();
  }

  void SendRequest() {
    const ShardSettings& s = shard_->settings();
    const v1::Target& t = s.spec.target();
    const v1::Emulation& emu = s.spec.emulation();
    // One prompt per request: of a conversation, its last user message.
    const RequestPrompt prompt =
        PromptFor(s, client_id_, requests_, /*whole_conversation=*/false, "Say something.");
    const std::string request_id = absl::StrCat("llmload_", client_id_, "_", requests_);
    wsllm::RequestParams p;
    p.id = request_id;
    p.prompt = prompt.text;
    p.model = t.model();
    p.tenant = t.tenant();
    p.max_tokens = prompt.max_tokens > 0 ? prompt.max_tokens : emu.length_words();
    if (emu.has_token_delay()) {
      p.token_delay_ms = absl::ToDoubleMilliseconds(FromProtoDuration(emu.token_delay()));
    }
    p.tools = tools_;
    int64_t input_estimate = prompt.estimated_input_tokens;
    if (client_.dialect() == wsllm::Dialect::kRealm) {
      p.stream = !t.no_stream();
      p.function = RealmFunctionName(t.realm_function());
      p.pipeline = t.realm_pipeline();
      if (t.realm_function() == v1::REALM_HEALTH || t.realm_function() == v1::REALM_METADATA) {
        input_estimate = 0;  // no prompt goes out
      }
    }
    phase_ = Phase::kInFlight;
    // Multi-turn (Target.turns): WS chat keeps the conversation of the
    // connection on the server; turn 1 of the next one clears it first.
    if (step_.turn == 1 && conversation_on_conn_ &&
        client_.dialect() == wsllm::Dialect::kWsChat) {
      Send(absl::StrCat("{\"type\":\"control\",\"id\":\"", request_id,
                        "_clear\",\"data\":{\"type\":\"clear_history\"}}"));
    }
    conversation_on_conn_ = step_.turn > 0;
    tool_frames_.Begin(Clock::now());
    meter_.Begin(step_, Clock::now());
    meter_.SetInputEstimate(input_estimate);
    Send(client_.EncodeRequest(p));
    Schedule();
  }

  void RequestFailed(const wsllm::WsEvent& e) {
    v1::Counter c = v1::HTTP_5XX;
    if (e.error_code == "RATE_LIMIT_EXCEEDED") {
      c = v1::RATE_LIMITED;
      retry_after_ = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(
                                        std::max(0.0, e.retry_after_seconds) * 1000));
    } else if (e.error_code == "UNAUTHORIZED" || e.error_code == "DISPATCH_ERROR" ||
               e.error_code == "INVALID_MESSAGE" || e.error_code == "UNKNOWN_MESSAGE_TYPE") {
      c = v1::HTTP_4XX;
    }
    shard_->RequestDone(this, RequestMeter::Fail(M(), c));
    Next();
  }

  // The connection broke (or sent garbage, or a deadline passed): the
  // request in flight fails, the session reconnects and goes on.
  void ConnectionLost(v1::Counter counter) {
    if (phase_ == Phase::kInFlight) {
      shard_->RequestDone(this, RequestMeter::Fail(M(), counter));
    } else if (counter == v1::PROTOCOL_ERROR || counter == v1::TIMEOUT) {
      M().Add(counter);
    }
    conn_.Abort();
    if (shard_->cancelled()) {
      return Finish();
    }
    failures_in_a_row_ = 0;
    Reconnect();
  }

  // The spec abandons the request in flight (RunSpec.cancellation), as a
  // user closing the tab: the connection is dropped mid-response, the
  // request counts as cancelled, and the session connects again at once
  // (not a reconnection after a failure) for its next request.
  void Abandon(Clock::time_point now) {
    shard_->RequestDone(this, meter_.Abandon(M(), now));
    conn_.Abort();
    if (shard_->cancelled()) {
      return Finish();
    }
    phase_ = Phase::kBackoff;
    due_ = now;
    keepalive_at_ = kNever;
    Schedule();
  }

  void BeginClose() {
    phase_ = Phase::kClosing;
    due_ = Clock::now() + kCloseGrace;
    keepalive_at_ = kNever;
    conn_.Close();  // OnWsEnd finishes the session
    if (!done_) {
      Schedule();
    }
  }

  // ---- the one timer ----

  // The moment the session must act next in its current phase.
  Clock::time_point Deadline() const {
    switch (phase_) {
      case Phase::kConnecting:
      case Phase::kSetup:
        return connect_start_ + S().connect_timeout;
      case Phase::kInFlight: {
        const Clock::time_point whole = meter_.send_at() + S().request_timeout;
        const Clock::time_point limit = std::min(whole, meter_.cancel_at());
        if (!meter_.got_first()) {
          return std::min(limit, meter_.send_at() + S().ttft_timeout);
        }
        return std::min(limit, meter_.last_at() + S().idle_timeout);
      }
      case Phase::kScheduled:
      case Phase::kBackoff:
      case Phase::kClosing:
        return due_;
      case Phase::kQueued:
      case Phase::kIdle:
      case Phase::kDone:
        return kNever;
    }
    return kNever;
  }

  // Arms the timer for the earliest of the deadline and the keep-alive,
  // unless it is already armed for that moment or earlier (it then fires,
  // finds nothing due, and re-arms).
  void Schedule() {
    const Clock::time_point next = std::min(Deadline(), keepalive_at_);
    if (next == kNever || next >= armed_for_) {
      return;
    }
    armed_for_ = next;
    timer_.expires_at(next);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) {
        self->OnTimer();
      }
    });
  }

  void OnTimer() {
    armed_for_ = kNever;
    if (done_) {
      return;
    }
    const Clock::time_point now = Clock::now();
    if (now >= keepalive_at_) {
      keepalive_at_ = now + kKeepAlive;
      if (conn_.is_open()) {
        Send(client_.EncodeKeepAlive(absl::StrCat("keepalive_", client_id_)));
      }
    }
    if (now >= Deadline()) {
      switch (phase_) {
        case Phase::kConnecting:
        case Phase::kSetup:
          return SetupFailed(v1::TIMEOUT, "set-up timed out");
        case Phase::kInFlight:
          if (meter_.CancelDue(now)) {
            return Abandon(now);
          }
          return ConnectionLost(v1::TIMEOUT);
        case Phase::kScheduled:
          SendRequest();
          break;
        case Phase::kBackoff:
          Connect();
          break;
        case Phase::kClosing:
          conn_.Abort();
          return Finish();
        case Phase::kQueued:
        case Phase::kIdle:
        case Phase::kDone:
          break;
      }
    }
    Schedule();
  }

  void Finish() {
    if (done_) {
      return;
    }
    done_ = true;
    phase_ = Phase::kDone;
    timer_.cancel();
    ReleaseSlot();
    shard_->SessionEnded(this);
  }

  std::shared_ptr<LoopShard> shard_;
  const int32_t client_id_;
  wsllm::WsLlmClient client_;
  WsConnection<kTls> conn_;
  LoopTimer timer_;
  Clock::time_point armed_for_ = kNever;

  Phase phase_ = Phase::kConnecting;
  bool keepalive_ = false;
  bool has_slot_ = false;  // holds one of the loop's connection set-up slots
  bool opened_ = false;
  bool conversation_on_conn_ = false;  // multi-turn: the server holds one of ours
  bool cancelled_ = false;
  bool done_ = false;
  int failures_in_a_row_ = 0;
  int64_t requests_ = 0;
  NextStep step_;
  RequestMeter meter_;
  std::vector<std::string> tools_;  // target.tools, sent with every ws-chat request
  ToolFrames tool_frames_;
  Clock::time_point session_start_, connect_start_, retry_after_;
  Clock::time_point due_ = kNever, keepalive_at_ = kNever;
};

}  // namespace

std::shared_ptr<Session> MakeWsLlmSession(std::shared_ptr<LoopShard> shard, int32_t client_id) {
  if (shard->settings().TargetFor(client_id).ws_tls) {
    return std::make_shared<WsLlmSession<true>>(std::move(shard), client_id);
  }
  return std::make_shared<WsLlmSession<false>>(std::move(shard), client_id);
}

}  // namespace llmload::worker
