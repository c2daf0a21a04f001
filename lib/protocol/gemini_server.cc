#include "lib/protocol/gemini_server.h"

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "lib/protocol/server_json.h"
#include "lib/protocol/sse_encode.h"

namespace llmload::protocol::gemini_server {
namespace {

namespace json = boost::json;
using server_json::AppendQuoted;

}  // namespace

absl::StatusOr<ModelMethod> ParseModelMethod(std::string_view segment) {
  const size_t colon = segment.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return absl::NotFoundError("Not Found");
  }
  ModelMethod mm;
  mm.model = std::string(segment.substr(0, colon));
  const std::string_view method = segment.substr(colon + 1);
  if (method == "generateContent") {
    mm.method = Method::kGenerateContent;
  } else if (method == "streamGenerateContent") {
    mm.method = Method::kStreamGenerateContent;
  } else {
    return absl::NotFoundError("Not Found");
  }
  return mm;
}

absl::StatusOr<GenerateRequest> ParseGenerateRequest(std::string_view body) {
  absl::StatusOr<json::object> root = server_json::ParseObject(body);
  if (!root.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Invalid JSON payload received. ", root.status().message()));
  }
  GenerateRequest req;
  const json::value* contents = root->if_contains("contents");
  if (contents == nullptr || !contents->is_array() || contents->get_array().empty()) {
    return absl::InvalidArgumentError("* GenerateContentRequest.contents: contents is not specified\n");
  }
  for (const json::value& c : contents->get_array()) {
    if (!c.is_object()) {
      return absl::InvalidArgumentError(
          "Invalid JSON payload received. Unknown name \"contents\": Proto field is not "
          "repeating, cannot start list.");
    }
    const json::value* parts = c.get_object().if_contains("parts");
    if (parts != nullptr) {
      req.prompt = server_json::ContentText(*parts);
      req.prompt_tokens += server_json::CountWords(req.prompt);
    }
  }
  // The system instruction is part of the prompt the API counts.
  if (const json::value* system = root->if_contains("systemInstruction");
      system != nullptr && system->is_object()) {
    if (const json::value* parts = system->get_object().if_contains("parts"); parts != nullptr) {
      req.prompt_tokens += server_json::CountWords(server_json::ContentText(*parts));
    }
  }
  if (const json::value* config = root->if_contains("generationConfig");
      config != nullptr && config->is_object()) {
    absl::StatusOr<std::optional<int64_t>> max =
        server_json::GetInt(config->get_object(), "maxOutputTokens");
    if (!max.ok()) {
      return absl::InvalidArgumentError(
          "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32)");
    }
    if (max->has_value() && **max >= 1) {
      req.max_output_tokens = **max;
    }
  }
  return req;
}

void AppendResponse(std::string* out, const ChunkContext& ctx, std::string_view text,
                    std::string_view finish_reason, int64_t candidates_tokens) {
  out->append("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":");
  AppendQuoted(out, text);
  out->append("}],\"role\":\"model\"}");
  if (!finish_reason.empty()) {
    out->append(",\"finishReason\":");
    AppendQuoted(out, finish_reason);
  }
  out->append(",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":");
  if (finish_reason.empty()) {
    absl::StrAppend(out, ctx.prompt_tokens, ",\"totalTokenCount\":", ctx.prompt_tokens,
                    ",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":",
                    ctx.prompt_tokens, "}]}");
  } else {
    absl::StrAppend(out, ctx.prompt_tokens, ",\"candidatesTokenCount\":", candidates_tokens,
                    ",\"totalTokenCount\":", ctx.prompt_tokens + candidates_tokens,
                    ",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":",
                    ctx.prompt_tokens,
                    "}],\"candidatesTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":",
                    candidates_tokens, "}]}");
  }
  out->append(",\"modelVersion\":");
  AppendQuoted(out, ctx.model_version);
  out->append(",\"responseId\":");
  AppendQuoted(out, ctx.response_id);
  out->push_back('}');
}

void AppendChunkEvent(std::string* out, const ChunkContext& ctx, std::string_view text,
                      std::string_view finish_reason, int64_t candidates_tokens, bool crlf) {
  sse::AppendEventStart(out, "", crlf);
  AppendResponse(out, ctx, text, finish_reason, candidates_tokens);
  sse::AppendEventEnd(out, crlf);
}

std::string EncodeError(int code, std::string_view message, std::string_view status,
                        std::optional<int> retry_delay_seconds) {
  std::string out = absl::StrCat("{\"error\":{\"code\":", code, ",\"message\":");
  AppendQuoted(&out, message);
  out += ",\"status\":";
  AppendQuoted(&out, status);
  if (retry_delay_seconds.has_value()) {
    absl::StrAppend(&out,
                    ",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
                    "\"retryDelay\":\"",
                    *retry_delay_seconds, "s\"}]");
  }
  out += "}}";
  return out;
}

void AppendStreamError(std::string* out, bool crlf) {
  sse::AppendEvent(out, "",
                   "{\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try "
                   "again later.\",\"status\":\"UNAVAILABLE\"}}",
                   crlf);
}

}  // namespace llmload::protocol::gemini_server
