#include "lib/common/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace llmload {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_json{false};
std::string* g_component = new std::string("llmload");  // leaked on purpose: used at exit

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "INFO";
}

std::string Timestamp() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms.count() % 1000));
  return buf;
}

void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

}  // namespace

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  if (text == "debug") {
    *level = LogLevel::kDebug;
  } else if (text == "info") {
    *level = LogLevel::kInfo;
  } else if (text == "warn" || text == "warning") {
    *level = LogLevel::kWarn;
  } else if (text == "error") {
    *level = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

void InitLogging(std::string_view component, LogLevel level, bool json) {
  *g_component = std::string(component);
  g_level.store(static_cast<int>(level));
  g_json.store(json);
}

void SetLogComponent(std::string_view component) { *g_component = std::string(component); }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

LogLine::~LogLine() {
  std::string line;
  line.reserve(128);
  if (g_json.load(std::memory_order_relaxed)) {
    line += "{\"ts\":";
    AppendJsonString(line, Timestamp());
    line += ",\"level\":";
    AppendJsonString(line, LevelName(level_));
    line += ",\"component\":";
    AppendJsonString(line, *g_component);
    line += ",\"msg\":";
    AppendJsonString(line, message_);
    for (const auto& [k, v] : fields_) {
      line.push_back(',');
      AppendJsonString(line, k);
      line.push_back(':');
      AppendJsonString(line, v);
    }
    line += "}\n";
  } else {
    line += Timestamp();
    line.push_back(' ');
    line += LevelName(level_);
    line.push_back(' ');
    line += *g_component;
    line.push_back(' ');
    line += message_;
    if (!fields_.empty()) {
      line += " [";
      for (size_t i = 0; i < fields_.size(); ++i) {
        if (i > 0) {
          line += ", ";
        }
        line += fields_[i].first;
        line.push_back('=');
        line += fields_[i].second;
      }
      line.push_back(']');
    }
    line.push_back('\n');
  }
  ssize_t unused = ::write(STDERR_FILENO, line.data(), line.size());
  (void)unused;
}

}  // namespace llmload
