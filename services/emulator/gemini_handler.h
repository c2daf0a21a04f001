// File: gemini_handler.h
//
// GEMINI: POST /v1beta/models/{model}:streamGenerateContent?alt=sse (SSE,
// data:-only blocks, CRLF unless --gemini_sse_crlf=false; without alt=sse
// one JSON array of the chunks) and POST /v1beta/models/{model}:generateContent
// (one GenerateContentResponse), shared/protocols/sse-providers.md §5.
// Accepts x-goog-api-key or ?key=.
//
// Length: x-llmload-length-words, else generationConfig.maxOutputTokens (one
// word per chunk), else --length_words. Faults:
//   500          HTTP 500 INTERNAL                  429  HTTP 429 RESOURCE_EXHAUSTED + RetryInfo, retry-after
//   error_event  stream: data: {"error":{"code":503,…}} after ceil(n/2) chunks;
//                non-streaming: HTTP 503 UNAVAILABLE
//   disconnect   TCP dropped (mid-stream when streaming)
//   malformed    one block that is not JSON / a truncated JSON body
//
// Thread-safe.

#pragma once

#include "services/emulator/provider_http.h"
#include "services/emulator/router.h"

namespace llmload::emulator {

class GeminiHandler {
 public:
  explicit GeminiHandler(const ProviderContext* context) : context_(context) {}
  void RegisterRoutes(Router* router);
  // model_method: the path segment after /v1beta/models/.
  HttpResponse Generate(const HttpRequest& request, std::string_view model_method) const;

 private:
  const ProviderContext* context_;
};

}  // namespace llmload::emulator
