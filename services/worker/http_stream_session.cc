#include "services/worker/http_stream_session.h"

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/protocol/http1_client.h"
#include "lib/protocol/provider_stream.h"
#include "lib/protocol/sse.h"
#include "services/common/grpc_util.h"
#include "services/worker/conversation.h"
#include "services/worker/http_connection.h"
#include "services/worker/session_util.h"

namespace llmload::worker {
namespace {

namespace llm = protocol::llm;

constexpr size_t kMaxErrorBody = 64 * 1024;
constexpr size_t kMaxJsonBody = 4 << 20;

// kTls: https. The connection is the worker's lean HTTP client
// (http_connection.h): between reads a session holds no read buffer, no
// parser strings and no copy of its request.
template <bool kTls>
class HttpStreamSession final : public Session,
                                public HttpConnectionOwner,
                                public std::enable_shared_from_this<HttpStreamSession<kTls>> {
  using std::enable_shared_from_this<HttpStreamSession<kTls>>::shared_from_this;

 public:
  HttpStreamSession(std::shared_ptr<LoopShard> shard, int32_t client_id)
      : shard_(std::move(shard)),
        client_id_(client_id),
        conn_(shard_->ioc(), *this),
        timer_(shard_->ioc().get_executor()),
        retry_timer_(shard_->ioc().get_executor()) {
    const v1::Target& t = shard_->settings().spec.target();
    protocol_ = t.protocol();
    streaming_ = protocol_ != v1::HTTP_JSON && !t.no_stream();
    if (protocol_ == v1::ANTHROPIC_MESSAGES) {
      provider_ = llm::Provider::kAnthropic;
    } else if (protocol_ == v1::GEMINI) {
      provider_ = llm::Provider::kGemini;
    } else if (protocol_ == v1::OPENAI_RESPONSES) {
      provider_ = llm::Provider::kOpenAiResponses;
    }
    if (!t.api_key_env().empty()) {
      if (const char* key = std::getenv(t.api_key_env().c_str()); key != nullptr) {
        api_key_ = key;
      }
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
    timer_.cancel();
    retry_timer_.cancel();
    conn_.Abort();
    Finish();
  }

  void Resume() override {
    if (phase_ == Phase::kIdle && !cancelled_) {
      Next();
    }
  }

 private:
  enum class Phase { kConnecting, kIdle, kScheduled, kInFlight, kDone };

  metrics::MetricSet& M() { return shard_->metrics(this); }

  // ---- connection ----

  // Every connection, the first and each one after, waits for one of the
  // loop's connection set-up slots (as the WebSocket drivers' do).
  void Connect() {
    phase_ = Phase::kConnecting;
    reused_conn_ = false;
    if (!has_slot_ && !shard_->AcquireConnectSlot(shared_from_this())) {
      return;  // OnConnectSlot opens the connection
    }
    has_slot_ = true;
    OpenConnection();
  }

  void OnConnectSlot() override {
    has_slot_ = true;
    if (done_ || cancelled_ || phase_ != Phase::kConnecting) {
      return ReleaseSlot();
    }
    OpenConnection();
  }

  void OpenConnection() {
    connect_start_ = Clock::now();
    ArmDeadline(shard_->settings().connect_timeout);
    conn_.Open(shard_->settings().TargetFor(client_id_), static_cast<uint64_t>(client_id_),
               shared_from_this());
  }

  // The set-up ended (connected, failed or abandoned): the next session may
  // connect.
  void ReleaseSlot() {
    if (has_slot_) {
      has_slot_ = false;
      shard_->ReleaseConnectSlot();
    }
  }

  // TCP (and TLS) established: the session is usable.
  void OnHttpOpen(Clock::time_point now) override {
    if (cancelled_ || done_) {
      return;
    }
    ReleaseSlot();
    timer_.cancel();
    M().RecordUs(v1::CONNECT, Micros(now - connect_start_));
    if (!opened_) {
      opened_ = true;
      M().RecordUs(v1::SESSION_SETUP, Micros(now - session_start_));
      M().Add(v1::SESSIONS_OPENED);
    }
    failures_in_a_row_ = 0;
    if (pending_request_) {
      // A reconnect in the middle of the session: resend what was due.
      pending_request_ = false;
      return Send();
    }
    Next();
  }

  void OnHttpEnd(HttpEnd end, uint64_t response_bytes, std::string_view why) override {
    if (cancelled_ || done_) {
      return;
    }
    switch (phase_) {
      case Phase::kConnecting:
        timer_.cancel();
        ReleaseSlot();
        M().Add(v1::CONNECT_FAILED);
        return Reconnect(end == HttpEnd::kConnectFailed ? "connect failed" : "connection lost");
      case Phase::kInFlight:
        if (end == HttpEnd::kLost && RetryOnStaleConnection(response_bytes)) {
          return;
        }
        return Fail(end == HttpEnd::kProtocolError ? v1::PROTOCOL_ERROR : v1::DISCONNECTED,
                    std::string(why).c_str());
      case Phase::kIdle:
      case Phase::kScheduled:
      case Phase::kDone:
        // The target closed the idle keep-alive connection (or sent what
        // nobody asked for): the next request connects again.
        reused_conn_ = false;
        return;
    }
  }

  // After a lost connection: back off (1 s, 2 s, 4 s … with jitter) and try
  // again, up to reconnect_attempts times in a row; then the session ends.
  void Reconnect(const char* why) {
    if (cancelled_ || done_) {
      return;
    }
    if (failures_in_a_row_ >= shard_->settings().reconnect_attempts) {
      if (!opened_) {
        M().Add(v1::SESSIONS_FAILED);
      }
      LLMLOAD_LOG(kDebug, "Session gave up reconnecting.")
          .Kv("client_id", client_id_)
          .Kv("reason", why);
      return End();
    }
    const auto wait = BackoffDelay(shard_->settings().reconnect_backoff, failures_in_a_row_,
                                   static_cast<uint64_t>(client_id_));
    ++failures_in_a_row_;
    M().Add(v1::RECONNECTS);
    phase_ = Phase::kConnecting;
    retry_timer_.expires_after(wait);
    retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) {
        self->Connect();
      }
    });
  }

