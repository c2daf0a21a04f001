#include "lib/protocol/realm_server.h"

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "lib/protocol/server_json.h"

namespace llmload::protocol::realm_server {
namespace {

namespace json = boost::json;
using server_json::AppendQuoted;

absl::Status Serde(std::string_view reason) {
  return absl::InvalidArgumentError(std::string(reason));
}

absl::StatusOr<json::object> ParseJsonObject(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) {
    return Serde(absl::StrCat("expected value at line 1 column 1"));
  }
  if (!v.is_object()) {
    return Serde("invalid type: expected struct FunctionCall");
  }
  return std::move(v.get_object());
}

}  // namespace

absl::StatusOr<std::string> ParseAuth(std::string_view text) {
  absl::StatusOr<json::object> obj = ParseJsonObject(text);
  if (!obj.ok()) {
    return obj.status();
  }
  auto type = server_json::GetString(*obj, "type");
  auto key = server_json::GetString(*obj, "api_key");
  if (!type.has_value() || *type != "auth" || !key.has_value()) {
    return Serde("not an auth message");
  }
  return std::string(*key);
}

absl::StatusOr<FunctionCall> ParseFunctionCall(std::string_view text) {
  absl::StatusOr<json::object> obj = ParseJsonObject(text);
  if (!obj.ok()) {
    return obj.status();
  }
  FunctionCall call;
  const json::value* id = obj->if_contains("id");
  if (id == nullptr) {
    return Serde("missing field `id`");
  }
  if (!id->is_string()) {
    return Serde("invalid type: expected a string for `id`");
  }
  call.id = std::string(id->get_string());
  const json::value* function = obj->if_contains("function");
  if (function == nullptr) {
    return Serde("missing field `function`");
  }
  if (!function->is_string()) {
    return Serde("invalid type: expected a string for `function`");
  }
  call.function = std::string(function->get_string());
  const json::value* params = obj->if_contains("params");
  if (params == nullptr) {
    return Serde("missing field `params`");
  }
  if (!params->is_object()) {
    return Serde("invalid type: expected a map for `params`");
  }
  call.params = params->get_object();
  if (const json::value* tenant = obj->if_contains("tenant_id");
      tenant != nullptr && !tenant->is_null()) {
    if (!tenant->is_string()) {
      return Serde("invalid type: expected a string for `tenant_id`");
    }
    call.tenant_id = std::string(tenant->get_string());
  }
  return call;
}

absl::StatusOr<GenerateParams> ParseGenerateParams(const json::object& params) {
  GenerateParams p;
  const json::value* prompt = params.if_contains("prompt");
  if (prompt == nullptr) {
    return Serde("missing field `prompt`");
  }
  if (!prompt->is_string()) {
    return Serde("invalid type: expected a string for `prompt`");
  }
  p.prompt = std::string(prompt->get_string());
  if (auto model = server_json::GetString(params, "model"); model.has_value()) {
    p.model = std::string(*model);
  }
  absl::StatusOr<std::optional<int64_t>> max = server_json::GetInt(params, "max_tokens");
  if (!max.ok()) {
    return Serde("invalid type: expected usize for `max_tokens`");
  }
  if (max->has_value()) {
    if (**max < 0) {
      return Serde("invalid value: expected usize for `max_tokens`");
    }
    p.max_tokens = **max;
  }
  absl::StatusOr<bool> stream = server_json::GetBool(params, "stream", false);
  if (!stream.ok()) {
    return Serde("invalid type: expected a boolean for `stream`");
  }
  p.stream = *stream;
  absl::StatusOr<std::optional<double>> delay = server_json::GetNumber(params, "token_delay_ms");
  if (!delay.ok() || (delay->has_value() && (**delay < 0 || **delay > 60000))) {
    return Serde("invalid value: expected milliseconds in [0, 60000] for `token_delay_ms`");
  }
  p.token_delay_ms = *delay;
  if (auto fault = server_json::GetString(params, "fault"); fault.has_value()) {
    p.fault = std::string(*fault);
  }
  return p;
}

absl::StatusOr<PipelineParams> ParsePipelineParams(const json::object& params) {
  PipelineParams p;
  auto name = server_json::GetString(params, "pipeline");
  if (!name.has_value()) {
    return Serde("missing field `pipeline`");
  }
  p.pipeline = std::string(*name);
  if (const json::value* input = params.if_contains("input"); input != nullptr) {
    if (input->is_object()) {
      for (const char* key : {"text", "prompt"}) {
        if (auto t = server_json::GetString(input->get_object(), key); t.has_value()) {
          p.input_text = std::string(*t);
          break;
        }
      }
    } else if (input->is_string()) {
      p.input_text = std::string(input->get_string());
    }
  }
  return p;
}

