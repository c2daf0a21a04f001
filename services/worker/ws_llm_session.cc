#include "services/worker/ws_llm_session.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/protocol/ws_llm_client.h"
#include "services/common/grpc_util.h"
#include "services/worker/session_driver.h"
#include "services/worker/ws_connection.h"

namespace llmload::worker {
namespace {

namespace wsllm = protocol::wsllm;

constexpr size_t kMaxMessageBytes = 1 << 20;
constexpr auto kKeepAlive = std::chrono::seconds(20);
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

// kTls: the WebSocket runs over TLS (wss). The lifecycle, the one timer
// and reconnection are the shared skeleton's (session_driver.h).
template <bool kTls>
class WsLlmSession final : public SessionDriver, public WsConnectionOwner {
 public:
  WsLlmSession(std::shared_ptr<LoopShard> shard, int32_t client_id)
      : SessionDriver(std::move(shard), client_id),
        client_(S().spec.target().protocol() == v1::REALM ? wsllm::Dialect::kRealm
                                                          : wsllm::Dialect::kWsChat),
        conn_(this->shard().ioc(), *this, kMaxMessageBytes) {
    if (!client_.EncodeKeepAlive("x").empty()) {
      SetKeepAlivePeriod(kKeepAlive);
    }
    const auto& tools = S().spec.target().tools();
    tools_.assign(tools.begin(), tools.end());
  }

  // ---- WsConnectionOwner ----

  void OnWsOpen(Clock::time_point now) override {
    M().RecordUs(v1::CONNECT, Micros(now - connect_start()));
    conversation_on_conn_ = false;  // a new connection: a new conversation on the server
    const v1::Target& t = S().spec.target();
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
    if (!s.ok() && !ended() && conn_.is_open()) {
      if (Connecting()) {
        return SetupFailed(v1::PROTOCOL_ERROR, "malformed message during set-up");
      }
      ConnectionLost(v1::PROTOCOL_ERROR);
    }
  }

  void OnWsEnd(WsEnd end, std::string_view why) override {
    if (ended()) {
      return;
    }
    if (phase() == Phase::kClosing) {
      return Closed();
    }
    const v1::Counter counter = WsEndCounter(end, conn_.refused_status());
    if (Connecting()) {
      return SetupFailed(counter, why, /*fatal=*/counter == v1::HTTP_4XX);
    }
    ConnectionLost(counter);
  }

 private:
  bool Connecting() const { return phase() == Phase::kQueued || phase() == Phase::kConnecting; }

  // ---- the skeleton's hooks ----

  void OpenConnection() override {
    const TargetInfo& t = S().TargetFor(client_id());
    const std::string path = JoinTarget(
        t.ws_base_path,
        t.ws_base_path.empty() && client_.dialect() == wsllm::Dialect::kWsChat ? "/api/ws" : "",
        t.ws_query);
    conn_.Open(t, path, t.headers, static_cast<uint64_t>(client_id()), shared_from_this());
  }

  void AbortConnection() override { conn_.Abort(); }

  void CloseConnection() override { conn_.Close(); }  // OnWsEnd calls Closed

  void SendKeepAlive() override {
    if (conn_.is_open()) {
      Send(client_.EncodeKeepAlive(absl::StrCat("keepalive_", client_id())));
    }
  }

  void Send(std::string_view text) {
    M().Add(v1::BYTES_OUT, text.size());
    conn_.SendText(text);
  }

  void OnEvent(const wsllm::WsEvent& e, Clock::time_point now) {
    using Kind = wsllm::WsEvent::Kind;
    const bool in_flight = phase() == Phase::kInFlight;
    switch (e.kind) {
      case Kind::kReady:
        if (phase() == Phase::kConnecting) {
          SetupDone(now);
        }
        return;
      case Kind::kAuthOk:
        return;  // the welcome follows
      case Kind::kAuthFailed:
        return SetupFailed(v1::HTTP_4XX, "authentication failed", /*fatal=*/true);
      case Kind::kPing:
        Send(e.reply);
        return;
      case Kind::kChunk:
        if (!in_flight) {
          return;
        }
        // After the first chunk the deadline becomes the idle gap, which may
        // be sooner than the time-to-first-token limit the timer was armed
        // for; later chunks only move it later, which the timer finds when
        // it fires.
        if (meter().Chunk(M(), now)) {
          Schedule();
        }
        if (meter().CancelDue(now)) {
          Abandon(now);
        }
        return;
      case Kind::kToolCall:
      case Kind::kToolResult:
        if (in_flight) {
          tool_frames_.OnFrame(e, now);
        }
        return;
      case Kind::kComplete:
        if (in_flight) {
          if (e.reported_input_tokens >= 0) {
            meter().ReportInput(e.reported_input_tokens);
          }
          tool_frames_.Record(M());
          RequestCompleted(now, e.reported_tokens);
        }
        return;
      case Kind::kError:
        if (in_flight) {
          OnErrorFrame(e);
        }
        return;
      case Kind::kIgnore:
        return;
    }
  }

  void SendRequest() override {
    const ShardSettings& s = S();
    const v1::Target& t = s.spec.target();
    const v1::Emulation& emu = s.spec.emulation();
    const int64_t request = request_number();
    // One prompt per request: of a conversation, its last user message.
    const RequestPrompt prompt =
        PromptFor(s, client_id(), request, /*whole_conversation=*/false, "Say something.");
    const std::string request_id = absl::StrCat("llmload_", client_id(), "_", request);
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
    // Multi-turn (Target.turns): WS chat keeps the conversation of the
    // connection on the server; turn 1 of the next one clears it first.
    const int32_t turn = meter().turn();
    if (turn == 1 && conversation_on_conn_ && client_.dialect() == wsllm::Dialect::kWsChat) {
      Send(absl::StrCat("{\"type\":\"control\",\"id\":\"", request_id,
                        "_clear\",\"data\":{\"type\":\"clear_history\"}}"));
    }
    conversation_on_conn_ = turn > 0;
    tool_frames_.Begin(meter().send_at());
    meter().SetInputEstimate(input_estimate);
    Send(client_.EncodeRequest(p));
  }

  // An error frame for the request in flight: classified, and a rate limit's
  // wait honoured before the next request.
  void OnErrorFrame(const wsllm::WsEvent& e) {
    v1::Counter c = v1::HTTP_5XX;
    if (e.error_code == "RATE_LIMIT_EXCEEDED") {
      c = v1::RATE_LIMITED;
      RetryAfter(Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(
                                    std::max(0.0, e.retry_after_seconds) * 1000)));
    } else if (e.error_code == "UNAUTHORIZED" || e.error_code == "DISPATCH_ERROR" ||
               e.error_code == "INVALID_MESSAGE" || e.error_code == "UNKNOWN_MESSAGE_TYPE") {
      c = v1::HTTP_4XX;
    }
    RequestFailed(c);
  }

  wsllm::WsLlmClient client_;
  WsConnection<kTls> conn_;
  bool conversation_on_conn_ = false;  // multi-turn: the server holds one of ours
  std::vector<std::string> tools_;     // target.tools, sent with every ws-chat request
  ToolFrames tool_frames_;
};

}  // namespace

std::shared_ptr<Session> MakeWsLlmSession(std::shared_ptr<LoopShard> shard, int32_t client_id) {
  if (shard->settings().TargetFor(client_id).ws_tls) {
    return std::make_shared<WsLlmSession<true>>(std::move(shard), client_id);
  }
  return std::make_shared<WsLlmSession<false>>(std::move(shard), client_id);
}

}  // namespace llmload::worker
