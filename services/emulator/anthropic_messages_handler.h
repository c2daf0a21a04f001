// File: anthropic_messages_handler.h
//
// ANTHROPIC_MESSAGES: POST /v1/messages, streaming (message_start,
// content_block_start, ping, content_block_delta…, content_block_stop,
// message_delta with usage, message_stop) and non-streaming, with the
// API's error bodies (shared/protocols/sse-providers.md §4). Accepts
// x-api-key or Authorization: Bearer and any anthropic-version.
//
// Length: x-llmload-length-words, else max_tokens (required by the API; one
// word per text_delta). Faults:
//   500          HTTP 500 api_error                 429  HTTP 429 rate_limit_error + retry-after
//   error_event  stream: event: error overloaded_error after ceil(n/2) deltas;
//                non-streaming: HTTP 529 overloaded_error
//   disconnect   stream: TCP dropped mid-stream; non-streaming: dropped, no answer
//   malformed    stream: one event whose data is not JSON; non-streaming: truncated JSON
//
// Thread-safe.

#pragma once

#include "services/emulator/provider_http.h"
#include "services/emulator/router.h"

namespace llmload::emulator {

class AnthropicMessagesHandler {
 public:
  explicit AnthropicMessagesHandler(const ProviderContext* context) : context_(context) {}
  void RegisterRoutes(Router* router);
  HttpResponse Messages(const HttpRequest& request) const;

 private:
  const ProviderContext* context_;
};

}  // namespace llmload::emulator
