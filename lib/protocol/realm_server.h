// File: realm_server.h
//
// Server side of Realm's WebSocket function dispatch (shared/protocols/
// realm.md): parse the auth message and FunctionCalls, and encode the auth
// replies, the welcome message and FunctionResponses. Key order follows the
// Rust server: structs in declaration order (id,status,data,error;
// code,message), json!-built objects alphabetically (auth_*, welcome,
// TokenData, health, GenerationResult).
//
// TokenData carries "text" (the server's field) and, by default, a copy in
// "token" (what the Node SDK's generateStream reads; realm.md §6).
//
// Pure. Thread-safe.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "boost/json/object.hpp"

namespace llmload::protocol::realm_server {

inline constexpr char kVersion[] = "0.1.0";

// {"type":"auth","api_key":"…"} -> the key. INVALID_ARGUMENT otherwise.
absl::StatusOr<std::string> ParseAuth(std::string_view text);

struct FunctionCall {
  std::string id;
  std::string function;
  boost::json::object params;
  std::optional<std::string> tenant_id;
};
// INVALID_ARGUMENT with a serde-like reason ("missing field `id`", …).
absl::StatusOr<FunctionCall> ParseFunctionCall(std::string_view text);

struct GenerateParams {
  std::string prompt;
  std::string model;
  std::optional<int64_t> max_tokens;
  bool stream = false;
  std::optional<double> token_delay_ms;  // llmload extension
  std::string fault;                     // llmload extension ("" = none)
};
// INVALID_ARGUMENT with a serde-like reason ("missing field `prompt`").
absl::StatusOr<GenerateParams> ParseGenerateParams(const boost::json::object& params);

struct PipelineParams {
  std::string pipeline;
  std::string input_text;  // input.text or input.prompt when present
};
absl::StatusOr<PipelineParams> ParsePipelineParams(const boost::json::object& params);

// 3–64 characters of [A-Za-z0-9_-].
bool IsValidTenantId(std::string_view tenant);

std::string EncodeAuthRequired();
std::string EncodeAuthSuccess(std::string_view tenant);
std::string EncodeAuthFailed(std::string_view reason);
// {"status":"connected","tenant_id":<string|null>,"version":"0.1.0"}
std::string EncodeWelcome(const std::optional<std::string>& tenant);

// {"id":…,"status":"streaming","data":{"index":i,"is_final":b,"text":…[,"token":…]}}
void AppendStreamingToken(std::string* out, std::string_view id, int64_t index, bool is_final,
                          std::string_view text, bool token_copy = true);
// {"id":…,"status":"complete","data":{"status":"complete","tokens_generated":n}}
std::string EncodeGenerateDone(std::string_view id, int64_t tokens_generated);
// {"id":…,"status":"complete","data":{"cost_usd":…,"prompt_tokens":…,"text":…,"time_ms":…,"tokens_generated":n}}
std::string EncodeGenerationResult(std::string_view id, std::string_view text,
                                   int64_t tokens_generated, int64_t prompt_tokens,
                                   int64_t time_ms);
// {"id":…,"status":"complete","data":<data_json>}
std::string EncodeComplete(std::string_view id, std::string_view data_json);
// {"id":…,"status":"error","error":{"code":…,"message":…}}
std::string EncodeError(std::string_view id, std::string_view code, std::string_view message);

std::string HealthData(int64_t uptime_seconds);
std::string MetadataData();

inline constexpr std::string_view kBinaryNotSupported = "{\"error\":\"Binary messages not supported\"}";

}  // namespace llmload::protocol::realm_server
