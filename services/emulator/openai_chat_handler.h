// File: openai_chat_handler.h
//
// OPENAI_CHAT: POST /v1/chat/completions, streaming (SSE chunks,
// stream_options.include_usage, data: [DONE]) and non-streaming, with the
// API's error bodies and status codes (shared/protocols/sse-providers.md §2).
//
// Length: x-llmload-length-words, else max_completion_tokens / max_tokens
// (one word per content chunk), else --length_words. Faults:
//   500          HTTP 500 server_error              429  HTTP 429 rate_limit_exceeded + retry-after
//   error_event  stream: in-stream {"error":…} after ceil(n/2) chunks (no [DONE]);
//                non-streaming: HTTP 500
//   disconnect   stream: TCP dropped after ceil(n/2) chunks; non-streaming: dropped, no answer
//   malformed    stream: one chunk that is not JSON; non-streaming: a truncated JSON body
// Any Authorization header is accepted.
//
// Thread-safe.

#pragma once

#include "services/emulator/provider_http.h"
#include "services/emulator/router.h"

namespace llmload::emulator {

class OpenAiChatHandler {
 public:
  explicit OpenAiChatHandler(const ProviderContext* context) : context_(context) {}
  void RegisterRoutes(Router* router);
  HttpResponse ChatCompletions(const HttpRequest& request) const;

 private:
  const ProviderContext* context_;
};

}  // namespace llmload::emulator
