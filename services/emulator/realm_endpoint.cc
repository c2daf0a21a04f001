#include "services/emulator/realm_endpoint.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "lib/protocol/realm_server.h"
#include "lib/protocol/server_json.h"
#include "services/emulator/lorem.h"
#include "services/emulator/provider_http.h"
#include "services/emulator/stream.h"

namespace llmload::emulator {
namespace {

namespace rs = protocol::realm_server;
namespace websocket = boost::beast::websocket;

constexpr char kInvalidAuthFormat[] =
    "Invalid authentication message format. Expected: {\"type\":\"auth\",\"api_key\":\"your-key\"}";

std::string RateLimitMessage(int64_t seconds) {
  return absl::StrCat("Rate limit exceeded. Try again in ", seconds, " seconds.");
}

class RealmStream final : public PlannedStream {
 public:
  RealmStream(ResponsePlan plan, std::string id) : PlannedStream(std::move(plan)), id_(std::move(id)) {}

 private:
  void Token(size_t i, std::string_view token, std::chrono::nanoseconds at) override {
    std::string text(token);
    text.push_back(' ');
    std::string out;
    out.reserve(128 + id_.size());
    rs::AppendStreamingToken(&out, id_, static_cast<int64_t>(i), i + 1 == plan().tokens.size(),
                             text);
    Push(at, std::move(out));
  }
  void Tail(std::chrono::nanoseconds at) override {
    Push(at, rs::EncodeGenerateDone(id_, static_cast<int64_t>(plan().tokens.size())));
  }
  void ErrorEvent(std::chrono::nanoseconds at) override {
    Push(at, rs::EncodeError(id_, "INTERNAL_ERROR", "Generation failed"));
  }

  std::string id_;
};

WsActions Frames(std::string frame) {
  WsActions a;
  a.frames.push_back(std::move(frame));
  return a;
}

}  // namespace

absl::StatusOr<absl::flat_hash_map<std::string, std::string>> ParseRealmApiKeys(
    std::string_view text) {
  absl::flat_hash_map<std::string, std::string> keys;
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(text.data(), text.size()), absl::ByAnyChar(",\n"))) {
    if (const size_t hash = line.find('#'); hash != absl::string_view::npos) {
      line = line.substr(0, hash);
    }
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) {
      continue;
    }
    size_t sep = line.find(':');
    if (sep == absl::string_view::npos) {
      sep = line.find_first_of(" \t");
    }
    if (sep == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("realm api keys: entry '", line, "' has no tenant (want key:tenant)"));
    }
    const absl::string_view key = absl::StripAsciiWhitespace(line.substr(0, sep));
    const absl::string_view tenant = absl::StripAsciiWhitespace(line.substr(sep + 1));
    if (key.empty() || tenant.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("realm api keys: entry '", line, "' has an empty key or tenant"));
    }
    keys[std::string(key)] = std::string(tenant);
  }
  return keys;
}

