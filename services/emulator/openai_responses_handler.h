// File: openai_responses_handler.h
//
// OPENAI_RESPONSES: POST /v1/responses, streaming (named SSE events from
// response.created to response.completed, sequence numbers from 0, no
// [DONE]) and non-streaming (one response object), with the API's error
// bodies (shared/protocols/sse-providers.md §3).
//
// Length: x-llmload-length-words, else max_output_tokens (one word per
// output_text.delta), else --length_words. Faults as OPENAI_CHAT, except
// that error_event sends the Responses stream error event
// ({"type":"error","code":"server_error",…}) after ceil(n/2) deltas.
// Any Authorization header is accepted.
//
// Thread-safe.

#pragma once

#include "services/emulator/provider_http.h"
#include "services/emulator/router.h"

namespace llmload::emulator {

class OpenAiResponsesHandler {
 public:
  explicit OpenAiResponsesHandler(const ProviderContext* context) : context_(context) {}
  void RegisterRoutes(Router* router);
  HttpResponse Responses(const HttpRequest& request) const;

 private:
  const ProviderContext* context_;
};

}  // namespace llmload::emulator