  // ---- requests ----

  void Next() {
    if (cancelled_ || done_) {
      return;
    }
    const NextStep step = shard_->NextRequest(this, requests_);
    switch (step.kind) {
      case NextStep::Kind::kClose:
        return End();
      case NextStep::Kind::kWait:
        phase_ = Phase::kIdle;
        return;
      case NextStep::Kind::kRequest:
        break;
    }
    requests_ = step.cycle;
    step_ = step;
    stale_retried_ = false;
    const Clock::time_point due = DueTime(step, retry_after_);  // Retry-After may push it back
    if (due > Clock::now()) {
      phase_ = Phase::kScheduled;
      retry_timer_.expires_at(due);
      retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec && self->phase_ == Phase::kScheduled) {
          self->Send();
        }
      });
      return;
    }
    Send();
  }

  // Appends the request of step_ to `out`.
  void BuildRequest(std::string& out) {
    const ShardSettings& s = shard_->settings();
    const TargetInfo& where = s.TargetFor(client_id_);
    const v1::Target& t = s.spec.target();
    const v1::Emulation& emu = s.spec.emulation();
    const bool messages = protocol_ != v1::HTTP_JSON;
    const RequestPrompt prompt = PromptFor(s, client_id_, requests_, messages, "Say something.");
    input_estimate_ = prompt.estimated_input_tokens;
    const int32_t max_tokens = prompt.max_tokens > 0 ? prompt.max_tokens : emu.length_words();
    const int32_t length_words = prompt.length_words;
    std::string target;
    std::string body;
    if (protocol_ == v1::HTTP_JSON) {
      target = JoinTarget(where.base_path, "", where.query);
      body = absl::StrCat("{\"prompt\":",
                          boost::json::serialize(boost::json::string(
                              boost::json::string_view(prompt.text.data(), prompt.text.size()))),
                          max_tokens > 0 ? absl::StrCat(",\"max_tokens\":", max_tokens) : "", "}");
    } else {
      const std::string model =
          t.model().empty()
              ? std::string(provider_ == llm::Provider::kGemini ? "gemini-2.0-flash" : "llmload")
              : t.model();
      target = JoinTarget(where.base_path,
                          llm::RequestPathBelow(provider_, where.base_path, model, streaming_),
                          where.query);
      llm::RequestParams params;
      params.model = model;
      params.prompt = prompt.text;
      if (prompt.conversation != nullptr) {
        messages_.clear();  // keeps its capacity: no allocation after the first requests
        for (const v1::PromptMessage& m : prompt.conversation->messages()) {
          messages_.push_back(llm::ChatMessage{m.role(), m.content()});
        }
        params.messages = messages_;
      }
      if (step_.turn > 0) {
        // Multi-turn: the history with the answers received, then this turn.
        conversation_.Begin(step_.turn, prompt.text, prompt.conversation);
        params.messages = conversation_.Messages();
        uint64_t bytes = 0;
        for (const llm::ChatMessage& m : params.messages) {
          bytes += m.content.size();
        }
        input_estimate_ = load::EstimateInputTokens(bytes);
      }
      params.max_tokens = max_tokens;
      params.stream = streaming_;
      body = llm::RequestBody(provider_, params);
    }
    protocol::http1::HeaderList headers;
    headers.reserve(8 + where.headers.size());
    headers.emplace_back("Content-Type", "application/json");
    headers.emplace_back("Accept", streaming_ ? "text/event-stream" : "application/json");
    headers.emplace_back("User-Agent", "llmload/0.1");
    if (!api_key_.empty()) {
      switch (provider_) {
        case llm::Provider::kOpenAiChat:
        case llm::Provider::kOpenAiResponses:
          headers.emplace_back("Authorization", "Bearer " + api_key_);
          break;
        case llm::Provider::kAnthropic:
          headers.emplace_back("x-api-key", api_key_);
          break;
        case llm::Provider::kGemini:
          headers.emplace_back("x-goog-api-key", api_key_);
          break;
      }
    }
    if (provider_ == llm::Provider::kAnthropic && protocol_ != v1::HTTP_JSON) {
      headers.emplace_back("anthropic-version", "2023-06-01");
    }
    // The emulator's per-request knobs (ignored by real providers).
    if (emu.has_token_delay()) {
      headers.emplace_back(
          "x-llmload-token-delay-ms",
          absl::StrCat(absl::ToDoubleMilliseconds(FromProtoDuration(emu.token_delay()))));
    }
    if (length_words > 0) {
      headers.emplace_back("x-llmload-length-words", absl::StrCat(length_words));
    }
    // The spec's own headers replace ours of the same name.
    for (const auto& [k, v] : where.headers) {
      std::erase_if(headers, [&](const auto& h) { return absl::EqualsIgnoreCase(h.first, k); });
      headers.emplace_back(k, v);
    }
    protocol::http1::AppendRequest(out, "POST", target, where.host_header, headers, body);
  }

  void Send() {
    if (cancelled_ || done_) {
      return;
    }
    if (!conn_.is_open()) {
      pending_request_ = true;
      return Connect();
    }
    phase_ = Phase::kInFlight;
    // Built in a per-thread buffer: the connection keeps only what the
    // kernel does not take at once.
    thread_local std::string request;
    request.clear();
    BuildRequest(request);
    // Per-request state.
    reported_tokens_ = -1;
    stream_done_ = false;
    stream_error_ = false;
    sse_.Reset();
    decoder_.emplace(provider_);
    error_body_.clear();
    meter_.Begin(step_, Clock::now());
    meter_.SetInputEstimate(input_estimate_);
    last_activity_ = meter_.send_at();
    ArmDeadline(shard_->settings().ttft_timeout);
    M().Add(v1::BYTES_OUT, request.size());
    conn_.Send(request);
  }

  void OnHttpHead(const protocol::http1::ResponseHead& head, Clock::time_point now) override {
    M().Add(v1::BYTES_IN, head.head_bytes);
    M().RecordUs(v1::REQUEST, Micros(now - meter_.send_at()));
    status_ = static_cast<unsigned>(head.status);
    last_activity_ = now;
    if (status_ / 100 != 2) {
      // The (bounded) error body is read so the connection can be reused.
      const double wait = llm::RetryAfterSeconds(head.retry_after, head.retry_after_ms);
      if (wait > 0) {
        retry_after_ = now + std::chrono::milliseconds(static_cast<int64_t>(wait * 1000));
      }
    }
  }

  bool OnHttpBody(std::string_view bytes, Clock::time_point now) override {
    if (cancelled_ || done_ || phase_ != Phase::kInFlight) {
      return false;
    }
    M().Add(v1::BYTES_IN, bytes.size());
    return Consume(bytes, now);
  }

  void OnHttpComplete(bool keep_alive, Clock::time_point now) override {
    if (cancelled_ || done_ || phase_ != Phase::kInFlight) {
      return;
    }
    OnBodyEnd(keep_alive, now);
  }

  // Returns false when the request has failed.
  bool Consume(std::string_view bytes, Clock::time_point now) {
    last_activity_ = now;
    if (status_ / 100 != 2 || !streaming_) {
      std::string& sink = error_body_;
      const size_t cap = status_ / 100 != 2 ? kMaxErrorBody : kMaxJsonBody;
      if (sink.size() + bytes.size() > cap) {
        if (status_ / 100 != 2) {
          return true;  // keep the start of an error body only
        }
        Fail(v1::PROTOCOL_ERROR, "response body over the size limit");
        return false;
      }
      sink.append(bytes.data(), bytes.size());
      return true;
    }
    absl::Status decode_status;
    absl::Status s = sse_.Feed(bytes, [&](const protocol::sse::SseEvent& e) {
      if (!decode_status.ok()) {
        return;
      }
      decode_status = decoder_->OnEvent(e, [&](const llm::StreamItem& item) { OnItem(item, now); });
    });
    if (abandon_) {
      FinishAbandoned();
      return false;
    }
    if (!s.ok() || !decode_status.ok()) {
      Fail(v1::PROTOCOL_ERROR, "malformed stream");
      return false;
    }
    if (stream_error_) {
      Fail(stream_error_counter_, "error event in the stream");
      return false;
    }
    return true;
  }

  void OnItem(const llm::StreamItem& item, Clock::time_point now) {
    switch (item.kind) {
      case llm::StreamItem::Kind::kContent:
        if (item.text.empty() || abandon_) {
          return;  // role/metadata chunk: no content, not a token
        }
        if (meter_.Chunk(M(), now)) {
          ArmDeadline(shard_->settings().idle_timeout);
        }
        if (step_.turn > 0) {
          conversation_.AppendReply(item.text);
        }
        if (meter_.CancelDue(now)) {
          abandon_ = true;  // Consume finishes it once this read's events are parsed
          abandon_at_ = now;
        }
        return;
      case llm::StreamItem::Kind::kUsage:
        if (item.output_tokens >= 0) {
          reported_tokens_ = item.output_tokens;
        }
        if (item.input_tokens >= 0) {
          meter_.ReportInput(item.input_tokens);
        }
        return;
      case llm::StreamItem::Kind::kDone:
        stream_done_ = true;
        done_at_ = now;
        return;
      case llm::StreamItem::Kind::kError:
        stream_error_ = true;
        stream_error_counter_ =
            item.error_code == 429 || item.error_type == "rate_limit_error" ||
                    item.error_type == "RESOURCE_EXHAUSTED" ||
                    item.error_type == "rate_limit_exceeded"
                ? v1::RATE_LIMITED
                : (item.error_code >= 400 && item.error_code < 500 ? v1::HTTP_4XX : v1::HTTP_5XX);
        return;
    }
  }

  void OnBodyEnd(bool keep, Clock::time_point now) {
    if (abandon_) {
      return FinishAbandoned();  // the time limit came first
    }
    timer_.cancel();
    if (status_ / 100 != 2) {
      const v1::Counter c = status_ == 429   ? v1::RATE_LIMITED
                            : status_ >= 500 ? v1::HTTP_5XX
                                             : v1::HTTP_4XX;
      shard_->RequestDone(this, RequestMeter::Fail(M(), c));
      conversation_.End(/*answered=*/false);
      return AfterRequest(keep);
    }
    if (streaming_) {
      // Gemini ends with the body; the others may omit their end marker.
      const Clock::time_point done_at = stream_done_ ? done_at_ : now;
      shard_->RequestDone(this, meter_.Complete(M(), done_at, reported_tokens_));
      conversation_.End(/*answered=*/true);
    } else {
      int64_t tokens = 0;
      if (protocol_ == v1::HTTP_JSON) {
        const UsageTokens usage = JsonUsageTokens(error_body_);
        tokens = static_cast<int64_t>(usage.output);
        if (usage.input >= 0) {
          meter_.ReportInput(usage.input);
        }
      } else {
        auto c = llm::ParseCompletion(provider_, error_body_);
        if (!c.ok()) {
          return Fail(v1::PROTOCOL_ERROR, "malformed completion");
        }
        tokens = std::max<int64_t>(0, c->output_tokens);
        if (c->input_tokens >= 0) {
          meter_.ReportInput(c->input_tokens);
        }
        if (step_.turn > 0) {
          conversation_.AppendReply(c->text);
        }
      }
      shard_->RequestDone(this, meter_.Complete(M(), now, tokens, /*count_chunks=*/false));
      conversation_.End(/*answered=*/true);
    }
    AfterRequest(keep);
  }

  // HTTP_JSON usage: output tokens (0 when absent) and input tokens (-1
  // when absent).
  struct UsageTokens {
    uint64_t output = 0;
    int64_t input = -1;
  };
  static UsageTokens JsonUsageTokens(std::string_view body) {
    UsageTokens out;
    boost::json::error_code ec;
    auto v = boost::json::parse(boost::json::string_view(body.data(), body.size()), ec);
    if (ec || !v.is_object()) {
      return out;
    }
    const auto* usage = v.get_object().if_contains("usage");
    if (usage == nullptr || !usage->is_object()) {
      return out;
    }
    for (const char* k : {"completion_tokens", "output_tokens", "tokens"}) {
      if (const auto* t = usage->get_object().if_contains(k); t != nullptr && t->is_int64()) {
        out.output = static_cast<uint64_t>(std::max<int64_t>(0, t->get_int64()));
        break;
      }
    }
    for (const char* k : {"prompt_tokens", "input_tokens"}) {
      if (const auto* t = usage->get_object().if_contains(k); t != nullptr && t->is_int64()) {
        out.input = std::max<int64_t>(0, t->get_int64());
        break;
      }
    }
    return out;
  }

  void AfterRequest(bool keep_alive) {
    if (!keep_alive) {
      conn_.Abort();
    }
    reused_conn_ = keep_alive;
    Next();
  }

  // A request on a kept-alive connection that the server had already closed
  // (servers close idle connections: Node.js after 5 s, nginx after 75 s)
  // fails before a single response byte. That is not the target failing the
  // request: reconnect and send it once more. True when retrying.
  bool RetryOnStaleConnection(uint64_t response_bytes) {
    if (!reused_conn_ || abandon_ || response_bytes > 0 || stale_retried_) {
      return false;
    }
    stale_retried_ = true;
    reused_conn_ = false;
    timer_.cancel();
    conn_.Abort();
    pending_request_ = true;
    Connect();
    return true;
  }

  void Fail(v1::Counter counter, const char* why) {
    if (done_ || cancelled_) {
      return;
    }
    if (abandon_) {
      return FinishAbandoned();  // the socket was closed on purpose
    }
    timer_.cancel();
    shard_->RequestDone(this, RequestMeter::Fail(M(), counter));
    conversation_.End(/*answered=*/false);
    LLMLOAD_LOG(kDebug, "Request failed.")
        .Kv("client_id", client_id_)
        .Kv("reason", why)
        .Kv("counter", metrics::CounterName(counter));
    conn_.Abort();
    if (counter == v1::DISCONNECTED || counter == v1::TIMEOUT) {
      // The connection is gone: reconnect (with backoff) before the next one.
      failures_in_a_row_ = 0;
      phase_ = Phase::kConnecting;
      const auto self = shared_from_this();
      net::post(shard_->ioc(), [self] { self->ReconnectThenNext(); });
      return;
    }
    Next();
  }

  // The spec abandons the request in flight (RunSpec.cancellation), as a
  // user closing the tab: the connection is dropped mid-response, the
  // request counts as cancelled, and the next one goes out on a new
  // connection. Called with no operation pending on the socket: from the
  // read that brought the last chunk, or from the handler of the operation
  // the time limit cut off (OnDeadline closes the socket).
  void FinishAbandoned() {
    abandon_ = false;
    timer_.cancel();
    conn_.Abort();
    reused_conn_ = false;
    shard_->RequestDone(this, meter_.Abandon(M(), abandon_at_));
    conversation_.End(/*answered=*/true);
    Next();
  }

  void ReconnectThenNext() {
    if (cancelled_ || done_) {
      return;
    }
    M().Add(v1::RECONNECTS);
    ++failures_in_a_row_;
    Connect();
  }

  // One timer per session: a deadline for the current wait. For the idle
  // timeout it checks the time of the last activity instead of being re-armed
  // per chunk.
  void ArmDeadline(std::chrono::milliseconds d) {
    deadline_span_ = d;
    if (phase_ == Phase::kInFlight) {
      // No later than the moment the spec abandons the request, if it does.
      timer_.expires_at(std::min(Clock::now() + d, meter_.cancel_at()));
    } else {
      timer_.expires_after(d);
    }
    timer_.async_wait([self = shared_from_this(), d](const boost::system::error_code& ec) {
      self->OnDeadline(ec, d);
    });
  }

  void OnDeadline(const boost::system::error_code& ec, std::chrono::milliseconds d) {
    if (ec || done_ || cancelled_ || d != deadline_span_) {
      return;
    }
    const Clock::time_point now = Clock::now();
    if (phase_ == Phase::kInFlight && meter_.CancelDue(now)) {
      abandon_ = true;
      abandon_at_ = now;
      return FinishAbandoned();
    }
    if (phase_ == Phase::kInFlight && meter_.got_first() && now - last_activity_ < d) {
      timer_.expires_at(std::min(last_activity_ + d, meter_.cancel_at()));
      timer_.async_wait([self = shared_from_this(), d](const boost::system::error_code& e) {
        self->OnDeadline(e, d);
      });
      return;
    }
    if (phase_ == Phase::kConnecting) {
      conn_.Abort();
      ReleaseSlot();
      M().Add(v1::TIMEOUT);
      return Reconnect("connect timed out");
    }
    if (phase_ == Phase::kInFlight) {
      conn_.Abort();
      Fail(v1::TIMEOUT, "response timed out");
    }
  }

  void End() {
    conn_.Abort();
    Finish();
  }

  void Finish() {
    if (done_) {
      return;
    }
    done_ = true;
    phase_ = Phase::kDone;
    timer_.cancel();
    retry_timer_.cancel();
    ReleaseSlot();
    shard_->SessionEnded(this);
  }

  std::shared_ptr<LoopShard> shard_;
  const int32_t client_id_;
  v1::Protocol protocol_;
  llm::Provider provider_ = llm::Provider::kOpenAiChat;
  bool streaming_ = true;
  std::string api_key_;
  std::chrono::milliseconds deadline_span_{};

  HttpConnection<kTls> conn_;
  LoopTimer timer_;
  LoopTimer retry_timer_;
  protocol::sse::SseParser sse_;
  std::optional<llm::StreamDecoder> decoder_;
  std::string error_body_;
  NextStep step_;
  RequestMeter meter_;

  Phase phase_ = Phase::kConnecting;
  bool opened_ = false;
  bool has_slot_ = false;  // holds one of the loop's connection set-up slots
  bool cancelled_ = false;
  bool done_ = false;
  bool pending_request_ = false;
  bool reused_conn_ = false;    // the connection has carried a complete response
  bool stale_retried_ = false;  // this request was resent after a stale connection
  bool abandon_ = false;        // the spec abandons the request in flight (at abandon_at_)
  bool stream_done_ = false;
  bool stream_error_ = false;
  v1::Counter stream_error_counter_ = v1::HTTP_5XX;
  int failures_in_a_row_ = 0;
  int64_t requests_ = 0;
  unsigned status_ = 0;
  int64_t reported_tokens_ = -1;
  int64_t input_estimate_ = 0;
  std::vector<llm::ChatMessage> messages_;  // the request's conversation (views into the spec)
  Conversation conversation_;               // multi-turn runs (Target.turns): the history resent
  Clock::time_point session_start_, connect_start_, last_activity_, done_at_, retry_after_,
      abandon_at_;
};

}  // namespace

std::shared_ptr<Session> MakeHttpStreamSession(std::shared_ptr<LoopShard> shard,
                                               int32_t client_id) {
  if (shard->settings().TargetFor(client_id).tls) {
    return std::make_shared<HttpStreamSession<true>>(std::move(shard), client_id);
  }
  return std::make_shared<HttpStreamSession<false>>(std::move(shard), client_id);
}

}  // namespace llmload::worker
