#include "services/emulator/anthropic_messages_handler.h"

#include "absl/strings/str_cat.h"
#include "lib/protocol/anthropic_messages_server.h"
#include "services/emulator/ids.h"
#include "services/emulator/stream.h"

namespace llmload::emulator {
namespace {

namespace http = boost::beast::http;
namespace an = protocol::anthropic_server;

HttpResponse Error(http::status status, std::string_view type, std::string_view message) {
  const std::string request_id = "req_" + NewShortId(24);
  HttpResponse r = TypedResponse(status, "application/json",
                                 an::EncodeError(type, message, request_id));
  r.message.set("request-id", request_id);
  return r;
}

class AnthropicStream final : public PlannedStream {
 public:
  AnthropicStream(ResponsePlan plan, std::string id, std::string model, int64_t input_tokens)
      : PlannedStream(std::move(plan)),
        id_(std::move(id)),
        model_(std::move(model)),
        input_tokens_(input_tokens) {}

 private:
  void Head() override {
    std::string out;
    an::AppendMessageStart(&out, id_, model_, input_tokens_);
    an::AppendContentBlockStart(&out, 0);
    an::AppendPing(&out);
    Push(std::chrono::nanoseconds(0), std::move(out));
  }
  void Token(size_t i, std::string_view token, std::chrono::nanoseconds at) override {
    std::string out;
    out.reserve(160);
    if (i == 0) {
      an::AppendTextDelta(&out, 0, token);
    } else {
      std::string text(" ");
      text.append(token);
      an::AppendTextDelta(&out, 0, text);
    }
    Push(at, std::move(out));
  }
  void Tail(std::chrono::nanoseconds at) override {
    std::string out;
    an::AppendContentBlockStop(&out, 0);
    an::AppendMessageDelta(&out, "end_turn", static_cast<int64_t>(plan().tokens.size()));
    an::AppendMessageStop(&out);
    Push(at, std::move(out));
  }
  void ErrorEvent(std::chrono::nanoseconds at) override {
    std::string out;
    an::AppendErrorEvent(&out, "overloaded_error", "Overloaded");
    Push(at, std::move(out));
  }
  void Malformed(std::chrono::nanoseconds at) override {
    Push(at, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\n\n");
  }

  std::string id_;
  std::string model_;
  int64_t input_tokens_;
};

}  // namespace

void AnthropicMessagesHandler::RegisterRoutes(Router* router) {
  router->AddHttp(http::verb::post, "/v1/messages",
                  [this](const HttpRequest& r, std::string_view) { return Messages(r); });
}

HttpResponse AnthropicMessagesHandler::Messages(const HttpRequest& request) const {
  absl::StatusOr<RequestOverrides> overrides = OverridesFromHeaders(request);
  if (!overrides.ok()) {
    return Error(http::status::bad_request, "invalid_request_error", Msg(overrides.status()));
  }
  absl::StatusOr<an::MessagesRequest> req = an::ParseMessagesRequest(request.body());
  if (!req.ok()) {
    return Error(http::status::bad_request, "invalid_request_error", Msg(req.status()));
  }
  if (!overrides->length_words.has_value()) {
    overrides->length_words = static_cast<int32_t>(std::min<int64_t>(req->max_tokens, 100000));
  }
  ResponsePlan plan = context_->behaviour->Plan(Protocol::kAnthropic, req->prompt, *overrides);
  switch (plan.fault) {
    case Fault::kHttp500:
      return Error(http::status::internal_server_error, "api_error", "Internal server error");
    case Fault::kHttp429: {
      const int32_t retry = context_->behaviour->config().retry_after_seconds;
      HttpResponse r = Error(http::status::too_many_requests, "rate_limit_error",
                             "Number of request tokens has exceeded your per-minute rate limit "
                             "(https://docs.anthropic.com/en/api/rate-limits); see the response "
                             "headers for current usage. Please reduce the prompt length or the "
                             "maximum tokens requested, or try again later.");
      r.message.set(http::field::retry_after, std::to_string(retry));
      r.message.set("anthropic-ratelimit-requests-limit", "50");
      r.message.set("anthropic-ratelimit-requests-remaining", "0");
      return r;
    }
    case Fault::kNone:
    case Fault::kErrorEvent:
    case Fault::kDisconnect:
    case Fault::kMalformed:
      break;
  }
  const std::string id = "msg_" + NewShortId(24);
  if (req->stream) {
    HttpResponse r = SseResponse(
        std::make_unique<AnthropicStream>(std::move(plan), id, req->model, req->input_tokens));
    r.message.set("request-id", "req_" + NewShortId(24));
    return r;
  }
  const auto generation = plan.GenerationTime();
  HttpResponse r;
  switch (plan.fault) {
    case Fault::kErrorEvent:
      r = Error(static_cast<http::status>(529), "overloaded_error", "Overloaded");
      r.message.reason("Site Overloaded");
      break;
    case Fault::kDisconnect:
      r.drop_connection = true;
      r.delay = plan.OffsetOf(plan.fault_at);
      return r;
    case Fault::kMalformed:
      r = TypedResponse(http::status::ok, "application/json",
                        absl::StrCat("{\"id\":\"", id, "\",\"type\":\"message\","));
      break;
    default:
      r = TypedResponse(http::status::ok, "application/json",
                        an::EncodeMessage(id, req->model, plan.text, "end_turn",
                                          req->input_tokens,
                                          static_cast<int64_t>(plan.tokens.size())));
      break;
  }
  r.message.set("request-id", "req_" + NewShortId(24));
  r.delay = generation;
  return r;
}

}  // namespace llmload::emulator
