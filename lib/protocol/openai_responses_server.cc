#include "lib/protocol/openai_responses_server.h"

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "lib/protocol/server_json.h"

namespace llmload::protocol::openai_responses {
namespace {

namespace json = boost::json;
using server_json::AppendQuoted;

// absl's own string_view (StrCat takes no std::string_view here).
absl::string_view A(std::string_view s) { return {s.data(), s.size()}; }

std::string MessageItem(std::string_view item_id, std::string_view status,
                        std::optional<std::string_view> text) {
  std::string out = "{\"id\":";
  AppendQuoted(&out, item_id);
  out += ",\"type\":\"message\",\"status\":";
  AppendQuoted(&out, status);
  out += ",\"role\":\"assistant\",\"content\":[";
  if (text.has_value()) {
    out += "{\"type\":\"output_text\",\"text\":";
    AppendQuoted(&out, *text);
    out += ",\"annotations\":[]}";
  }
  out += "]}";
  return out;
}

std::string Usage(int64_t input, int64_t output) {
  return absl::StrCat("{\"input_tokens\":", input,
                      ",\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":", output,
                      ",\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":",
                      input + output, "}");
}

std::string ResponseObject(std::string_view id, int64_t created, std::string_view model,
                           std::string_view status, std::string_view output,
                           std::string_view usage) {
  std::string out = "{\"id\":";
  AppendQuoted(&out, id);
  absl::StrAppend(&out, ",\"object\":\"response\",\"created_at\":", created, ",\"status\":");
  AppendQuoted(&out, status);
  out += ",\"error\":null,\"incomplete_details\":null,\"model\":";
  AppendQuoted(&out, model);
  absl::StrAppend(&out, ",\"output\":[", A(output),
                  "],\"parallel_tool_calls\":true,\"temperature\":1,\"tool_choice\":\"auto\","
                  "\"tools\":[],\"top_p\":1,\"usage\":",
                  A(usage), "}");
  return out;
}

}  // namespace

absl::StatusOr<ResponsesRequest> ParseResponsesRequest(std::string_view body) {
  absl::StatusOr<json::object> root = server_json::ParseObject(body);
  if (!root.ok()) {
    return absl::InvalidArgumentError(
        "We could not parse the JSON body of your request. The OpenAI API expects a JSON "
        "payload.");
  }
  ResponsesRequest req;
  const json::value* model = root->if_contains("model");
  if (model == nullptr || model->is_null()) {
    return absl::InvalidArgumentError("Missing required parameter: 'model'.");
  }
  if (!model->is_string()) {
    return absl::InvalidArgumentError("Invalid type for 'model': expected a string.");
  }
  req.model = std::string(model->get_string());
  if (std::optional<std::string_view> instructions = server_json::GetString(*root, "instructions")) {
    req.input_tokens += server_json::CountWords(*instructions);
  }
  const json::value* input = root->if_contains("input");
  if (input == nullptr || input->is_null()) {
    return absl::InvalidArgumentError("Missing required parameter: 'input'.");
  }
  if (input->is_string()) {
    req.prompt = std::string(input->get_string());
    req.input_tokens += server_json::CountWords(req.prompt);
  } else if (input->is_array()) {
    if (input->get_array().empty()) {
      return absl::InvalidArgumentError(
          "Invalid 'input': empty array. Expected an array with minimum length 1.");
    }
    for (const json::value& m : input->get_array()) {
      if (!m.is_object()) {
        return absl::InvalidArgumentError("Invalid type for 'input[0]': expected an object.");
      }
      if (const json::value* content = m.get_object().if_contains("content")) {
        req.prompt = server_json::ContentText(*content);
        req.input_tokens += server_json::CountWords(req.prompt);
      }
    }
  } else {
    return absl::InvalidArgumentError("Invalid type for 'input': expected a string or an array.");
  }
  absl::StatusOr<std::optional<int64_t>> max = server_json::GetInt(*root, "max_output_tokens");
  if (!max.ok()) {
    return absl::InvalidArgumentError(
        "Invalid type for 'max_output_tokens': expected an integer.");
  }
  if (max->has_value()) {
    // (The service's minimum is 16; the emulator accepts any positive value
    // so short test answers stay possible.)
    if (**max < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 1, "
          "but got ",
          **max, " instead."));
    }
    req.max_output_tokens = **max;
  }
  absl::StatusOr<bool> stream = server_json::GetBool(*root, "stream", false);
  if (!stream.ok()) {
    return absl::InvalidArgumentError("Invalid type for 'stream': expected a boolean.");
  }
  req.stream = *stream;
  return req;
}

