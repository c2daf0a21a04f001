// File: openai_responses_server.h
//
// Server side of the OpenAI Responses API (shared/protocols/sse-providers.md
// §3, fixtures/openai-responses-stream.sse): parse a POST /v1/responses
// body, encode the streamed events (each `event: <type>` plus `data` JSON
// with the same type and a sequence_number counting from 0; no [DONE]), the
// non-streaming response object and the in-stream error event.
//
//   EventEncoder enc("resp_1", "msg_1", 1735689600, "gpt-4o-mini");
//   enc.AppendHead(&body);               // created .. content_part.added
//   enc.AppendDelta(&body, "Hello"); …
//   enc.AppendTail(&body, "Hello …", 9, 3);  // output_text.done .. completed
//
// Pure. Thread-compatible (the encoder counts sequence numbers).

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace llmload::protocol::openai_responses {

struct ResponsesRequest {
  std::string model;
  std::string prompt;         // text of the last input message (or the input string)
  int64_t input_tokens = 0;   // words over the instructions and every input message
  std::optional<int64_t> max_output_tokens;
  bool stream = false;
};

// INVALID_ARGUMENT with the API's message for a bad body: not JSON, model
// missing or not a string, input missing or neither a string nor an array,
// a bad max_output_tokens or stream.
absl::StatusOr<ResponsesRequest> ParseResponsesRequest(std::string_view body);

class EventEncoder {
 public:
  EventEncoder(std::string_view response_id, std::string_view item_id, int64_t created,
               std::string_view model);

  // response.created, response.in_progress, response.output_item.added,
  // response.content_part.added.
  void AppendHead(std::string* out);
  // response.output_text.delta.
  void AppendDelta(std::string* out, std::string_view delta);
  // response.output_text.done, response.content_part.done,
  // response.output_item.done, response.completed (with usage).
  void AppendTail(std::string* out, std::string_view text, int64_t input_tokens,
                  int64_t output_tokens);
  // The stream error event {"type":"error","code","message","param",...}.
  void AppendError(std::string* out, std::string_view code, std::string_view message);

 private:
  void Event(std::string* out, std::string_view type, std::string_view fields);
  std::string Response(std::string_view status, std::string_view output,
                       std::string_view usage) const;

  std::string response_id_;
  std::string item_id_;
  int64_t created_;
  std::string model_;
  int64_t sequence_ = 0;
};

// The response object of a non-streaming request (status "completed").
std::string EncodeResponse(std::string_view response_id, std::string_view item_id,
                           int64_t created, std::string_view model, std::string_view text,
                           int64_t input_tokens, int64_t output_tokens);

}  // namespace llmload::protocol::openai_responses
