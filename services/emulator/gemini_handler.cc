#include "services/emulator/gemini_handler.h"

#include "absl/strings/str_cat.h"
#include "lib/protocol/gemini_server.h"
#include "services/emulator/ids.h"
#include "services/emulator/stream.h"

namespace llmload::emulator {
namespace {

namespace http = boost::beast::http;
namespace gm = protocol::gemini_server;

constexpr std::string_view kJson = "application/json; charset=UTF-8";

HttpResponse Error(int code, std::string_view message, std::string_view status,
                   std::optional<int> retry = std::nullopt) {
  return TypedResponse(static_cast<http::status>(code), kJson,
                       gm::EncodeError(code, message, status, retry));
}

class GeminiStream final : public PlannedStream {
 public:
  GeminiStream(ResponsePlan plan, gm::ChunkContext ctx, bool crlf)
      : PlannedStream(std::move(plan)), ctx_(std::move(ctx)), crlf_(crlf) {}

 private:
  void Token(size_t i, std::string_view token, std::chrono::nanoseconds at) override {
    std::string out;
    out.reserve(320);
    std::string text;
    if (i > 0) {
      text.push_back(' ');
    }
    text.append(token);
    const size_t n = plan().tokens.size();
    const bool last = i + 1 == n;
    gm::AppendChunkEvent(&out, ctx_, text, last ? "STOP" : "", static_cast<int64_t>(n), crlf_);
    Push(at, std::move(out));
  }
  void Tail(std::chrono::nanoseconds) override {}
  void ErrorEvent(std::chrono::nanoseconds at) override {
    std::string out;
    gm::AppendStreamError(&out, crlf_);
    Push(at, std::move(out));
  }
  void Malformed(std::chrono::nanoseconds at) override {
    Push(at, crlf_ ? "data: {\"candidates\":[{\"content\":\r\n\r\n"
                   : "data: {\"candidates\":[{\"content\":\n\n");
  }

  gm::ChunkContext ctx_;
  bool crlf_;
};

}  // namespace

void GeminiHandler::RegisterRoutes(Router* router) {
  router->AddHttpPrefix(
      http::verb::post, "/v1beta/models/",
      [this](const HttpRequest& r, std::string_view suffix) { return Generate(r, suffix); });
}

HttpResponse GeminiHandler::Generate(const HttpRequest& request,
                                     std::string_view model_method) const {
  absl::StatusOr<gm::ModelMethod> mm = gm::ParseModelMethod(model_method);
  if (!mm.ok()) {
    return Error(404, "Requested entity was not found.", "NOT_FOUND");
  }
  absl::StatusOr<RequestOverrides> overrides = OverridesFromHeaders(request);
  if (!overrides.ok()) {
    return Error(400, Msg(overrides.status()), "INVALID_ARGUMENT");
  }
  absl::StatusOr<gm::GenerateRequest> req = gm::ParseGenerateRequest(request.body());
  if (!req.ok()) {
    return Error(400, Msg(req.status()), "INVALID_ARGUMENT");
  }
  if (!overrides->length_words.has_value() && req->max_output_tokens.has_value()) {
    overrides->length_words =
        static_cast<int32_t>(std::min<int64_t>(*req->max_output_tokens, 100000));
  }
  ResponsePlan plan = context_->behaviour->Plan(Protocol::kGemini, req->prompt, *overrides);
  switch (plan.fault) {
    case Fault::kHttp500:
      return Error(500,
                   "An internal error has occurred. Please retry or report in "
                   "https://developers.generativeai.google/guide/troubleshooting",
                   "INTERNAL");
    case Fault::kHttp429: {
      const int32_t retry = context_->behaviour->config().retry_after_seconds;
      HttpResponse r = Error(
          429, "You exceeded your current quota, please check your plan and billing details.",
          "RESOURCE_EXHAUSTED", retry);
      r.message.set(http::field::retry_after, std::to_string(retry));
      return r;
    }
    case Fault::kNone:
    case Fault::kErrorEvent:
    case Fault::kDisconnect:
    case Fault::kMalformed:
      break;
  }
  gm::ChunkContext ctx;
  ctx.model_version = mm->model;
  ctx.response_id = NewShortId(22);
  ctx.prompt_tokens = req->prompt_tokens;
  const bool sse = QueryParam(request, "alt") == "sse";
  if (mm->method == gm::Method::kStreamGenerateContent && sse) {
    HttpResponse r = SseResponse(
        std::make_unique<GeminiStream>(std::move(plan), std::move(ctx), context_->gemini_crlf));
    r.message.set(http::field::content_type, "text/event-stream");
    return r;
  }
  const auto generation = plan.GenerationTime();
  const int64_t n = static_cast<int64_t>(plan.tokens.size());
  HttpResponse r;
  switch (plan.fault) {
    case Fault::kErrorEvent:
      r = Error(503, "The model is overloaded. Please try again later.", "UNAVAILABLE");
      break;
    case Fault::kDisconnect:
      r.drop_connection = true;
      r.delay = plan.OffsetOf(plan.fault_at);
      return r;
    case Fault::kMalformed:
      r = TypedResponse(http::status::ok, kJson, "{\"candidates\":[{\"content\":");
      break;
    default: {
      std::string body;
      if (mm->method == gm::Method::kGenerateContent) {
        gm::AppendResponse(&body, ctx, plan.text, "STOP", n);
      } else {
        // streamGenerateContent without alt=sse: one JSON array of the chunks.
        body.push_back('[');
        for (int64_t i = 0; i < n; ++i) {
          if (i > 0) {
            body.append(",\r\n");
          }
          std::string text = i > 0 ? " " : "";
          text += plan.tokens[static_cast<size_t>(i)];
          gm::AppendResponse(&body, ctx, text, i + 1 == n ? "STOP" : "", n);
        }
        body.push_back(']');
      }
      r = TypedResponse(http::status::ok, kJson, std::move(body));
      break;
    }
  }
  r.delay = generation;
  return r;
}

}  // namespace llmload::emulator