bool RealmRateLimiter::TryAcquire(const std::string& tenant,
                                  std::chrono::steady_clock::time_point now,
                                  int64_t* retry_seconds) {
  const double per_second = per_minute_ / 60.0;
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = buckets_.try_emplace(tenant, Bucket{static_cast<double>(burst_), now});
  Bucket& b = it->second;
  if (!inserted) {
    const double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min<double>(burst_, b.tokens + std::max(0.0, elapsed) * per_second);
    b.at = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  *retry_seconds = per_second > 0 ? static_cast<int64_t>((1.0 - b.tokens) / per_second) : 60;
  return false;
}

RealmHandler::RealmHandler(const RealmOptions* options, RealmRateLimiter* limiter,
                           Behaviour* behaviour, std::chrono::steady_clock::time_point started,
                           std::optional<Fault> forced_fault)
    : options_(options),
      limiter_(limiter),
      behaviour_(behaviour),
      started_(started),
      forced_fault_(forced_fault) {}

WsActions RealmHandler::OnOpen() {
  if (options_->api_keys.empty()) {
    authenticated_ = true;
    return Frames(rs::EncodeWelcome(std::nullopt));
  }
  WsActions a = Frames(rs::EncodeAuthRequired());
  a.deadline = options_->auth_timeout;
  return a;
}

WsActions RealmHandler::OnDeadline() {
  if (authenticated_ || failed_) {
    return {};
  }
  failed_ = true;
  WsActions a = Frames(rs::EncodeAuthFailed(absl::StrCat(
      "Authentication timeout (",
      std::llround(std::chrono::duration<double>(options_->auth_timeout).count()), " seconds)")));
  a.close = websocket::close_reason();
  return a;
}

WsActions RealmHandler::OnBinary() {
  if (!authenticated_) {
    failed_ = true;
    WsActions a = Frames(rs::EncodeAuthFailed("Authentication message must be text"));
    a.close = websocket::close_reason();
    return a;
  }
  return Frames(std::string(rs::kBinaryNotSupported));
}

WsActions RealmHandler::OnText(std::string_view text) {
  if (failed_) {
    return {};
  }
  if (!authenticated_) {
    absl::StatusOr<std::string> key = rs::ParseAuth(text);
    WsActions a;
    if (!key.ok()) {
      a = Frames(rs::EncodeAuthFailed(kInvalidAuthFormat));
    } else if (auto it = options_->api_keys.find(*key); it == options_->api_keys.end()) {
      a = Frames(rs::EncodeAuthFailed("Invalid API key"));
    } else {
      authenticated_ = true;
      tenant_ = it->second;
      a.frames.push_back(rs::EncodeAuthSuccess(tenant_));
      a.frames.push_back(rs::EncodeWelcome(tenant_));
      a.deadline = std::chrono::nanoseconds(0);
      return a;
    }
    failed_ = true;
    a.close = websocket::close_reason();
    return a;
  }
  if (busy_) {
    queued_.emplace_back(text);
    return {};
  }
  return Dispatch(text);
}

WsActions RealmHandler::OnStreamEnd() {
  busy_ = false;
  WsActions all;
  while (!queued_.empty() && !busy_) {
    std::string next = std::move(queued_.front());
    queued_.erase(queued_.begin());
    WsActions a = Dispatch(next);
    for (std::string& f : a.frames) {
      all.frames.push_back(std::move(f));
    }
    if (a.stream != nullptr) {
      all.stream = std::move(a.stream);
    }
  }
  return all;
}

WsActions RealmHandler::Dispatch(std::string_view text) {
  absl::StatusOr<rs::FunctionCall> call = rs::ParseFunctionCall(text);
  if (!call.ok()) {
    return Frames(rs::EncodeError("unknown", "INTERNAL_ERROR",
                                  absl::StrCat("Invalid function call: ", call.status().message())));
  }
  const bool auth_on = !options_->api_keys.empty();
  if (auth_on) {
    if (!call->tenant_id.has_value() || *call->tenant_id != tenant_) {
      return Frames(rs::EncodeError(call->id, "UNAUTHORIZED", "Tenant ID mismatch"));
    }
    int64_t retry = 0;
    if (!limiter_->TryAcquire(tenant_, options_->now(), &retry)) {
      return Frames(rs::EncodeError(call->id, "RATE_LIMIT_EXCEEDED", RateLimitMessage(retry)));
    }
  }
  if (call->function == "generate") {
    return Generate(call->id, call->params, call->tenant_id);
  }
  if (call->function == "health") {
    behaviour_->CountRealmCall(Behaviour::RealmCall::kHealth);
    const int64_t uptime =
        std::chrono::duration_cast<std::chrono::seconds>(options_->now() - started_).count();
    return Frames(rs::EncodeComplete(call->id, rs::HealthData(uptime)));
  }
  if (call->function == "metadata") {
    behaviour_->CountRealmCall(Behaviour::RealmCall::kMetadata);
    return Frames(rs::EncodeComplete(call->id, rs::MetadataData()));
  }
  if (call->function == "pipeline") {
    absl::StatusOr<rs::PipelineParams> p = rs::ParsePipelineParams(call->params);
    if (!p.ok()) {
      return Frames(rs::EncodeError(call->id, "DISPATCH_ERROR", Msg(p.status())));
    }
    behaviour_->CountRealmCall(Behaviour::RealmCall::kPipeline);
    const LoremText out = GenerateLorem(behaviour_->config().seed, p->input_text,
                                        std::min<int32_t>(behaviour_->config().length_words, 64));
    std::string data = "{\"output\":{\"text\":";
    protocol::server_json::AppendQuoted(&data, out.text);
    data += "},\"pipeline\":";
    protocol::server_json::AppendQuoted(&data, p->pipeline);
    data += "}";
    return Frames(rs::EncodeComplete(call->id, data));
  }
  return Frames(rs::EncodeError(call->id, "DISPATCH_ERROR",
                                absl::StrCat("Unknown function: ", call->function)));
}

WsActions RealmHandler::Generate(const std::string& id, const boost::json::object& params,
                                 const std::optional<std::string>& tenant) {
  absl::StatusOr<rs::GenerateParams> p = rs::ParseGenerateParams(params);
  if (!p.ok()) {
    return Frames(rs::EncodeError(id, "DISPATCH_ERROR", Msg(p.status())));
  }
  if (options_->api_keys.empty() && tenant.has_value() && !rs::IsValidTenantId(*tenant)) {
    return Frames(rs::EncodeError(
        id, "DISPATCH_ERROR",
        "Invalid tenant ID: must be 3-64 characters of letters, digits, '_' or '-'"));
  }
  RequestOverrides overrides;
  overrides.fault = forced_fault_;
  if (!p->fault.empty()) {
    std::optional<Fault> fault = ParseFault(p->fault);
    if (!fault.has_value()) {
      return Frames(rs::EncodeError(id, "DISPATCH_ERROR",
                                    absl::StrCat("Unknown fault: ", p->fault)));
    }
    overrides.fault = fault;
  }
  if (p->max_tokens.has_value()) {
    overrides.length_words = static_cast<int32_t>(std::clamp<int64_t>(*p->max_tokens, 1, 100000));
  }
  if (p->token_delay_ms.has_value()) {
    overrides.token_delay_seconds = *p->token_delay_ms / 1000.0;
  }
  ResponsePlan plan = behaviour_->Plan(Protocol::kRealm, p->prompt, overrides);
  switch (plan.fault) {
    case Fault::kHttp500:
      return Frames(rs::EncodeError(id, "INTERNAL_ERROR", "Generation failed"));
    case Fault::kHttp429:
      return Frames(rs::EncodeError(
          id, "RATE_LIMIT_EXCEEDED",
          RateLimitMessage(behaviour_->config().retry_after_seconds)));
    default:
      break;
  }
  WsActions a;
  busy_ = true;
  if (p->stream) {
    a.stream = std::make_unique<RealmStream>(std::move(plan), id);
    return a;
  }
  auto frames = std::make_unique<ScheduledFrames>();
  const auto done = plan.GenerationTime();
  switch (plan.fault) {
    case Fault::kErrorEvent:
      frames->Add(done, rs::EncodeError(id, "INTERNAL_ERROR", "Generation failed"));
      break;
    case Fault::kDisconnect:
      frames->AddDisconnect(plan.OffsetOf(plan.fault_at));
      break;
    case Fault::kMalformed:
      frames->Add(done, absl::StrCat("{\"id\":\"", id, "\",\"status\":\"complete\",\"data\":"));
      break;
    default:
      frames->Add(done, rs::EncodeGenerationResult(
                            id, plan.text, static_cast<int64_t>(plan.tokens.size()),
                            protocol::server_json::CountWords(p->prompt),
                            std::chrono::duration_cast<std::chrono::milliseconds>(done).count()));
      break;
  }
  a.stream = std::move(frames);
  return a;
}

RealmEndpoint::RealmEndpoint(RealmOptions options, WsEndpointOptions ws_options,
                             Behaviour* behaviour)
    : options_(std::move(options)),
      limiter_(options_.rate_limit_per_minute, options_.rate_limit_burst),
      behaviour_(behaviour),
      started_(options_.now()),
      ws_(std::move(ws_options), [this](const HttpRequest& upgrade) {
        std::optional<Fault> forced;
        if (auto it = upgrade.find(boost::beast::string_view(kHeaderFault.data(),
                                                               kHeaderFault.size()));
            it != upgrade.end()) {
          forced = ParseFault(std::string_view(it->value().data(), it->value().size()));
        }
        return std::make_unique<RealmHandler>(&options_, &limiter_, behaviour_, started_, forced);
      }) {}

}  // namespace llmload::emulator
