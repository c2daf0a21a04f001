// File: log.h
//
// One line per event on stderr, in the form the original emulator clients
// used: a sentence, then bracketed fields.
//
//   2026-11-21T10:00:00.123Z INFO worker Client connected. [client_id=0, session_id=…]
//
// With JSON output each line is an object with ts, level, component, msg and
// the fields. Never log on a per-token path, and never log a secret.
//
//   LLMLOAD_LOG(kInfo, "Listening.").Kv("address", addr).Kv("port", port);
//
// Thread-safe: each line is written with one write(2).

#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace llmload {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug", "info", "warn"/"warning", "error"; false on anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);

// Set once at start-up, before threads start.
void InitLogging(std::string_view component, LogLevel level, bool json);
// Renames the component after InitLogging (e.g. "emulator[2]" for one
// process of a group), also before threads start.
void SetLogComponent(std::string_view component);
bool LogEnabled(LogLevel level);

class LogLine {
 public:
  LogLine(LogLevel level, std::string_view message) : level_(level), message_(message) {}
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  ~LogLine();

  LogLine& Kv(std::string_view key, std::string_view value) {
    fields_.emplace_back(std::string(key), std::string(value));
    return *this;
  }
  LogLine& Kv(std::string_view key, const std::string& value) {
    return Kv(key, std::string_view(value));
  }
  LogLine& Kv(std::string_view key, const char* value) { return Kv(key, std::string_view(value)); }
  // Debian's Abseil does not alias absl::string_view to std::string_view.
  LogLine& Kv(std::string_view key, absl::string_view value) {
    return Kv(key, std::string_view(value.data(), value.size()));
  }
  template <typename T>
    requires std::is_arithmetic_v<T>
  LogLine& Kv(std::string_view key, T value) {
    std::ostringstream os;
    if constexpr (std::is_same_v<T, bool>) {
      os << (value ? "true" : "false");
    } else {
      os << value;
    }
    fields_.emplace_back(std::string(key), os.str());
    return *this;
  }

 private:
  LogLevel level_;
  std::string message_;
  std::vector<std::pair<std::string, std::string>> fields_;
};

}  // namespace llmload

#define LLMLOAD_LOG(level, message)                        \
  if (!::llmload::LogEnabled(::llmload::LogLevel::level)) { \
  } else                                                   \
    ::llmload::LogLine(::llmload::LogLevel::level, message)
