// File: server_json.h
//
// Small helpers the emulator-side encoders and request parsers share:
// parse a request body into a JSON object, pull text out of the usual
// "content" shapes, count words, and append JSON string literals.
//
// Pure: no I/O, no clock, no globals. Thread-safe.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "boost/json/object.hpp"
#include "boost/json/value.hpp"

namespace llmload::protocol::server_json {

// The body as a JSON object. INVALID_ARGUMENT when it is not JSON or not
// an object (the message says which).
absl::StatusOr<boost::json::object> ParseObject(std::string_view body);

// Appends s as a JSON string literal (quotes included).
void AppendQuoted(std::string* out, std::string_view s);

// The text of a chat "content": a string, or an array of parts whose
// "text" members are joined with '\n'. Anything else gives "".
std::string ContentText(const boost::json::value& content);

// Whitespace-separated words in s (the emulator's token count of a prompt).
int64_t CountWords(std::string_view s);

// obj[key] as a string view; nullopt when absent, null or not a string.
std::optional<std::string_view> GetString(const boost::json::object& obj, std::string_view key);

// obj[key] as an integer (a double with no fraction counts). nullopt when
// absent or null; INVALID_ARGUMENT when present with another type.
absl::StatusOr<std::optional<int64_t>> GetInt(const boost::json::object& obj,
                                              std::string_view key);
// obj[key] as a number; nullopt when absent or null; INVALID_ARGUMENT when
// present with another type.
absl::StatusOr<std::optional<double>> GetNumber(const boost::json::object& obj,
                                                std::string_view key);
// obj[key] as a bool; `fallback` when absent or null; INVALID_ARGUMENT when
// present with another type.
absl::StatusOr<bool> GetBool(const boost::json::object& obj, std::string_view key, bool fallback);

}  // namespace llmload::protocol::server_json
