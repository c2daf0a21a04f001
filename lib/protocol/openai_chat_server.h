// File: openai_chat_server.h
//
// Server side of OpenAI Chat Completions (shared/protocols/sse-providers.md
// §2): parse a POST /v1/chat/completions body, encode the streaming chunks
// (data:-only SSE events ending with data: [DONE]), the non-streaming
// completion, the in-stream error and the HTTP error body.
//
// Chunk keys follow the API's order: id, object, created, model,
// service_tier, system_fingerprint, choices, usage. With
// stream_options.include_usage every chunk carries "usage":null and one more
// chunk with "choices":[] carries the usage.
//
//   ChunkEncoder enc("chatcmpl-1", 1735689600, "gpt-4o-mini", "fp_emu", true);
//   enc.AppendRole(&body); enc.AppendContent(&body, "Hello"); …
//   enc.AppendFinish(&body, "stop"); enc.AppendUsage(&body, 9, 3); AppendDone(&body);
//
// Pure. Thread-safe.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace llmload::protocol::openai_server {

struct ChatRequest {
  std::string model;
  std::string prompt;          // text of the last message
  int64_t prompt_tokens = 0;   // words over every message
  std::optional<int64_t> max_tokens;  // max_completion_tokens, else max_tokens
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// INVALID_ARGUMENT with the API's message for a bad body: not JSON, model
// or messages missing or of the wrong type, a bad max_tokens.
absl::StatusOr<ChatRequest> ParseChatRequest(std::string_view body);

class ChunkEncoder {
 public:
  ChunkEncoder(std::string_view id, int64_t created, std::string_view model,
               std::string_view system_fingerprint, bool include_usage);

  // {"delta":{"role":"assistant","content":"","refusal":null}}
  void AppendRole(std::string* out) const;
  void AppendContent(std::string* out, std::string_view text) const;
  void AppendFinish(std::string* out, std::string_view finish_reason) const;
  // The extra usage chunk ("choices":[]).
  void AppendUsage(std::string* out, int64_t prompt_tokens, int64_t completion_tokens) const;

 private:
  std::string prefix_;  // "data: {...,\"choices\":["
  std::string suffix_;  // "],\"usage\":null}\n\n" or "]}\n\n"
};

// data: [DONE]
void AppendDone(std::string* out);
// The API's in-stream failure: data: {"error":{"message":…,"type":"server_error",…}}
void AppendStreamError(std::string* out);

// The chat.completion object of a non-streaming request.
std::string EncodeCompletion(std::string_view id, int64_t created, std::string_view model,
                             std::string_view system_fingerprint, std::string_view text,
                             std::string_view finish_reason, int64_t prompt_tokens,
                             int64_t completion_tokens);

// {"error":{"message":…,"type":…,"param":…|null,"code":…|null}}; empty
// param/code encode as null.
std::string EncodeError(std::string_view message, std::string_view type,
                        std::string_view param = "", std::string_view code = "");

}  // namespace llmload::protocol::openai_server
