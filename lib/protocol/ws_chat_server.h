// File: ws_chat_server.h
//
// Server side of the WS chat protocol (shared/protocols/ws-chat.md): parse
// client envelopes {"type","id","data","metadata"} and encode server
// envelopes in the same key order (type, id, data, metadata).
//
// user_message options are read nested (data.options.*) or flattened
// (data.*), as the bundled client sends them: maxTokens, tokenDelayMs
// (extension), ttftMs (extension), fault (extension), tools (array of
// names, or of objects with a "name").
//
// Pure. Thread-safe.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace llmload::protocol::ws_chat_server {

struct UserOptions {
  std::optional<int64_t> max_tokens;
  std::optional<double> token_delay_ms;
  std::optional<double> ttft_ms;
  std::string fault;
  std::vector<std::string> tools;
};

struct ClientMessage {
  std::string type;  // as sent; the server decides what it knows
  std::string id;
  // user_message
  std::string text;
  UserOptions options;
  // control
  std::string control_type;
};

// INVALID_ARGUMENT when the frame is not a JSON object (INVALID_MESSAGE).
// A missing type gives type "" (UNKNOWN_MESSAGE_TYPE), a missing id "".
absl::StatusOr<ClientMessage> ParseClientMessage(std::string_view text);

// Extra metadata fields on server messages.
struct Meta {
  int64_t timestamp_ms = 0;
  std::string_view client_id;   // empty = omitted
  std::string_view session_id;  // empty = omitted
};

// {"type":<type>,"id":<id>[,"data":<data_json>],"metadata":{…}}
void AppendEnvelope(std::string* out, std::string_view type, std::string_view id,
                    std::string_view data_json, const Meta& meta);

std::string EncodeConnected(std::string_view id, std::string_view client_id,
                            std::string_view session_id, int64_t timestamp_ms);
std::string EncodeProcessing(std::string_view id, int64_t timestamp_ms);
void AppendChunk(std::string* out, std::string_view id, std::string_view chunk, const Meta& meta);
std::string EncodeComplete(std::string_view id, std::string_view full_text, int64_t prompt_tokens,
                           int64_t completion_tokens, const Meta& meta);
std::string EncodeToolCall(std::string_view id, std::string_view tool_call_id,
                           std::string_view tool_name, std::string_view status,
                           const Meta& meta);
std::string EncodeToolResult(std::string_view id, std::string_view tool_call_id,
                             std::string_view tool_name, std::string_view result_json,
                             const Meta& meta);
std::string EncodeError(std::string_view id, std::string_view code, std::string_view message,
                        int64_t timestamp_ms);
std::string EncodePong(std::string_view id, int64_t timestamp_ms);
std::string EncodePing(std::string_view id, int64_t timestamp_ms);
std::string EncodeControlResponse(std::string_view id, std::string_view data_json,
                                  int64_t timestamp_ms);

}  // namespace llmload::protocol::ws_chat_server
