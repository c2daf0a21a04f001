// File: provider_http.h
//
// What the HTTP protocol handlers (OpenAI, Anthropic, Gemini, HTTP JSON,
// and /api/run) share: the llmload extension headers, which every HTTP
// protocol honours, and small response builders.
//
//   x-llmload-fault: 500|429|error_event|disconnect|malformed  force a fault
//   x-llmload-token-delay-ms: <number in [0, 60000]>           mean token gap
//   x-llmload-length-words: <integer in [1, 100000]>           response length
//   x-llmload-ttft-ms: <number in [0, 60000]>                  first-token delay
//
// A header beyond its range or unparsable is a 400 in the provider's error
// shape (the message names the header).
//
// Thread-safe (pure functions).

#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "boost/beast/http/status.hpp"
#include "services/emulator/behaviour.h"
#include "services/emulator/router.h"

namespace llmload::emulator {

// What every provider handler needs.
struct ProviderContext {
  Behaviour* behaviour = nullptr;
  std::function<int64_t()> unix_now;  // "created" fields
  bool gemini_crlf = true;            // Gemini SSE line ends
};

// The extension headers of `request`. INVALID_ARGUMENT naming the header.
absl::StatusOr<RequestOverrides> OverridesFromHeaders(const HttpRequest& request);

// A status's message as a std::string (Debian's absl::string_view is not
// std::string_view).
inline std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// A response with the given content type and body.
HttpResponse TypedResponse(boost::beast::http::status status, std::string_view content_type,
                           std::string body);

// 200 text/event-stream with cache-control no-cache, streaming `source`.
HttpResponse SseResponse(std::unique_ptr<StreamSource> source);

// The query string's value of `key` ("" when absent).
std::string QueryParam(const HttpRequest& request, std::string_view key);

}  // namespace llmload::emulator
