#include "services/emulator/llm_emulator_api.h"

#include <cmath>
#include <utility>

#include "boost/json.hpp"
#include "lib/common/log.h"
#include "lib/protocol/centrifugo_server.h"
#include "lib/protocol/jwt.h"
#include "services/emulator/config.h"
#include "services/emulator/lorem.h"
#include "services/emulator/provider_http.h"

namespace llmload::emulator {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;
using protocol::centrifugo::AppendJsonQuoted;

// One pydantic error entry: type, loc, msg, input[, ctx] in pydantic's order.
json::object ErrorEntry(std::string_view type, json::array loc, std::string_view msg,
                        json::value input) {
  json::object e;
  e["type"] = json::string_view(type.data(), type.size());
  e["loc"] = std::move(loc);
  e["msg"] = json::string_view(msg.data(), msg.size());
  e["input"] = std::move(input);
  return e;
}

json::array BodyLoc(std::string_view field) {
  json::array loc;
  loc.emplace_back("body");
  if (!field.empty()) {
    loc.emplace_back(json::string_view(field.data(), field.size()));
  }
  return loc;
}

ValidationError MakeError(json::array detail) {
  json::object root;
  root["detail"] = std::move(detail);
  return ValidationError{json::serialize(root)};
}

// A required string field.
void CheckString(const json::object& body, std::string_view field, std::string* out,
                 json::array* errors) {
  const json::value* v = body.if_contains(json::string_view(field.data(), field.size()));
  if (v == nullptr) {
    errors->push_back(ErrorEntry("missing", BodyLoc(field), "Field required", body));
    return;
  }
  if (!v->is_string()) {
    errors->push_back(
        ErrorEntry("string_type", BodyLoc(field), "Input should be a valid string", *v));
    return;
  }
  *out = std::string(v->get_string());
}

void RangeError(std::string_view field, const json::value& input, bool below, double bound,
                json::array* errors) {
  json::object e = ErrorEntry(
      below ? "greater_than_equal" : "less_than_equal", BodyLoc(field),
      std::string(below ? "Input should be greater than or equal to "
                        : "Input should be less than or equal to ") +
          json::serialize(json::value(static_cast<int64_t>(bound))),
      input);
  json::object ctx;
  ctx[below ? "ge" : "le"] = static_cast<int64_t>(bound);
  e["ctx"] = std::move(ctx);
  errors->push_back(std::move(e));
}

// An optional integer in [lo, hi]; null counts as absent.
void CheckOptionalInt(const json::object& body, std::string_view field, int64_t lo, int64_t hi,
                      int32_t* out, json::array* errors) {
  const json::value* v = body.if_contains(json::string_view(field.data(), field.size()));
  if (v == nullptr || v->is_null()) {
    return;
  }
  double as_double = 0;
  if (v->is_int64()) {
    as_double = static_cast<double>(v->get_int64());
  } else if (v->is_uint64()) {
    as_double = static_cast<double>(v->get_uint64());
  } else if (v->is_double()) {
    as_double = v->get_double();
    if (std::floor(as_double) != as_double) {
      errors->push_back(ErrorEntry("int_from_float", BodyLoc(field),
                                   "Input should be a valid integer, got a number with a "
                                   "fractional part",
                                   *v));
      return;
    }
  } else {
    errors->push_back(
        ErrorEntry("int_type", BodyLoc(field), "Input should be a valid integer", *v));
    return;
  }
  if (as_double < static_cast<double>(lo)) {
    RangeError(field, *v, true, static_cast<double>(lo), errors);
    return;
  }
  if (as_double > static_cast<double>(hi)) {
    RangeError(field, *v, false, static_cast<double>(hi), errors);
    return;
  }
  *out = static_cast<int32_t>(as_double);
}

// An optional number in [lo, hi]; null counts as absent.
void CheckOptionalNumber(const json::object& body, std::string_view field, double lo, double hi,
                         double* out, json::array* errors) {
  const json::value* v = body.if_contains(json::string_view(field.data(), field.size()));
  if (v == nullptr || v->is_null()) {
    return;
  }
  if (!v->is_number()) {
    errors->push_back(
        ErrorEntry("float_type", BodyLoc(field), "Input should be a valid number", *v));
    return;
  }
  boost::system::error_code ec;
  const double d = v->to_number<double>(ec);
  if (d < lo) {
    RangeError(field, *v, true, lo, errors);
    return;
  }
  if (d > hi) {
    RangeError(field, *v, false, hi, errors);
    return;
  }
  *out = d;
}

bool IsBlank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

std::variant<RunRequest, ValidationError> ParseRunRequest(std::string_view body,
                                                           int32_t default_length_words,
                                                           double default_token_delay_seconds) {
  if (IsBlank(body)) {
    json::array detail;
    detail.push_back(ErrorEntry("missing", BodyLoc(""), "Field required", nullptr));
    return MakeError(std::move(detail));
  }
  json::stream_parser parser;
  boost::system::error_code ec;
  const size_t consumed = parser.write(body.data(), body.size(), ec);
  if (!ec) {
    parser.finish(ec);
  }
  if (ec) {
    json::array loc = BodyLoc("");
    loc.emplace_back(static_cast<int64_t>(consumed));
    json::object e = ErrorEntry("json_invalid", std::move(loc), "JSON decode error", json::object());
    json::object ctx;
    ctx["error"] = ec.message();
    e["ctx"] = std::move(ctx);
    json::array detail;
    detail.push_back(std::move(e));
    return MakeError(std::move(detail));
  }
  const json::value root = parser.release();
  if (!root.is_object()) {
    json::array detail;
    detail.push_back(ErrorEntry("model_attributes_type", BodyLoc(""),
                                "Input should be a valid dictionary or object to extract fields "
                                "from",
                                root));
    return MakeError(std::move(detail));
  }
  const json::object& obj = root.get_object();
  RunRequest req;
  req.length_words = default_length_words;
  req.token_delay_seconds = default_token_delay_seconds;
  json::array errors;
  CheckString(obj, "session_id", &req.session_id, &errors);
  CheckString(obj, "question", &req.question, &errors);
  CheckOptionalInt(obj, "length_words", kMinLengthWords, kMaxLengthWords, &req.length_words,
                   &errors);
  CheckOptionalNumber(obj, "token_delay_seconds", 0.0, kMaxTokenDelaySeconds,
                      &req.token_delay_seconds, &errors);
  if (!errors.empty()) {
    return MakeError(std::move(errors));
  }
  return req;
}

LlmEmulatorApi::LlmEmulatorApi(LlmEmulatorApiOptions options, RunPublisher* publisher)
    : options_(std::move(options)), publisher_(publisher), behaviour_(options_.behaviour) {
  if (behaviour_ == nullptr) {
    BehaviourConfig c;
    c.length_words = options_.default_length_words;
    c.token_delay_seconds = options_.default_token_delay_seconds;
    c.seed = options_.seed;
    own_behaviour_ = std::make_unique<Behaviour>(c);
    behaviour_ = own_behaviour_.get();
  }
}

void LlmEmulatorApi::RegisterRoutes(Router* router) {
  router->AddHttp(http::verb::get, "/health",
                  [this](const HttpRequest& r, std::string_view) { return Health(r); });
  router->AddHttp(http::verb::post, "/api/sessions/create",
                  [this](const HttpRequest& r, std::string_view) { return CreateSession(r); });
  router->AddHttp(http::verb::post, "/api/run",
                  [this](const HttpRequest& r, std::string_view) { return Run(r); });
  router->AddHttpPrefix(
      http::verb::delete_, "/api/sessions/",
      [this](const HttpRequest& r, std::string_view id) { return DeleteSession(r, id); });
}

HttpResponse LlmEmulatorApi::Health(const HttpRequest&) const {
  return JsonResponse(http::status::ok, "{\"status\":\"ok\"}");
}

HttpResponse LlmEmulatorApi::CreateSession(const HttpRequest&) const {
  const std::string session_id = options_.new_session_id();
  protocol::jwt::Claims claims;
  claims.sub = session_id;
  claims.exp = absl::ToUnixSeconds(options_.now()) + options_.token_ttl_seconds;
  claims.channels.push_back("session:" + session_id);
  const std::string token =
      protocol::jwt::SignHs256(protocol::jwt::EncodeClaims(claims), options_.jwt_secret);
  std::string body = "{\"session_id\":";
  AppendJsonQuoted(&body, session_id);
  body += ",\"token\":";
  AppendJsonQuoted(&body, token);
  body += "}";
  LLMLOAD_LOG(kDebug, "Session created.").Kv("session_id", session_id);
  return JsonResponse(http::status::ok, std::move(body));
}

HttpResponse LlmEmulatorApi::Run(const HttpRequest& request) const {
  absl::StatusOr<RequestOverrides> overrides = OverridesFromHeaders(request);
  if (!overrides.ok()) {
    return JsonResponse(http::status::bad_request,
                        "{\"detail\":" + [&] {
                          std::string q;
                          AppendJsonQuoted(&q, Msg(overrides.status()));
                          return q;
                        }() + "}");
  }
  std::variant<RunRequest, ValidationError> parsed = ParseRunRequest(
      request.body(), overrides->length_words.value_or(options_.default_length_words),
      overrides->token_delay_seconds.value_or(options_.default_token_delay_seconds));
  if (auto* error = std::get_if<ValidationError>(&parsed)) {
    return JsonResponse(http::status::unprocessable_entity, std::move(error->body));
  }
  RunRequest& run = std::get<RunRequest>(parsed);
  overrides->length_words = run.length_words;
  overrides->token_delay_seconds = run.token_delay_seconds;
  ResponsePlan plan = behaviour_->Plan(Protocol::kCentrifugo, run.question, *overrides);
  if (plan.fault == Fault::kHttp500) {
    return TypedResponse(http::status::internal_server_error, "text/plain; charset=utf-8",
                         "Internal Server Error");
  }
  if (plan.fault == Fault::kHttp429) {
    HttpResponse r = JsonResponse(http::status::too_many_requests,
                                  "{\"detail\":\"Too Many Requests\"}");
    r.message.set(http::field::retry_after,
                  std::to_string(behaviour_->config().retry_after_seconds));
    return r;
  }
  std::string body;
  body.reserve(plan.text.size() + 16);
  body += "{\"response\":";
  AppendJsonQuoted(&body, plan.text);
  body += "}";
  HttpResponse response = JsonResponse(http::status::ok, std::move(body));
  response.after_send = [publisher = publisher_, session_id = std::move(run.session_id),
                         plan = std::move(plan)]() mutable {
    if (!publisher->StartRun(session_id, std::move(plan))) {
      LLMLOAD_LOG(kDebug, "No WebSocket subscribed to the session; run publications dropped.")
          .Kv("session_id", session_id);
    }
  };
  return response;
}

HttpResponse LlmEmulatorApi::DeleteSession(const HttpRequest&, std::string_view session_id) const {
  // The original only clears Centrifugo history; the client closes its socket.
  publisher_->EndSession(session_id);
  LLMLOAD_LOG(kDebug, "Session closed.").Kv("session_id", session_id);
  return JsonResponse(http::status::ok, "{\"status\":\"closed\"}");
}

}  // namespace llmload::emulator
