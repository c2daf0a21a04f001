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
#include "services/worker/session_driver.h"

namespace llmload::worker {
namespace {

namespace llm = protocol::llm;

constexpr size_t kMaxErrorBody = 64 * 1024;
constexpr size_t kMaxJsonBody = 4 << 20;

// kTls: https. The connection is the worker's lean HTTP client
// (http_connection.h): between reads a session holds no read buffer, no
// parser strings and no copy of its request. The lifecycle, the one timer
// and reconnection are the shared skeleton's (session_driver.h).
template <bool kTls>
class HttpStreamSession final : public SessionDriver, public HttpConnectionOwner {
 public:
  HttpStreamSession(std::shared_ptr<LoopShard> shard, int32_t client_id)
      : SessionDriver(std::move(shard), client_id), conn_(this->shard().ioc(), *this) {
    const v1::Target& t = S().spec.target();
    protocol_ = t.protocol();
    streaming_ = protocol_ != v1::HTTP_JSON && !t.no_stream();
    if (protocol_ == v1::ANTHROPIC_MESSAGES) {
      provider_ = llm::Provider::kAnthropic;
    } else if (protocol_ == v1::GEMINI) {
      provider_ = llm::Provider::kGemini;
    } else if (protocol_ == v1::OPENAI_RESPONSES) {
      provider_ = llm::Provider::kOpenAiResponses;
    }
  }

 private:
  // ---- the skeleton's hooks ----

  // Every connection, the first and each one after, holds one of the loop's
  // connection set-up slots until it is established (the skeleton's
  // Connect), as the WebSocket drivers' do.
  void OpenConnection() override {
    reused_conn_ = false;
    conn_.Open(S().TargetFor(client_id()), static_cast<uint64_t>(client_id()),
               shared_from_this());
  }

  void AbortConnection() override {
    conn_.Abort();
    reused_conn_ = false;
  }

  void RequestEnded(bool answered) override {
    abandon_ = false;
    if (conversation_ != nullptr) {
      conversation_->End(answered);
    }
  }

  // A response that stalls fails, and the next request goes out on a new
  // connection at once.
  void RequestTimedOut() override { Fail(v1::TIMEOUT, "response timed out"); }

  // TCP (and TLS) established: the session is usable.
  void OnHttpOpen(Clock::time_point now) override {
    if (ended() || phase() != Phase::kConnecting) {
      return;
    }
    M().RecordUs(v1::CONNECT, Micros(now - connect_start()));
    SetupDone(now);  // sends the request a ConnectFor held back, else takes the next step
  }

  void OnHttpEnd(HttpEnd end, uint64_t response_bytes, std::string_view why) override {
    if (ended()) {
      return;
    }
    switch (phase()) {
      case Phase::kConnecting:
        return SetupFailed(v1::CONNECT_FAILED,
                           end == HttpEnd::kConnectFailed ? "connect failed" : "connection lost");
      case Phase::kInFlight:
        if (end == HttpEnd::kLost && RetryOnStaleConnection(response_bytes)) {
          return;
        }
        return Fail(end == HttpEnd::kProtocolError ? v1::PROTOCOL_ERROR : v1::DISCONNECTED,
                    std::string(why).c_str());
      default:
        // The target closed the idle keep-alive connection (or sent what
        // nobody asked for): the next request connects again.
        reused_conn_ = false;
        return;
    }
  }

  // The key named by target.apiKeyEnv, read from the environment when a
  // request is built (not kept per session).
  std::string_view ApiKey() const {
    const std::string& env = S().spec.target().api_key_env();
    if (env.empty()) {
      return {};
    }
    const char* key = std::getenv(env.c_str());
    return key == nullptr ? std::string_view() : std::string_view(key);
  }

  // ---- requests ----

