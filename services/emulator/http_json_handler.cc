#include "services/emulator/http_json_handler.h"

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "lib/protocol/server_json.h"
#include "services/emulator/ids.h"

namespace llmload::emulator {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;
using protocol::server_json::AppendQuoted;

HttpResponse Error(int code, std::string_view message, std::string_view status) {
  std::string body = absl::StrCat("{\"error\":{\"code\":", code, ",\"message\":");
  AppendQuoted(&body, message);
  body += ",\"status\":";
  AppendQuoted(&body, status);
  body += "}}";
  return TypedResponse(static_cast<http::status>(code), "application/json", std::move(body));
}

bool IsBlank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

}  // namespace

void HttpJsonHandler::RegisterRoutes(Router* router) {
  for (const char* path : {"/v1/generate", "/v1/json", "/api/generate"}) {
    router->AddHttp(http::verb::post, path,
                    [this](const HttpRequest& r, std::string_view) { return Generate(r); });
  }
}

HttpResponse HttpJsonHandler::Generate(const HttpRequest& request) const {
  absl::StatusOr<RequestOverrides> overrides = OverridesFromHeaders(request);
  if (!overrides.ok()) {
    return Error(400, Msg(overrides.status()), "INVALID_ARGUMENT");
  }
  std::string prompt;
  int64_t prompt_tokens = 0;
  if (!IsBlank(request.body())) {
    absl::StatusOr<json::object> body = protocol::server_json::ParseObject(request.body());
    if (!body.ok()) {
      return Error(400, Msg(body.status()), "INVALID_ARGUMENT");
    }
    for (const char* key : {"prompt", "input", "question"}) {
      if (auto v = protocol::server_json::GetString(*body, key); v.has_value()) {
        prompt = std::string(*v);
        break;
      }
    }
    prompt_tokens = protocol::server_json::CountWords(prompt);
    for (const char* key : {"max_tokens", "length_words"}) {
      absl::StatusOr<std::optional<int64_t>> n = protocol::server_json::GetInt(*body, key);
      if (!n.ok()) {
        return Error(400, Msg(n.status()), "INVALID_ARGUMENT");
      }
      if (n->has_value()) {
        if (**n < 1 || **n > 100000) {
          return Error(400, absl::StrCat(key, ": must be in [1, 100000]"), "INVALID_ARGUMENT");
        }
        if (!overrides->length_words.has_value()) {
          overrides->length_words = static_cast<int32_t>(**n);
        }
        break;
      }
    }
  }
  ResponsePlan plan = context_->behaviour->Plan(Protocol::kHttpJson, prompt, *overrides);
  const int32_t retry = context_->behaviour->config().retry_after_seconds;
  HttpResponse r;
  switch (plan.fault) {
    case Fault::kHttp500:
      return Error(500, "Internal server error", "INTERNAL");
    case Fault::kHttp429:
      r = Error(429, "Rate limit exceeded", "RESOURCE_EXHAUSTED");
      r.message.set(http::field::retry_after, std::to_string(retry));
      return r;
    case Fault::kErrorEvent:
      r = Error(503, "The model is overloaded. Please try again later.", "UNAVAILABLE");
      break;
    case Fault::kDisconnect:
      r.drop_connection = true;
      r.delay = plan.OffsetOf(plan.fault_at);
      return r;
    case Fault::kMalformed:
      r = TypedResponse(http::status::ok, "application/json", "{\"id\":\"gen-");
      break;
    case Fault::kNone: {
      const int64_t n = static_cast<int64_t>(plan.tokens.size());
      std::string body = "{\"id\":\"gen-" + NewShortId(24) +
                         "\",\"object\":\"generation\",\"model\":\"llmload-emulator\",\"text\":";
      AppendQuoted(&body, plan.text);
      absl::StrAppend(&body, ",\"usage\":{\"prompt_tokens\":", prompt_tokens,
                      ",\"completion_tokens\":", n, ",\"total_tokens\":", prompt_tokens + n, "}}");
      r = TypedResponse(http::status::ok, "application/json", std::move(body));
      break;
    }
  }
  r.delay = plan.GenerationTime();
  return r;
}

}  // namespace llmload::emulator
