// File: gemini_server.h
//
// Server side of the Gemini API's generateContent and
// streamGenerateContent (shared/protocols/sse-providers.md §5): parse the
// "{model}:{method}" path segment and the request body; encode
// GenerateContentResponse chunks as data:-only SSE blocks (CRLF like the
// real service, or LF), a whole response, and errors
// {"error":{"code":…,"message":…,"status":…}}.
//
// Chunk shape: candidates[{content:{parts:[{text}],role:"model"},index:0}],
// usageMetadata{promptTokenCount,totalTokenCount,…}, modelVersion,
// responseId; the last chunk adds finishReason and candidatesTokenCount.
//
// Pure. Thread-safe.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace llmload::protocol::gemini_server {

enum class Method { kGenerateContent, kStreamGenerateContent };

struct ModelMethod {
  std::string model;
  Method method = Method::kGenerateContent;
};

// "gemini-2.0-flash:streamGenerateContent" -> {model, method}. NOT_FOUND for
// another method or an empty model.
absl::StatusOr<ModelMethod> ParseModelMethod(std::string_view segment);

struct GenerateRequest {
  std::string prompt;          // text parts of the last content
  int64_t prompt_tokens = 0;   // words over every content
  std::optional<int64_t> max_output_tokens;  // generationConfig.maxOutputTokens
};

// INVALID_ARGUMENT with the API's message.
absl::StatusOr<GenerateRequest> ParseGenerateRequest(std::string_view body);

struct ChunkContext {
  std::string model_version;
  std::string response_id;
  int64_t prompt_tokens = 0;
};

// One GenerateContentResponse object (no SSE framing). finish_reason empty
// = an intermediate chunk (no finishReason, no candidatesTokenCount).
void AppendResponse(std::string* out, const ChunkContext& ctx, std::string_view text,
                    std::string_view finish_reason, int64_t candidates_tokens);

// "data: <response>" + blank line.
void AppendChunkEvent(std::string* out, const ChunkContext& ctx, std::string_view text,
                      std::string_view finish_reason, int64_t candidates_tokens, bool crlf);

// {"error":{"code":…,"message":…,"status":…}}; with retry_delay_seconds a
// google.rpc.RetryInfo detail is added.
std::string EncodeError(int code, std::string_view message, std::string_view status,
                        std::optional<int> retry_delay_seconds = std::nullopt);

// The in-stream error block: data: {"error":{"code":503,…,"status":"UNAVAILABLE"}}.
void AppendStreamError(std::string* out, bool crlf);

}  // namespace llmload::protocol::gemini_server