  // Appends the request to `out`.
  void BuildRequest(std::string& out) {
    const ShardSettings& s = S();
    const TargetInfo& where = s.TargetFor(client_id());
    const v1::Target& t = s.spec.target();
    const v1::Emulation& emu = s.spec.emulation();
    const bool messages = protocol_ != v1::HTTP_JSON;
    const RequestPrompt prompt = PromptFor(s, client_id(), request_number(), messages, "Say something.");
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
        // Views into the spec, in a per-thread list that keeps its capacity.
        thread_local std::vector<llm::ChatMessage> messages;
        messages.clear();
        for (const v1::PromptMessage& m : prompt.conversation->messages()) {
          messages.push_back(llm::ChatMessage{m.role(), m.content()});
        }
        params.messages = messages;
      }
      if (meter().turn() > 0) {
        // Multi-turn: the history with the answers received, then this turn.
        if (conversation_ == nullptr) {
          conversation_ = std::make_unique<Conversation>();
        }
        conversation_->Begin(meter().turn(), prompt.text, prompt.conversation);
        params.messages = conversation_->Messages();
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
    const std::string_view api_key = ApiKey();
    if (!api_key.empty()) {
      switch (provider_) {
        case llm::Provider::kOpenAiChat:
        case llm::Provider::kOpenAiResponses:
          headers.emplace_back("Authorization", std::string("Bearer ").append(api_key));
          break;
        case llm::Provider::kAnthropic:
          headers.emplace_back("x-api-key", std::string(api_key));
          break;
        case llm::Provider::kGemini:
          headers.emplace_back("x-goog-api-key", std::string(api_key));
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

  void SendRequest() override {
    if (!conn_.is_open()) {
      return ConnectFor();  // the target closed the idle connection: connect, then send
    }
    // Built in a per-thread buffer: the connection keeps only what the
    // kernel does not take at once.
    thread_local std::string request;
    request.clear();
    BuildRequest(request);
    // Per-request state.
    reported_tokens_ = -1;
    stream_done_ = false;
    stream_error_ = false;
    abandon_ = false;
    sse_.Reset();
    decoder_.emplace(provider_);
    body_.clear();
    meter().SetInputEstimate(input_estimate_);
    M().Add(v1::BYTES_OUT, request.size());
    conn_.Send(request);
  }

  void OnHttpHead(const protocol::http1::ResponseHead& head, Clock::time_point now) override {
    M().Add(v1::BYTES_IN, head.head_bytes);
    M().RecordUs(v1::REQUEST, Micros(now - meter().send_at()));
    status_ = static_cast<unsigned>(head.status);
    Touch(now);
    if (status_ / 100 != 2) {
      // The (bounded) error body is read so the connection can be reused.
      const double wait = llm::RetryAfterSeconds(head.retry_after, head.retry_after_ms);
      if (wait > 0) {
        RetryAfter(now + std::chrono::milliseconds(static_cast<int64_t>(wait * 1000)));
      }
    }
  }

  bool OnHttpBody(std::string_view bytes, Clock::time_point now) override {
    if (ended() || phase() != Phase::kInFlight) {
      return false;
    }
    M().Add(v1::BYTES_IN, bytes.size());
    return Consume(bytes, now);
  }

  void OnHttpComplete(bool keep_alive, Clock::time_point now) override {
    if (ended() || phase() != Phase::kInFlight) {
      return;
    }
    OnBodyEnd(keep_alive, now);
  }

  // Returns false when the request has ended (failed or abandoned).
  bool Consume(std::string_view bytes, Clock::time_point now) {
    Touch(now);
    if (status_ / 100 != 2 || !streaming_) {
      const size_t cap = status_ / 100 != 2 ? kMaxErrorBody : kMaxJsonBody;
      if (body_.size() + bytes.size() > cap) {
        if (status_ / 100 != 2) {
          return true;  // keep the start of an error body only
        }
        Fail(v1::PROTOCOL_ERROR, "response body over the size limit");
        return false;
      }
      body_.append(bytes.data(), bytes.size());
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
      Abandon(done_at_);
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
        if (meter().Chunk(M(), now)) {
          Schedule();  // the idle gap replaces the ttft limit
        }
        if (meter().turn() > 0) {
          conversation_->AppendReply(item.text);
        }
        if (meter().CancelDue(now)) {
          abandon_ = true;  // Consume abandons it once this read's events are parsed
          done_at_ = now;
        }
        return;
      case llm::StreamItem::Kind::kUsage:
        if (item.output_tokens >= 0) {
          reported_tokens_ = item.output_tokens;
        }
        if (item.input_tokens >= 0) {
          meter().ReportInput(item.input_tokens);
        }
        return;
      case llm::StreamItem::Kind::kDone:
        if (!abandon_) {  // done_at_ holds the moment of abandoning
          stream_done_ = true;
          done_at_ = now;
        }
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

  void OnBodyEnd(bool keep_alive, Clock::time_point now) {
    if (abandon_) {
      return Abandon(done_at_);  // the time limit came first
    }
    if (!keep_alive) {
      AbortConnection();
    }
    reused_conn_ = keep_alive;
    if (status_ / 100 != 2) {
      return RequestFailed(status_ == 429   ? v1::RATE_LIMITED
                           : status_ >= 500 ? v1::HTTP_5XX
                                            : v1::HTTP_4XX);
    }
    if (streaming_) {
      // Gemini ends with the body; the others may omit their end marker.
      return RequestCompleted(stream_done_ ? done_at_ : now, reported_tokens_);
    }
    int64_t tokens = 0;
    if (protocol_ == v1::HTTP_JSON) {
      const UsageTokens usage = JsonUsageTokens(body_);
      tokens = static_cast<int64_t>(usage.output);
      if (usage.input >= 0) {
        meter().ReportInput(usage.input);
      }
    } else {
      auto c = llm::ParseCompletion(provider_, body_);
      if (!c.ok()) {
        return Fail(v1::PROTOCOL_ERROR, "malformed completion");
      }
      tokens = std::max<int64_t>(0, c->output_tokens);
      if (c->input_tokens >= 0) {
        meter().ReportInput(c->input_tokens);
      }
      if (meter().turn() > 0) {
        conversation_->AppendReply(c->text);
      }
    }
    RequestCompleted(now, tokens, /*count_chunks=*/false);
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

  // A request on a kept-alive connection that the server had already closed
  // (servers close idle connections: Node.js after 5 s, nginx after 75 s)
  // fails before a single response byte. That is not the target failing the
  // request: connect again and send it once more. True when retrying.
  bool RetryOnStaleConnection(uint64_t response_bytes) {
    if (!reused_conn_ || abandon_ || response_bytes > 0 || stale_retried_ == request_number()) {
      return false;
    }
    stale_retried_ = request_number();
    AbortConnection();
    ConnectFor();
    return true;
  }

  // The request in flight failed. A lost connection (or a stalled
  // response) is connected again at once for the next request; after any
  // other failure the connection is not trusted either, and the next request
  // connects when it is due.
  void Fail(v1::Counter counter, const char* why) {
    if (ended()) {
      return;
    }
    if (abandon_) {
      return Abandon(done_at_);  // the socket was closed on purpose
    }
    LLMLOAD_LOG(kDebug, "Request failed.")
        .Kv("client_id", client_id())
        .Kv("reason", why)
        .Kv("counter", metrics::CounterName(counter));
    if (counter == v1::DISCONNECTED || counter == v1::TIMEOUT) {
      return ConnectionLost(counter, std::chrono::milliseconds(0));
    }
    AbortConnection();
    RequestFailed(counter);
  }

  v1::Protocol protocol_;
  llm::Provider provider_ = llm::Provider::kOpenAiChat;
  bool streaming_ = true;
  bool reused_conn_ = false;    // the connection has carried a complete response
  bool abandon_ = false;        // the spec abandons the request in flight (at done_at_)
  bool stream_done_ = false;
  bool stream_error_ = false;
  v1::Counter stream_error_counter_ = v1::HTTP_5XX;
  unsigned status_ = 0;
  int64_t stale_retried_ = 0;  // the request resent once after a stale connection
  int64_t reported_tokens_ = -1;
  int64_t input_estimate_ = 0;
  // When the stream's end marker arrived, or, while abandon_, when the
  // spec's limit was reached.
  Clock::time_point done_at_;

  HttpConnection<kTls> conn_;
  protocol::sse::SseParser sse_;
  std::optional<llm::StreamDecoder> decoder_;
  std::string body_;  // a non-streamed answer, or the start of an error body
  // Multi-turn runs (Target.turns): the history resent. Made by the first
  // request of a turn, so that single-turn sessions do not carry it.
  std::unique_ptr<Conversation> conversation_;
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