EventEncoder::EventEncoder(std::string_view response_id, std::string_view item_id,
                           int64_t created, std::string_view model)
    : response_id_(response_id), item_id_(item_id), created_(created), model_(model) {}

void EventEncoder::Event(std::string* out, std::string_view type, std::string_view fields) {
  absl::StrAppend(out, "event: ", A(type), "\ndata: {\"type\":\"", A(type),
                  "\",\"sequence_number\":", sequence_++, A(fields), "}\n\n");
}

std::string EventEncoder::Response(std::string_view status, std::string_view output,
                                   std::string_view usage) const {
  return ResponseObject(response_id_, created_, model_, status, output, usage);
}

void EventEncoder::AppendHead(std::string* out) {
  const std::string in_progress = Response("in_progress", "", "null");
  Event(out, "response.created", absl::StrCat(",\"response\":", in_progress));
  Event(out, "response.in_progress", absl::StrCat(",\"response\":", in_progress));
  Event(out, "response.output_item.added",
        absl::StrCat(",\"output_index\":0,\"item\":",
                     MessageItem(item_id_, "in_progress", std::nullopt)));
  std::string part = ",\"item_id\":";
  AppendQuoted(&part, item_id_);
  part += ",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\","
          "\"annotations\":[]}";
  Event(out, "response.content_part.added", part);
}

void EventEncoder::AppendDelta(std::string* out, std::string_view delta) {
  std::string fields = ",\"item_id\":";
  AppendQuoted(&fields, item_id_);
  fields += ",\"output_index\":0,\"content_index\":0,\"delta\":";
  AppendQuoted(&fields, delta);
  fields += ",\"logprobs\":[]";
  Event(out, "response.output_text.delta", fields);
}

void EventEncoder::AppendTail(std::string* out, std::string_view text, int64_t input_tokens,
                              int64_t output_tokens) {
  std::string where = ",\"item_id\":";
  AppendQuoted(&where, item_id_);
  where += ",\"output_index\":0,\"content_index\":0";
  std::string quoted;
  AppendQuoted(&quoted, text);
  Event(out, "response.output_text.done",
        absl::StrCat(where, ",\"text\":", quoted, ",\"logprobs\":[]"));
  Event(out, "response.content_part.done",
        absl::StrCat(where, ",\"part\":{\"type\":\"output_text\",\"text\":", quoted,
                     ",\"annotations\":[]}"));
  const std::string item = MessageItem(item_id_, "completed", text);
  Event(out, "response.output_item.done", absl::StrCat(",\"output_index\":0,\"item\":", item));
  Event(out, "response.completed",
        absl::StrCat(",\"response\":",
                     Response("completed", item, Usage(input_tokens, output_tokens))));
}

void EventEncoder::AppendError(std::string* out, std::string_view code, std::string_view message) {
  std::string fields = ",\"code\":";
  AppendQuoted(&fields, code);
  fields += ",\"message\":";
  AppendQuoted(&fields, message);
  fields += ",\"param\":null";
  Event(out, "error", fields);
}

std::string EncodeResponse(std::string_view response_id, std::string_view item_id,
                           int64_t created, std::string_view model, std::string_view text,
                           int64_t input_tokens, int64_t output_tokens) {
  return ResponseObject(response_id, created, model, "completed",
                        MessageItem(item_id, "completed", text),
                        Usage(input_tokens, output_tokens));
}

}  // namespace llmload::protocol::openai_responses
