#include "lib/protocol/sse.h"

#include <cstring>

namespace llmload::protocol::sse {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Empties `s` and gives its storage back. A stream's parser lives as long as
// the response, mostly waiting between events (a worker keeps thousands of
// them per thread): it keeps no buffer it is not using, at the price of an
// allocation per event that needs one.
void Release(std::string& s) { std::string().swap(s); }

}  // namespace

void SseParser::Reset() {
  line_.clear();
  after_cr_ = false;
  bom_checked_ = false;
  bom_seen_ = 0;
  event_type_.clear();
  data_.clear();
  has_data_ = false;
  last_id_.clear();
  retry_.reset();
  error_ = absl::OkStatus();
}

absl::Status SseParser::Feed(std::string_view bytes,
                             absl::FunctionRef<void(const SseEvent&)> on_event) {
  if (!error_.ok()) {
    return error_;
  }
  if (bom_checked_) {
    return FeedLines(bytes, on_event);
  }
  // The stream may open with a BOM, which may itself arrive split: bom_seen_
  // counts its bytes matched so far (they need no copy: they are kBom's).
  size_t i = 0;
  while (i < bytes.size() && bom_seen_ < kBom.size() && bytes[i] == kBom[bom_seen_]) {
    ++bom_seen_;
    ++i;
  }
  if (bom_seen_ < kBom.size() && i == bytes.size()) {
    return absl::OkStatus();  // still a possible BOM: wait for more bytes
  }
  bom_checked_ = true;
  if (bom_seen_ < kBom.size() && bom_seen_ > 0) {
    // The start of a BOM, then something else: those bytes were text.
    if (absl::Status s = FeedLines(kBom.substr(0, bom_seen_), on_event); !s.ok()) {
      return s;
    }
  }
  return FeedLines(bytes.substr(i), on_event);
}

absl::Status SseParser::FeedLines(std::string_view bytes,
                                  absl::FunctionRef<void(const SseEvent&)> on_event) {
  size_t pos = 0;
  const char* data = bytes.data();
  const size_t n = bytes.size();
  while (pos < n) {
    if (after_cr_) {
      after_cr_ = false;
      if (data[pos] == '\n') {
        ++pos;
        continue;
      }
    }
    // Find the next line terminator.
    size_t end = pos;
    while (end < n && data[end] != '\n' && data[end] != '\r') {
      ++end;
    }
    if (line_.size() + (end - pos) > max_line_) {
      error_ = absl::ResourceExhaustedError("SSE line exceeds the size limit");
      return error_;
    }
    if (end == n) {
      line_.append(data + pos, end - pos);
      break;
    }
    if (data[end] == '\r') {
      after_cr_ = true;
    }
    if (line_.empty()) {
      ProcessLine(std::string_view(data + pos, end - pos), on_event);
    } else {
      line_.append(data + pos, end - pos);
      ProcessLine(line_, on_event);
      Release(line_);
    }
    if (!error_.ok()) {
      return error_;
    }
    pos = end + 1;
  }
  return absl::OkStatus();
}

void SseParser::ProcessLine(std::string_view line,
                            absl::FunctionRef<void(const SseEvent&)> on_event) {
  if (line.empty()) {
    if (has_data_) {
      SseEvent e;
      e.type = event_type_.empty() ? std::string_view("message") : std::string_view(event_type_);
      e.data = data_;
      e.id = last_id_;
      e.retry_ms = retry_;
      on_event(e);
    }
    Release(event_type_);
    Release(data_);
    has_data_ = false;
    retry_.reset();
    return;
  }
  if (line.front() == ':') {
    return;  // comment
  }
  std::string_view name = line;
  std::string_view value;
  if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
    name = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
  }
  if (name == "data") {
    if (data_.size() + value.size() + 1 > max_event_) {
      error_ = absl::ResourceExhaustedError("SSE event exceeds the size limit");
      return;
    }
    if (has_data_) {
      data_.push_back('\n');
    }
    data_.append(value.data(), value.size());
    has_data_ = true;
  } else if (name == "event") {
    event_type_.assign(value.data(), value.size());
  } else if (name == "id") {
    if (value.find('\0') == std::string_view::npos) {
      last_id_.assign(value.data(), value.size());
    }
  } else if (name == "retry") {
    if (!value.empty() && value.size() <= 9 &&
        value.find_first_not_of("0123456789") == std::string_view::npos) {
      uint32_t v = 0;
      for (char c : value) {
        v = v * 10 + static_cast<uint32_t>(c - '0');
      }
      retry_ = v;
    }
  }
}

}  // namespace llmload::protocol::sse
