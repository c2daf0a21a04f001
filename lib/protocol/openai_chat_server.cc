#include "lib/protocol/openai_chat_server.h"

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "lib/protocol/server_json.h"

namespace llmload::protocol::openai_server {
namespace {

namespace json = boost::json;
using server_json::AppendQuoted;

void AppendUsageObject(std::string* out, int64_t prompt, int64_t completion) {
  absl::StrAppend(out, "{\"prompt_tokens\":", prompt, ",\"completion_tokens\":", completion,
                  ",\"total_tokens\":", prompt + completion,
                  ",\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
                  "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
                  "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}");
}

}  // namespace

absl::StatusOr<ChatRequest> ParseChatRequest(std::string_view body) {
  absl::StatusOr<json::object> root = server_json::ParseObject(body);
  if (!root.ok()) {
    return absl::InvalidArgumentError(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        "sent was not valid JSON.)");
  }
  ChatRequest req;
  const json::value* model = root->if_contains("model");
  if (model == nullptr || model->is_null()) {
    return absl::InvalidArgumentError("you must provide a model parameter");
  }
  if (!model->is_string()) {
    return absl::InvalidArgumentError("Invalid type for 'model': expected a string.");
  }
  req.model = std::string(model->get_string());
  const json::value* messages = root->if_contains("messages");
  if (messages == nullptr || messages->is_null()) {
    return absl::InvalidArgumentError("Missing required parameter: 'messages'.");
  }
  if (!messages->is_array()) {
    return absl::InvalidArgumentError("Invalid type for 'messages': expected an array.");
  }
  if (messages->get_array().empty()) {
    return absl::InvalidArgumentError(
        "Invalid 'messages': empty array. Expected an array with minimum length 1.");
  }
  for (const json::value& m : messages->get_array()) {
    if (!m.is_object()) {
      return absl::InvalidArgumentError("Invalid type for 'messages[0]': expected an object.");
    }
    const json::value* content = m.get_object().if_contains("content");
    if (content != nullptr) {
      req.prompt = server_json::ContentText(*content);
      req.prompt_tokens += server_json::CountWords(req.prompt);
    }
  }
  for (const char* key : {"max_completion_tokens", "max_tokens"}) {
    absl::StatusOr<std::optional<int64_t>> v = server_json::GetInt(*root, key);
    if (!v.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Invalid type for '", key, "': expected an integer."));
    }
    if (v->has_value()) {
      if (**v < 1) {
        return absl::InvalidArgumentError(absl::StrCat("Invalid '", key, "': integer below minimum value. Expected a value >= 1, but got ", **v, " instead."));
      }
      req.max_tokens = **v;
      break;
    }
  }
  absl::StatusOr<bool> stream = server_json::GetBool(*root, "stream", false);
  if (!stream.ok()) {
    return absl::InvalidArgumentError("Invalid type for 'stream': expected a boolean.");
  }
  req.stream = *stream;
  if (const json::value* opts = root->if_contains("stream_options");
      opts != nullptr && opts->is_object()) {
    absl::StatusOr<bool> usage = server_json::GetBool(opts->get_object(), "include_usage", false);
    req.include_usage = usage.ok() && *usage;
  }
  return req;
}

ChunkEncoder::ChunkEncoder(std::string_view id, int64_t created, std::string_view model,
                           std::string_view system_fingerprint, bool include_usage) {
  prefix_ = "data: {\"id\":";
  AppendQuoted(&prefix_, id);
  absl::StrAppend(&prefix_, ",\"object\":\"chat.completion.chunk\",\"created\":", created,
                  ",\"model\":");
  AppendQuoted(&prefix_, model);
  prefix_ += ",\"service_tier\":\"default\",\"system_fingerprint\":";
  AppendQuoted(&prefix_, system_fingerprint);
  prefix_ += ",\"choices\":[";
  suffix_ = include_usage ? "],\"usage\":null}\n\n" : "]}\n\n";
}

void ChunkEncoder::AppendRole(std::string* out) const {
  out->append(prefix_);
  out->append(
      "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
      "\"logprobs\":null,\"finish_reason\":null}");
  out->append(suffix_);
}

void ChunkEncoder::AppendContent(std::string* out, std::string_view text) const {
  out->append(prefix_);
  out->append("{\"index\":0,\"delta\":{\"content\":");
  AppendQuoted(out, text);
  out->append("},\"logprobs\":null,\"finish_reason\":null}");
  out->append(suffix_);
}

void ChunkEncoder::AppendFinish(std::string* out, std::string_view finish_reason) const {
  out->append(prefix_);
  out->append("{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":");
  AppendQuoted(out, finish_reason);
  out->append("}");
  out->append(suffix_);
}

void ChunkEncoder::AppendUsage(std::string* out, int64_t prompt_tokens,
                               int64_t completion_tokens) const {
  out->append(prefix_);
  out->append("],\"usage\":");
  AppendUsageObject(out, prompt_tokens, completion_tokens);
  out->append("}\n\n");
}

void AppendDone(std::string* out) { out->append("data: [DONE]\n\n"); }

void AppendStreamError(std::string* out) {
  out->append(
      "data: {\"error\":{\"message\":\"The server had an error while processing your request. "
      "Sorry about that!\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n");
}

std::string EncodeCompletion(std::string_view id, int64_t created, std::string_view model,
                             std::string_view system_fingerprint, std::string_view text,
                             std::string_view finish_reason, int64_t prompt_tokens,
                             int64_t completion_tokens) {
  std::string out = "{\"id\":";
  AppendQuoted(&out, id);
  absl::StrAppend(&out, ",\"object\":\"chat.completion\",\"created\":", created, ",\"model\":");
  AppendQuoted(&out, model);
  out += ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":";
  AppendQuoted(&out, text);
  out += ",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,\"finish_reason\":";
  AppendQuoted(&out, finish_reason);
  out += "}],\"usage\":";
  AppendUsageObject(&out, prompt_tokens, completion_tokens);
  out += ",\"service_tier\":\"default\",\"system_fingerprint\":";
  AppendQuoted(&out, system_fingerprint);
  out += "}";
  return out;
}

std::string EncodeError(std::string_view message, std::string_view type, std::string_view param,
                        std::string_view code) {
  std::string out = "{\"error\":{\"message\":";
  AppendQuoted(&out, message);
  out += ",\"type\":";
  AppendQuoted(&out, type);
  out += ",\"param\":";
  if (param.empty()) {
    out += "null";
  } else {
    AppendQuoted(&out, param);
  }
  out += ",\"code\":";
  if (code.empty()) {
    out += "null";
  } else {
    AppendQuoted(&out, code);
  }
  out += "}}";
  return out;
}

}  // namespace llmload::protocol::openai_server
