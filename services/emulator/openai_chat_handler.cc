#include "services/emulator/openai_chat_handler.h"

#include "absl/strings/str_cat.h"
#include "lib/protocol/openai_chat_server.h"
#include "services/emulator/ids.h"
#include "services/emulator/stream.h"

namespace llmload::emulator {
namespace {

namespace http = boost::beast::http;
namespace oa = protocol::openai_server;

constexpr std::string_view kFingerprint = "fp_llmload";

HttpResponse Error(http::status status, std::string_view message, std::string_view type,
                   std::string_view param = "", std::string_view code = "") {
  HttpResponse r =
      TypedResponse(status, "application/json", oa::EncodeError(message, type, param, code));
  r.message.set("x-request-id", "req_" + NewShortId(24));
  return r;
}

class OpenAiStream final : public PlannedStream {
 public:
  OpenAiStream(ResponsePlan plan, std::string id, int64_t created, const std::string& model,
               bool include_usage, int64_t prompt_tokens)
      : PlannedStream(std::move(plan)),
        encoder_(id, created, model, kFingerprint, include_usage),
        id_(std::move(id)),
        include_usage_(include_usage),
        prompt_tokens_(prompt_tokens) {}

 private:
  void Head() override {
    std::string out;
    encoder_.AppendRole(&out);
    Push(std::chrono::nanoseconds(0), std::move(out));
  }
  void Token(size_t i, std::string_view token, std::chrono::nanoseconds at) override {
    std::string out;
    out.reserve(256);
    if (i == 0) {
      encoder_.AppendContent(&out, token);
    } else {
      std::string text;
      text.reserve(token.size() + 1);
      text.push_back(' ');
      text.append(token);
      encoder_.AppendContent(&out, text);
    }
    Push(at, std::move(out));
  }
  void Tail(std::chrono::nanoseconds at) override {
    std::string out;
    encoder_.AppendFinish(&out, "stop");
    if (include_usage_) {
      encoder_.AppendUsage(&out, prompt_tokens_, static_cast<int64_t>(plan().tokens.size()));
    }
    oa::AppendDone(&out);
    Push(at, std::move(out));
  }
  void ErrorEvent(std::chrono::nanoseconds at) override {
    std::string out;
    oa::AppendStreamError(&out);
    Push(at, std::move(out));
  }
  void Malformed(std::chrono::nanoseconds at) override {
    Push(at, absl::StrCat("data: {\"id\":\"", id_, "\",\"object\":\"chat.completion.chunk\",\n\n"));
  }

  oa::ChunkEncoder encoder_;
  std::string id_;
  bool include_usage_;
  int64_t prompt_tokens_;
};

}  // namespace

void OpenAiChatHandler::RegisterRoutes(Router* router) {
  router->AddHttp(http::verb::post, "/v1/chat/completions",
                  [this](const HttpRequest& r, std::string_view) { return ChatCompletions(r); });
}

HttpResponse OpenAiChatHandler::ChatCompletions(const HttpRequest& request) const {
  absl::StatusOr<RequestOverrides> overrides = OverridesFromHeaders(request);
  if (!overrides.ok()) {
    return Error(http::status::bad_request, Msg(overrides.status()), "invalid_request_error");
  }
  absl::StatusOr<oa::ChatRequest> req = oa::ParseChatRequest(request.body());
  if (!req.ok()) {
    return Error(http::status::bad_request, Msg(req.status()), "invalid_request_error");
  }
  if (!overrides->length_words.has_value() && req->max_tokens.has_value()) {
    overrides->length_words = static_cast<int32_t>(std::min<int64_t>(*req->max_tokens, 100000));
  }
  ResponsePlan plan = context_->behaviour->Plan(Protocol::kOpenAiChat, req->prompt, *overrides);
  switch (plan.fault) {
    case Fault::kHttp500:
      return Error(http::status::internal_server_error,
                   "The server had an error while processing your request. Sorry about that!",
                   "server_error");
    case Fault::kHttp429: {
      const int32_t retry = context_->behaviour->config().retry_after_seconds;
      HttpResponse r = Error(
          http::status::too_many_requests,
          absl::StrCat("Rate limit reached for ", req->model,
                       " on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try "
                       "again in ",
                       retry, "s."),
          "requests", "", "rate_limit_exceeded");
      r.message.set(http::field::retry_after, std::to_string(retry));
      r.message.set("x-ratelimit-limit-requests", "500");
      r.message.set("x-ratelimit-remaining-requests", "0");
      r.message.set("x-ratelimit-reset-requests", absl::StrCat(retry, "s"));
      return r;
    }
    case Fault::kNone:
    case Fault::kErrorEvent:
    case Fault::kDisconnect:
    case Fault::kMalformed:
      break;
  }
  const std::string id = "chatcmpl-" + NewShortId(24);
  const int64_t created = context_->unix_now();
  if (req->stream) {
    HttpResponse r = SseResponse(std::make_unique<OpenAiStream>(
        std::move(plan), id, created, req->model, req->include_usage, req->prompt_tokens));
    r.message.set("x-request-id", "req_" + NewShortId(24));
    return r;
  }
  const auto generation = plan.GenerationTime();
  HttpResponse r;
  switch (plan.fault) {
    case Fault::kErrorEvent:
      r = Error(http::status::internal_server_error,
                "The server had an error while processing your request. Sorry about that!",
                "server_error");
      break;
    case Fault::kDisconnect:
      r.drop_connection = true;
      r.delay = plan.OffsetOf(plan.fault_at);
      return r;
    case Fault::kMalformed:
      r = TypedResponse(http::status::ok, "application/json",
                        absl::StrCat("{\"id\":\"", id, "\",\"object\":\"chat.completion\","));
      break;
    default:
      r = TypedResponse(http::status::ok, "application/json",
                        oa::EncodeCompletion(id, created, req->model, kFingerprint, plan.text,
                                             "stop", req->prompt_tokens,
                                             static_cast<int64_t>(plan.tokens.size())));
      break;
  }
  r.message.set("x-request-id", "req_" + NewShortId(24));
  r.delay = generation;
  return r;
}

}  // namespace llmload::emulator