bool IsValidTenantId(std::string_view tenant) {
  if (tenant.size() < 3 || tenant.size() > 64) {
    return false;
  }
  for (char c : tenant) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string EncodeAuthRequired() {
  return "{\"message\":\"Please send authentication message with your API key\",\"type\":"
         "\"auth_required\"}";
}

std::string EncodeAuthSuccess(std::string_view tenant) {
  std::string out = "{\"tenant_id\":";
  AppendQuoted(&out, tenant);
  out += ",\"type\":\"auth_success\"}";
  return out;
}

std::string EncodeAuthFailed(std::string_view reason) {
  std::string out = "{\"error\":";
  AppendQuoted(&out, reason);
  out += ",\"type\":\"auth_failed\"}";
  return out;
}

std::string EncodeWelcome(const std::optional<std::string>& tenant) {
  std::string out = "{\"status\":\"connected\",\"tenant_id\":";
  if (tenant.has_value()) {
    AppendQuoted(&out, *tenant);
  } else {
    out += "null";
  }
  absl::StrAppend(&out, ",\"version\":\"", kVersion, "\"}");
  return out;
}

void AppendStreamingToken(std::string* out, std::string_view id, int64_t index, bool is_final,
                          std::string_view text, bool token_copy) {
  out->append("{\"id\":");
  AppendQuoted(out, id);
  absl::StrAppend(out, ",\"status\":\"streaming\",\"data\":{\"index\":", index,
                  ",\"is_final\":", is_final ? "true" : "false", ",\"text\":");
  AppendQuoted(out, text);
  if (token_copy) {
    out->append(",\"token\":");
    AppendQuoted(out, text);
  }
  out->append("}}");
}

std::string EncodeGenerateDone(std::string_view id, int64_t tokens_generated) {
  return EncodeComplete(
      id, absl::StrCat("{\"status\":\"complete\",\"tokens_generated\":", tokens_generated, "}"));
}

std::string EncodeGenerationResult(std::string_view id, std::string_view text,
                                   int64_t tokens_generated, int64_t prompt_tokens,
                                   int64_t time_ms) {
  std::string data = absl::StrCat("{\"cost_usd\":0.00024,\"prompt_tokens\":", prompt_tokens,
                                  ",\"text\":");
  AppendQuoted(&data, text);
  absl::StrAppend(&data, ",\"time_ms\":", time_ms, ",\"tokens_generated\":", tokens_generated,
                  "}");
  return EncodeComplete(id, data);
}

std::string EncodeComplete(std::string_view id, std::string_view data_json) {
  std::string out = "{\"id\":";
  AppendQuoted(&out, id);
  out += ",\"status\":\"complete\",\"data\":";
  out.append(data_json);
  out += "}";
  return out;
}

std::string EncodeError(std::string_view id, std::string_view code, std::string_view message) {
  std::string out = "{\"id\":";
  AppendQuoted(&out, id);
  out += ",\"status\":\"error\",\"error\":{\"code\":";
  AppendQuoted(&out, code);
  out += ",\"message\":";
  AppendQuoted(&out, message);
  out += "}}";
  return out;
}

std::string HealthData(int64_t uptime_seconds) {
  return absl::StrCat("{\"status\":\"healthy\",\"uptime_seconds\":", uptime_seconds,
                      ",\"version\":\"", kVersion, "\"}");
}

std::string MetadataData() {
  return absl::StrCat(
      "{\"functions\":["
      "{\"description\":\"Generate text from a prompt\",\"name\":\"generate\",\"params\":["
      "{\"description\":\"Input prompt\",\"name\":\"prompt\",\"required\":true,\"type\":\"string\"},"
      "{\"description\":\"Model name\",\"name\":\"model\",\"required\":false,\"type\":\"string\"},"
      "{\"default\":100,\"description\":\"Maximum tokens to generate\",\"name\":\"max_tokens\","
      "\"required\":false,\"type\":\"integer\"},"
      "{\"default\":0.7,\"description\":\"Sampling temperature\",\"name\":\"temperature\","
      "\"required\":false,\"type\":\"number\"},"
      "{\"default\":0.9,\"description\":\"Nucleus sampling\",\"name\":\"top_p\",\"required\":false,"
      "\"type\":\"number\"},"
      "{\"default\":0,\"description\":\"Top-k sampling\",\"name\":\"top_k\",\"required\":false,"
      "\"type\":\"integer\"},"
      "{\"default\":1.0,\"description\":\"Repetition penalty\",\"name\":\"repetition_penalty\","
      "\"required\":false,\"type\":\"number\"},"
      "{\"default\":false,\"description\":\"Stream tokens\",\"name\":\"stream\",\"required\":false,"
      "\"type\":\"boolean\"}],"
      "\"returns\":\"GenerationResult or stream of TokenData\",\"streaming\":true},"
      "{\"description\":\"Health check\",\"name\":\"health\",\"params\":[],\"returns\":"
      "\"HealthStatus\",\"streaming\":false},"
      "{\"description\":\"List available functions\",\"name\":\"metadata\",\"params\":[],"
      "\"returns\":\"RuntimeMetadata\",\"streaming\":false},"
      "{\"description\":\"Execute a pipeline\",\"name\":\"pipeline\",\"params\":["
      "{\"description\":\"Pipeline name\",\"name\":\"pipeline\",\"required\":true,\"type\":"
      "\"string\"},"
      "{\"description\":\"Pipeline input\",\"name\":\"input\",\"required\":false,\"type\":"
      "\"object\"}],\"returns\":\"PipelineResult\",\"streaming\":false}],"
      "\"version\":\"",
      kVersion, "\"}");
}

}  // namespace llmload::protocol::realm_server
