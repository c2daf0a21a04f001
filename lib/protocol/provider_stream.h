// File: provider_stream.h
//
// Client side of the LLM provider APIs the worker drives over HTTP: request
// paths and bodies, and the meaning of every streamed SSE event
// (shared/protocols/sse-providers.md):
//
//   OPENAI_CHAT         data-only chunks; choices[0].delta.content is text;
//                       a chunk with usage carries completion_tokens and
//                       prompt_tokens;
//                       `data: [DONE]` ends; {"error":{…}} is a stream error.
//   ANTHROPIC_MESSAGES  named events; content_block_delta/text_delta is text;
//                       message_start.message.usage.input_tokens;
//                       message_delta.usage.output_tokens; message_stop ends;
//                       `event: error` is a stream error; ping is ignored.
//   GEMINI              data-only GenerateContentResponse chunks; the text
//                       parts of candidate 0; usageMetadata is a running
//                       total (candidatesTokenCount, promptTokenCount);
//                       finishReason marks the last chunk; the end of
//                       the body ends the stream; {"error":{code,…}} errors.
//   OPENAI_RESPONSES    named events whose data repeats the type;
//                       response.output_text.delta's delta is text;
//                       response.completed ends with response.usage
//                       (output_tokens, input_tokens); response.incomplete
//                       ends too (truncated answer); response.failed and
//                       the `error` event ({"type":"error","code",
//                       "message"}) are stream errors; other events
//                       (created, in_progress, *.added, *.done) carry no
//                       text and are ignored.
//
// Pure: bytes in, items out. Thread-compatible.

#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <span>
#include <string_view>

#include <boost/json/fwd.hpp>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/protocol/sse.h"

namespace llmload::protocol::llm {

enum class Provider { kOpenAiChat, kAnthropic, kGemini, kOpenAiResponses };

struct StreamItem {
  enum class Kind {
    kContent,  // a piece of generated text (may be empty for role/metadata chunks: not a token)
    kUsage,    // the target reported its output and/or input token count (cumulative)
    kDone,     // the response is complete
    kError,    // an in-stream error event
  };
  Kind kind = Kind::kContent;
  std::string_view text;
  int64_t output_tokens = -1;  // kUsage: -1 when this event did not say
  int64_t input_tokens = -1;   // kUsage: prompt tokens, -1 when not said
  int32_t error_code = 0;  // provider code (e.g. Gemini's HTTP-like code), 0 if none
  std::string_view error_type;
  std::string_view error_message;
};

// One message of a conversation prompt (role: system, user or assistant).
struct ChatMessage {
  std::string_view role;
  std::string_view content;
};

struct RequestParams {
  std::string_view model;
  // One user message, unless `messages` is not empty. System messages go
  // where the provider wants them (Anthropic's "system", Gemini's
  // systemInstruction); Gemini calls the assistant "model".
  std::string_view prompt;
  std::span<const ChatMessage> messages;
  int32_t max_tokens = 0;  // 0: not sent (Anthropic requires one: 1024 then)
  bool stream = true;
};

// Path (with query) below the target's base path.
std::string RequestPath(Provider p, std::string_view model, bool stream);
// What to append to a target URL's `base_path` for a request: RequestPath,
// unless the base already names the provider's endpoint (a full endpoint URL
// such as Azure OpenAI's .../deployments/d/chat/completions, or Gemini's
// .../models/m:streamGenerateContent), which is then used as it is (with
// Gemini's alt=sse added for streaming).
std::string RequestPathBelow(Provider p, std::string_view base_path, std::string_view model,
                             bool stream);
std::string RequestBody(Provider p, const RequestParams& params);

// Interprets the SSE events of one response.
class StreamDecoder {
 public:
  explicit StreamDecoder(Provider p);
  ~StreamDecoder();
  StreamDecoder(const StreamDecoder&) = delete;
  StreamDecoder& operator=(const StreamDecoder&) = delete;

  // INVALID_ARGUMENT when the event is not what the provider sends
  // (malformed JSON, wrong shape): the stream is then a protocol error.
  absl::Status OnEvent(const sse::SseEvent& event,
                       absl::FunctionRef<void(const StreamItem&)> out);

 private:
  absl::Status OnResponsesEvent(const sse::SseEvent& event, const boost::json::object& root,
                                absl::FunctionRef<void(const StreamItem&)> out);

  Provider provider_;
};

// A non-streaming answer: its text and, when reported, the output and input
// tokens.
struct Completion {
  std::string text;
  int64_t output_tokens = -1;
  int64_t input_tokens = -1;
};
absl::StatusOr<Completion> ParseCompletion(Provider p, std::string_view body);

// A provider error body (HTTP status >= 400): type/status and message, for
// logs. Never fails: unknown shapes give empty fields.
struct ErrorBody {
  std::string type;
  std::string message;
};
ErrorBody ParseErrorBody(std::string_view body);

// Seconds to wait before retrying from Retry-After / retry-after-ms header
// values (either may be empty); -1 when neither gives a usable value. An
// HTTP-date is not supported (treated as absent).
double RetryAfterSeconds(std::string_view retry_after, std::string_view retry_after_ms);

}  // namespace llmload::protocol::llm
