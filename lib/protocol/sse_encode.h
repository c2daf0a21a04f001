// File: sse_encode.h
//
// Server-Sent Events as the emulator writes them (shared/protocols/
// sse-providers.md §1, "Emulator rule"): an optional "event: <name>" line,
// exactly one "data: <single-line payload>" line, then an empty line. Line
// ends are LF, or CRLF where a provider uses them (Gemini).
//
// Pure. Thread-safe.

#pragma once

#include <string>
#include <string_view>

namespace llmload::protocol::sse {

// Appends one complete event. `event` empty = no event line. `data` must
// not contain a line break.
void AppendEvent(std::string* out, std::string_view event, std::string_view data,
                 bool crlf = false);

// The text of an event before its payload: "event: <name>\ndata: " (or
// just "data: "). With AppendEventEnd, lets a caller write the payload in
// place.
void AppendEventStart(std::string* out, std::string_view event, bool crlf = false);
void AppendEventEnd(std::string* out, bool crlf = false);

}  // namespace llmload::protocol::sse
