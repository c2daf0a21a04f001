// File: anthropic_messages_server.h
//
// Server side of the Anthropic Messages API (shared/protocols/
// sse-providers.md §4): parse a POST /v1/messages body and encode the
// streaming events (each "event: <name>" + "data: {"type":"<name>",…}"),
// the non-streaming message, the in-stream error event and the HTTP error
// body {"type":"error","error":{"type":…,"message":…},"request_id":…}.
//
// Event order of a stream: message_start, content_block_start, ping,
// content_block_delta × N, content_block_stop, message_delta (stop_reason,
// cumulative usage), message_stop.
//
// Pure. Thread-safe.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace llmload::protocol::anthropic_server {

struct MessagesRequest {
  std::string model;
  std::string prompt;         // text of the last message
  int64_t input_tokens = 0;   // words over system + every message
  int64_t max_tokens = 0;     // required by the API
  bool stream = false;
};

// INVALID_ARGUMENT with the API's message ("max_tokens: Field required", …).
absl::StatusOr<MessagesRequest> ParseMessagesRequest(std::string_view body);

void AppendMessageStart(std::string* out, std::string_view id, std::string_view model,
                        int64_t input_tokens);
void AppendContentBlockStart(std::string* out, int index);
void AppendPing(std::string* out);
void AppendTextDelta(std::string* out, int index, std::string_view text);
void AppendContentBlockStop(std::string* out, int index);
void AppendMessageDelta(std::string* out, std::string_view stop_reason, int64_t output_tokens);
void AppendMessageStop(std::string* out);
// event: error, data {"type":"error","error":{"type":<type>,"message":<message>}}
void AppendErrorEvent(std::string* out, std::string_view type, std::string_view message);

// The message object of a non-streaming request.
std::string EncodeMessage(std::string_view id, std::string_view model, std::string_view text,
                          std::string_view stop_reason, int64_t input_tokens,
                          int64_t output_tokens);

std::string EncodeError(std::string_view type, std::string_view message,
                        std::string_view request_id);

}  // namespace llmload::protocol::anthropic_server
