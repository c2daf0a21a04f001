#include "lib/protocol/anthropic_messages_server.h"

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "lib/protocol/server_json.h"
#include "lib/protocol/sse_encode.h"

namespace llmload::protocol::anthropic_server {
namespace {

namespace json = boost::json;
using server_json::AppendQuoted;

}  // namespace

absl::StatusOr<MessagesRequest> ParseMessagesRequest(std::string_view body) {
  absl::StatusOr<json::object> root = server_json::ParseObject(body);
  if (!root.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("There was an error parsing the body: ",
                                                   root.status().message()));
  }
  MessagesRequest req;
  const json::value* model = root->if_contains("model");
  if (model == nullptr || model->is_null()) {
    return absl::InvalidArgumentError("model: Field required");
  }
  if (!model->is_string()) {
    return absl::InvalidArgumentError("model: Input should be a valid string");
  }
  req.model = std::string(model->get_string());
  absl::StatusOr<std::optional<int64_t>> max_tokens = server_json::GetInt(*root, "max_tokens");
  if (!max_tokens.ok()) {
    return absl::InvalidArgumentError("max_tokens: Input should be a valid integer");
  }
  if (!max_tokens->has_value()) {
    return absl::InvalidArgumentError("max_tokens: Field required");
  }
  if (**max_tokens < 1) {
    return absl::InvalidArgumentError("max_tokens: Input should be greater than or equal to 1");
  }
  req.max_tokens = **max_tokens;
  const json::value* messages = root->if_contains("messages");
  if (messages == nullptr || messages->is_null()) {
    return absl::InvalidArgumentError("messages: Field required");
  }
  if (!messages->is_array()) {
    return absl::InvalidArgumentError("messages: Input should be a valid list");
  }
  if (const json::value* system = root->if_contains("system"); system != nullptr) {
    req.input_tokens += server_json::CountWords(server_json::ContentText(*system));
  }
  for (const json::value& m : messages->get_array()) {
    if (!m.is_object()) {
      return absl::InvalidArgumentError("messages.0: Input should be a valid dictionary");
    }
    if (const json::value* content = m.get_object().if_contains("content"); content != nullptr) {
      req.prompt = server_json::ContentText(*content);
      req.input_tokens += server_json::CountWords(req.prompt);
    }
  }
  absl::StatusOr<bool> stream = server_json::GetBool(*root, "stream", false);
  if (!stream.ok()) {
    return absl::InvalidArgumentError("stream: Input should be a valid boolean");
  }
  req.stream = *stream;
  return req;
}

void AppendMessageStart(std::string* out, std::string_view id, std::string_view model,
                        int64_t input_tokens) {
  sse::AppendEventStart(out, "message_start");
  out->append("{\"type\":\"message_start\",\"message\":{\"id\":");
  AppendQuoted(out, id);
  out->append(",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
  AppendQuoted(out, model);
  absl::StrAppend(out,
                  ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{"
                  "\"input_tokens\":",
                  input_tokens,
                  ",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,"
                  "\"output_tokens\":1}}}");
  sse::AppendEventEnd(out);
}

void AppendContentBlockStart(std::string* out, int index) {
  sse::AppendEventStart(out, "content_block_start");
  absl::StrAppend(out, "{\"type\":\"content_block_start\",\"index\":", index,
                  ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
  sse::AppendEventEnd(out);
}

void AppendPing(std::string* out) { sse::AppendEvent(out, "ping", "{\"type\": \"ping\"}"); }

void AppendTextDelta(std::string* out, int index, std::string_view text) {
  sse::AppendEventStart(out, "content_block_delta");
  absl::StrAppend(out, "{\"type\":\"content_block_delta\",\"index\":", index,
                  ",\"delta\":{\"type\":\"text_delta\",\"text\":");
  AppendQuoted(out, text);
  out->append("}}");
  sse::AppendEventEnd(out);
}

void AppendContentBlockStop(std::string* out, int index) {
  sse::AppendEventStart(out, "content_block_stop");
  absl::StrAppend(out, "{\"type\":\"content_block_stop\",\"index\":", index, "}");
  sse::AppendEventEnd(out);
}

void AppendMessageDelta(std::string* out, std::string_view stop_reason, int64_t output_tokens) {
  sse::AppendEventStart(out, "message_delta");
  out->append("{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":");
  AppendQuoted(out, stop_reason);
  absl::StrAppend(out, ",\"stop_sequence\":null},\"usage\":{\"output_tokens\":", output_tokens,
                  "}}");
  sse::AppendEventEnd(out);
}

void AppendMessageStop(std::string* out) {
  sse::AppendEvent(out, "message_stop", "{\"type\":\"message_stop\"}");
}

void AppendErrorEvent(std::string* out, std::string_view type, std::string_view message) {
  sse::AppendEventStart(out, "error");
  out->append("{\"type\":\"error\",\"error\":{\"type\":");
  AppendQuoted(out, type);
  out->append(",\"message\":");
  AppendQuoted(out, message);
  out->append("}}");
  sse::AppendEventEnd(out);
}

std::string EncodeMessage(std::string_view id, std::string_view model, std::string_view text,
                          std::string_view stop_reason, int64_t input_tokens,
                          int64_t output_tokens) {
  std::string out = "{\"id\":";
  AppendQuoted(&out, id);
  out += ",\"type\":\"message\",\"role\":\"assistant\",\"model\":";
  AppendQuoted(&out, model);
  out += ",\"content\":[{\"type\":\"text\",\"text\":";
  AppendQuoted(&out, text);
  out += "}],\"stop_reason\":";
  AppendQuoted(&out, stop_reason);
  absl::StrAppend(&out, ",\"stop_sequence\":null,\"usage\":{\"input_tokens\":", input_tokens,
                  ",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,"
                  "\"output_tokens\":",
                  output_tokens, "}}");
  return out;
}

std::string EncodeError(std::string_view type, std::string_view message,
                        std::string_view request_id) {
  std::string out = "{\"type\":\"error\",\"error\":{\"type\":";
  AppendQuoted(&out, type);
  out += ",\"message\":";
  AppendQuoted(&out, message);
  out += "},\"request_id\":";
  AppendQuoted(&out, request_id);
  out += "}";
  return out;
}

}  // namespace llmload::protocol::anthropic_server
