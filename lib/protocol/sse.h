// File: sse.h
//
// An incremental Server-Sent Events parser, complete to the HTML standard's
// event-stream rules (shared/protocols/sse-providers.md §1):
//
// - input arrives in arbitrary pieces (inside a field name, between CR and
//   LF, inside a UTF-8 sequence); nothing is assumed about what a read
//   returns;
// - lines end with CRLF, LF or a lone CR; a leading BOM is skipped;
// - `:` starts a comment; `name:value` splits at the first colon and drops
//   one leading space; a line without a colon is a field with an empty value;
// - `event`, `data` (joined with LF), `id` (ignored when it holds NUL) and
//   `retry` (digits only) are known; other fields are ignored;
// - a blank line dispatches the pending event if it has data;
// - an event not closed by a blank line at end of stream is dropped.
//
// Lines and events are capped; input over a cap puts the parser in a failed
// state (the stream is then a protocol error) rather than growing memory.
//
//   SseParser parser;
//   absl::Status s = parser.Feed(bytes, [&](const SseEvent& e) { ... });
//
// Thread-compatible.

#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace llmload::protocol::sse {

struct SseEvent {
  std::string_view type;  // "message" when no event field was given
  std::string_view data;  // data lines joined with '\n'
  std::string_view id;    // the last event id seen (persists across events)
  std::optional<uint32_t> retry_ms;  // set on the event where a retry field appeared
};

class SseParser {
 public:
  static constexpr size_t kDefaultMaxLineBytes = 1 << 20;
  static constexpr size_t kDefaultMaxEventBytes = 4 << 20;

  SseParser() = default;
  SseParser(size_t max_line_bytes, size_t max_event_bytes)
      : max_line_(max_line_bytes), max_event_(max_event_bytes) {}

  // Parses more of the stream, calling on_event for each completed event.
  // After an error every further call returns the same error.
  absl::Status Feed(std::string_view bytes, absl::FunctionRef<void(const SseEvent&)> on_event);
  // Starts a new stream (keeps the configured caps, forgets the last id).
  void Reset();
  // True while part of a line or an undispatched event is buffered.
  bool HasPendingInput() const { return !line_.empty() || has_data_ || !event_type_.empty(); }

 private:
  absl::Status FeedLines(std::string_view bytes, absl::FunctionRef<void(const SseEvent&)> on_event);
  void ProcessLine(std::string_view line, absl::FunctionRef<void(const SseEvent&)> on_event);

  size_t max_line_ = kDefaultMaxLineBytes;
  size_t max_event_ = kDefaultMaxEventBytes;
  std::string line_;        // partial line carried over between Feed calls
  bool after_cr_ = false;   // the previous byte was a CR (an LF right after belongs to it)
  bool bom_checked_ = false;
  uint8_t bom_seen_ = 0;    // bytes of a BOM matched at the start, until bom_checked_
  std::string event_type_;
  std::string data_;
  bool has_data_ = false;
  std::string last_id_;
  std::optional<uint32_t> retry_;
  absl::Status error_;
};

}  // namespace llmload::protocol::sse
