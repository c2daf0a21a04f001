// File: http_json_handler.h
//
// HTTP_JSON: a plain non-streaming request/response endpoint for the
// standard load test. POST /v1/generate (aliases /v1/json and
// /api/generate):
//
//   request  {"prompt":"<text>","max_tokens":N}   every field optional;
//            "input" or "question" are read when "prompt" is absent, and
//            "length_words" like max_tokens. An empty body is allowed.
//   200      {"id":"gen-…","object":"generation","model":"llmload-emulator",
//             "text":"<N words>","usage":{"prompt_tokens":p,
//             "completion_tokens":N,"total_tokens":p+N}}
//            sent once the whole response would have been generated
//            (ttft + (N-1) token gaps).
//   400      {"error":{"code":400,"message":"…","status":"INVALID_ARGUMENT"}}
//   Faults: 500 -> 500 {"error":{"code":500,…,"status":"INTERNAL"}};
//   429 -> 429 RESOURCE_EXHAUSTED + retry-after; error_event -> 503
//   UNAVAILABLE; disconnect -> dropped without an answer; malformed -> 200
//   with a truncated JSON body.
//
// Thread-safe.

#pragma once

#include "services/emulator/provider_http.h"
#include "services/emulator/router.h"

namespace llmload::emulator {

inline constexpr std::string_view kHttpJsonPath = "/v1/generate";

class HttpJsonHandler {
 public:
  explicit HttpJsonHandler(const ProviderContext* context) : context_(context) {}
  void RegisterRoutes(Router* router);
  HttpResponse Generate(const HttpRequest& request) const;

 private:
  const ProviderContext* context_;
};

}  // namespace llmload::emulator
