#include "services/emulator/openai_responses_handler.h"

#include "absl/strings/str_cat.h"
#include "lib/protocol/openai_chat_server.h"
#include "lib/protocol/openai_responses_server.h"
#include "services/emulator/ids.h"
#include "services/emulator/stream.h"

namespace llmload::emulator {
namespace {

namespace http = boost::beast::http;
namespace oa = protocol::openai_server;
namespace orr = protocol::openai_responses;

constexpr std::string_view kServerError =
    "The server had an error while processing your request. Sorry about that!";

HttpResponse Error(http::status status, std::string_view message, std::string_view type,
                   std::string_view param = "", std::string_view code = "") {
  // The Responses API shares Chat Completions' error body.
  HttpResponse r =
      TypedResponse(status, "application/json", oa::EncodeError(message, type, param, code));
  r.message.set("x-request-id", "req_" + NewShortId(24));
  return r;
}

class ResponsesStream final : public PlannedStream {
 public:
  ResponsesStream(ResponsePlan plan, std::string_view id, std::string_view item_id,
                  int64_t created, std::string_view model, int64_t input_tokens)
      : PlannedStream(std::move(plan)),
        encoder_(id, item_id, created, model),
        input_tokens_(input_tokens) {}

 private:
  void Head() override {
    std::string out;
    encoder_.AppendHead(&out);
    Push(std::chrono::nanoseconds(0), std::move(out));
  }
  void Token(size_t i, std::string_view token, std::chrono::nanoseconds at) override {
    std::string out;
    out.reserve(320);
    std::string delta;
    delta.reserve(token.size() + 1);
    if (i > 0) {
      delta.push_back(' ');
    }
    delta.append(token);
    encoder_.AppendDelta(&out, delta);
    Push(at, std::move(out));
  }
  void Tail(std::chrono::nanoseconds at) override {
    std::string out;
    encoder_.AppendTail(&out, plan().text, input_tokens_,
                        static_cast<int64_t>(plan().tokens.size()));
    Push(at, std::move(out));
  }
  void ErrorEvent(std::chrono::nanoseconds at) override {
    std::string out;
    encoder_.AppendError(&out, "server_error", kServerError);
    Push(at, std::move(out));
  }
  void Malformed(std::chrono::nanoseconds at) override {
    Push(at, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\n\n");
  }

  orr::EventEncoder encoder_;
  int64_t input_tokens_;
};

}  // namespace

void OpenAiResponsesHandler::RegisterRoutes(Router* router) {
  router->AddHttp(http::verb::post, "/v1/responses",
                  [this](const HttpRequest& r, std::string_view) { return Responses(r); });
}

HttpResponse OpenAiResponsesHandler::Responses(const HttpRequest& request) const {
  absl::StatusOr<RequestOverrides> overrides = OverridesFromHeaders(request);
  if (!overrides.ok()) {
    return Error(http::status::bad_request, Msg(overrides.status()), "invalid_request_error");
  }
  absl::StatusOr<orr::ResponsesRequest> req = orr::ParseResponsesRequest(request.body());
  if (!req.ok()) {
    return Error(http::status::bad_request, Msg(req.status()), "invalid_request_error");
  }
  if (!overrides->length_words.has_value() && req->max_output_tokens.has_value()) {
    overrides->length_words =
        static_cast<int32_t>(std::min<int64_t>(*req->max_output_tokens, 100000));
  }
  ResponsePlan plan =
      context_->behaviour->Plan(Protocol::kOpenAiResponses, req->prompt, *overrides);
  switch (plan.fault) {
    case Fault::kHttp500:
      return Error(http::status::internal_server_error, kServerError, "server_error");
    case Fault::kHttp429: {
      const int32_t retry = context_->behaviour->config().retry_after_seconds;
      HttpResponse r = Error(http::status::too_many_requests,
                             absl::StrCat("Rate limit reached for ", req->model,
                                          " on requests per min (RPM): Limit 500, Used 500, "
                                          "Requested 1. Please try again in ",
                                          retry, "s."),
                             "requests", "", "rate_limit_exceeded");
      r.message.set(http::field::retry_after, std::to_string(retry));
      return r;
    }
    case Fault::kNone:
    case Fault::kErrorEvent:
    case Fault::kDisconnect:
    case Fault::kMalformed:
      break;
  }
  const std::string id = "resp_" + NewShortId(24);
  const std::string item_id = "msg_" + NewShortId(24);
  const int64_t created = context_->unix_now();
  if (req->stream) {
    HttpResponse r = SseResponse(std::make_unique<ResponsesStream>(
        std::move(plan), id, item_id, created, req->model, req->input_tokens));
    r.message.set("x-request-id", "req_" + NewShortId(24));
    return r;
  }
  const auto generation = plan.GenerationTime();
  HttpResponse r;
  switch (plan.fault) {
    case Fault::kErrorEvent:
      r = Error(http::status::internal_server_error, kServerError, "server_error");
      break;
    case Fault::kDisconnect:
      r.drop_connection = true;
      r.delay = plan.OffsetOf(plan.fault_at);
      return r;
    case Fault::kMalformed:
      r = TypedResponse(http::status::ok, "application/json",
                        absl::StrCat("{\"id\":\"", id, "\",\"object\":\"response\","));
      break;
    default:
      r = TypedResponse(http::status::ok, "application/json",
                        orr::EncodeResponse(id, item_id, created, req->model, plan.text,
                                            req->input_tokens,
                                            static_cast<int64_t>(plan.tokens.size())));
      break;
  }
  r.message.set("x-request-id", "req_" + NewShortId(24));
  r.delay = generation;
  return r;
}

}  // namespace llmload::emulator
