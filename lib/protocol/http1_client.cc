#include "lib/protocol/http1_client.h"

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace llmload::protocol::http1 {
namespace {

// RFC 9112 7.1 asks for no bound on chunk-size, but a recipient must guard
// against overflow; 15 hex digits (60 bits) can never overflow a uint64_t.
constexpr size_t kMaxChunkSizeDigits = 15;

bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A control character other than HTAB: never allowed in a field value, a
// reason phrase or a chunk extension.
bool IsForbiddenControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

bool IsWs(char c) { return c == ' ' || c == '\t'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::string_view TrimWs(std::string_view s);

// Header names and the tokens compared here are ASCII and case-insensitive.
bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return absl::ascii_tolower(static_cast<unsigned char>(x)) ==
                  absl::ascii_tolower(static_cast<unsigned char>(y));
         });
}

// Calls `fn` with each element of a comma-separated list, OWS trimmed.
// Returns false as soon as `fn` does.
template <typename Fn>
bool ForEachListElement(std::string_view list, Fn fn) {
  while (true) {
    const size_t comma = list.find(',');
    if (!fn(TrimWs(list.substr(0, comma)))) {
      return false;
    }
    if (comma == std::string_view::npos) {
      return true;
    }
    list.remove_prefix(comma + 1);
  }
}

std::string_view TrimWs(std::string_view s) {
  while (!s.empty() && IsWs(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && IsWs(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// Content-Length is 1*DIGIT (RFC 9110 8.6); anything else, or a value that
// does not fit 64 bits, is an error.
bool ParseContentLength(std::string_view s, uint64_t* out) {
  if (s.empty()) {
    return false;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) {
      return false;
    }
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

// "HTTP/1.x SP 3DIGIT [SP reason]". Sets the status and whether the minor
// version is 1.1 or later.
bool ParseStatusLine(std::string_view line, int* status, bool* http11) {
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." ||
      !absl::ascii_isdigit(static_cast<unsigned char>(line[7])) || line[8] != ' ') {
    return false;
  }
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(line[i]))) {
      return false;
    }
    code = code * 10 + (line[i] - '0');
  }
  if (code < 100 || code > 599) {
    return false;
  }
  std::string_view reason = line.substr(12);
  if (!reason.empty()) {
    if (reason.front() != ' ') {
      return false;
    }
    if (std::any_of(reason.begin(), reason.end(), IsForbiddenControl)) {
      return false;
    }
  }
  *status = code;
  *http11 = line[7] != '0';
  return true;
}

absl::Status Malformed(std::string_view what) {
  std::string message = "malformed HTTP/1.1 response: ";
  message.append(what);
  return absl::InvalidArgumentError(message);
}

}  // namespace

void AppendRequest(std::string& out, std::string_view method, std::string_view target,
                   std::string_view host, const HeaderList& headers, std::string_view body) {
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ");
  out.append(host).append("\r\n");
  for (const auto& [name, value] : headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    absl::StrAppend(&out, "Content-Length: ", body.size(), "\r\n");
  }
  out.append("\r\n").append(body);
}

ResponseReader::ResponseReader(size_t max_head_bytes) : max_head_(max_head_bytes) {}

void ResponseReader::Reset() {
  std::string().swap(head_);
  remaining_ = 0;
  line_ = 0;
  error_ = absl::OkStatus();
  state_ = State::kHead;
  started_ = false;
  last_cr_ = false;
}

absl::Status ResponseReader::Fail(absl::Status status) {
  std::string().swap(head_);
  state_ = State::kFailed;
  error_ = status;
  return status;
}

void ResponseReader::Finish(ResponseSink& sink) {
  state_ = State::kComplete;
  sink.OnComplete();
}

absl::StatusOr<size_t> ResponseReader::Feed(std::string_view data, ResponseSink& sink) {
  if (!data.empty() && state_ != State::kComplete) {
    started_ = true;
  }
  size_t pos = 0;
  while (true) {
    switch (state_) {
      case State::kFailed:
        return error_;
      case State::kComplete:
        return pos;
      case State::kHead:
        if (pos == data.size()) {
          return pos;
        }
        if (absl::Status s = ReadHead(data, &pos, sink); !s.ok()) {
          return s;
        }
        break;
      case State::kBodyLength: {
        if (remaining_ == 0) {
          Finish(sink);
          return pos;
        }
        if (pos == data.size()) {
          return pos;
        }
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - pos));
        const std::string_view piece = data.substr(pos, n);
        pos += n;
        remaining_ -= n;
        if (!sink.OnBody(piece)) {
          return pos;
        }
        break;
      }
      case State::kBodyUntilClose: {
        if (pos == data.size()) {
          return pos;
        }
        const std::string_view piece = data.substr(pos);
        pos = data.size();
        if (!sink.OnBody(piece)) {
          return pos;
        }
        break;
      }
      case State::kChunkData: {
        if (pos == data.size()) {
          return pos;
        }
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - pos));
        const std::string_view piece = data.substr(pos, n);
        pos += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          state_ = State::kChunkDataCr;
        }
        if (!sink.OnBody(piece)) {
          return pos;
        }
        break;
      }
      default:  // chunk framing and trailers
        if (pos == data.size()) {
          return pos;
        }
        if (absl::Status s = ReadFraming(data, &pos, sink); !s.ok()) {
          return s;
        }
        break;
    }
  }
}

absl::Status ResponseReader::ReadHead(std::string_view data, size_t* pos, ResponseSink& sink) {
  const size_t start = *pos;
  // Head bytes before this read; the head must fit in max_head_ in total.
  const size_t before = head_.size();
  for (size_t i = start; i < data.size(); ++i) {
    if (before + (i - start) + 1 > max_head_) {
      return Fail(absl::ResourceExhaustedError(
          absl::StrCat("HTTP response head is longer than ", max_head_, " bytes")));
    }
    const char c = data[i];
    if (last_cr_) {
      if (c != '\n') {
        return Fail(Malformed("CR without LF in the head"));
      }
      last_cr_ = false;
      const bool blank = line_ == 0;
      line_ = 0;
      if (!blank) {
        continue;
      }
      // The empty line: the head is whole. Parse it where it lies when it
      // came in this one read, so the common case copies nothing.
      const std::string_view rest = data.substr(start, i + 1 - start);
      *pos = i + 1;
      if (head_.empty()) {
        return OnHeadBlock(rest, sink);
      }
      head_.append(rest);
      return OnHeadBlock(head_, sink);
    }
    if (c == '\r') {
      last_cr_ = true;
    } else if (c == '\n') {
      return Fail(Malformed("bare LF in the head"));
    } else {
      ++line_;
    }
  }
  head_.append(data.substr(start));
  *pos = data.size();
  return absl::OkStatus();
}

absl::Status ResponseReader::OnHeadBlock(std::string_view block, ResponseSink& sink) {
  // `block` ends with CRLF CRLF (or is a lone CRLF) and has no bare CR or
  // LF; it may be a view of head_, which is released only after parsing.
  ResponseHead head;
  head.head_bytes = block.size();
  size_t eol = block.find("\r\n");
  bool http11 = false;
  if (!ParseStatusLine(block.substr(0, eol), &head.status, &http11)) {
    return Fail(Malformed("bad status line"));
  }
  bool has_length = false;
  uint64_t length = 0;
  bool chunked = false;
  bool close = false;
  bool keep_alive_token = false;
  for (size_t at = eol + 2; at < block.size(); at = eol + 2) {
    eol = block.find("\r\n", at);
    const std::string_view line = block.substr(at, eol - at);
    if (line.empty()) {
      break;
    }
    if (IsWs(line.front())) {
      return Fail(Malformed("obsolete line folding"));
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Fail(Malformed("header line without a name"));
    }
    const std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), IsTokenChar)) {
      return Fail(Malformed("bad header name"));
    }
    const std::string_view value = TrimWs(line.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), IsForbiddenControl)) {
      return Fail(Malformed("control character in a header value"));
    }
    if (EqualsNoCase(name, "content-length")) {
      uint64_t v = 0;
      if (!ParseContentLength(value, &v) || (has_length && v != length)) {
        return Fail(Malformed("bad or conflicting Content-Length"));
      }
      has_length = true;
      length = v;
    } else if (EqualsNoCase(name, "transfer-encoding")) {
      // Only chunked is understood, and it may be applied once, last. So
      // across all Transfer-Encoding lines the one coding must be chunked.
      bool any = false;
      const bool ok = ForEachListElement(value, [&](std::string_view coding) {
        if (coding.empty()) {
          return true;
        }
        if (chunked || !EqualsNoCase(coding, "chunked")) {
          return false;
        }
        chunked = true;
        any = true;
        return true;
      });
      if (!ok) {
        return Fail(Malformed("unsupported Transfer-Encoding"));
      }
      if (!any) {
        return Fail(Malformed("empty Transfer-Encoding"));
      }
    } else if (EqualsNoCase(name, "connection")) {
      ForEachListElement(value, [&](std::string_view option) {
        if (EqualsNoCase(option, "close")) {
          close = true;
        } else if (EqualsNoCase(option, "keep-alive")) {
          keep_alive_token = true;
        }
        return true;
      });
    } else if (EqualsNoCase(name, "retry-after")) {
      head.retry_after.assign(value);
    } else if (EqualsNoCase(name, "retry-after-ms")) {
      head.retry_after_ms.assign(value);
    }
  }

  if (head.status == 101) {
    return Fail(Malformed("101 Switching Protocols, but no upgrade was asked for"));
  }
  if (head.status < 200) {
    // An interim response (100 Continue, 103 Early Hints, ...): skip it and
    // read the next head. The buffer is kept, the final head follows.
    head_.clear();
    return absl::OkStatus();
  }

  head.keep_alive = !close && (http11 || keep_alive_token);
  bool body = true;
  if (head.status == 204 || head.status == 304) {
    body = false;
  } else if (chunked) {
    // RFC 9112 6.3: Transfer-Encoding overrides Content-Length, and such a
    // message may be a smuggling attempt, so the connection is not reused.
    // HTTP/1.0 has no chunked coding, so there too the framing is suspect.
    if (has_length || !http11) {
      head.keep_alive = false;
    }
    state_ = State::kChunkSize;
    remaining_ = 0;
    line_ = 0;
  } else if (has_length) {
    state_ = State::kBodyLength;
    remaining_ = length;
    body = length > 0;
  } else {
    state_ = State::kBodyUntilClose;
    head.keep_alive = false;
  }
  std::string().swap(head_);  // `block` is not used past here
  sink.OnHead(head);
  if (!body) {
    Finish(sink);
  }
  return absl::OkStatus();
}

absl::Status ResponseReader::ReadFraming(std::string_view data, size_t* pos, ResponseSink& sink) {
  while (*pos < data.size()) {
    const char c = data[(*pos)++];
    if (++line_ > max_head_) {
      return Fail(absl::ResourceExhaustedError(
          absl::StrCat("chunk-size line or trailers longer than ", max_head_, " bytes")));
    }
    switch (state_) {
      case State::kChunkSize:
        if (const int d = HexValue(c); d >= 0) {
          if (line_ > kMaxChunkSizeDigits) {
            return Fail(Malformed("chunk-size too large"));
          }
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(d);
        } else if (line_ == 1) {
          return Fail(Malformed("chunk-size without digits"));
        } else if (IsWs(c)) {
          state_ = State::kChunkSizeWs;
        } else if (c == ';') {
          state_ = State::kChunkExt;
        } else if (c == '\r') {
          state_ = State::kChunkSizeLf;
        } else {
          return Fail(Malformed("bad chunk-size"));
        }
        break;
      case State::kChunkSizeWs:
        if (c == ';') {
          state_ = State::kChunkExt;
        } else if (c == '\r') {
          state_ = State::kChunkSizeLf;
        } else if (!IsWs(c)) {
          return Fail(Malformed("bad chunk-size"));
        }
        break;
      case State::kChunkExt:
        if (c == '\r') {
          state_ = State::kChunkSizeLf;
        } else if (IsForbiddenControl(c)) {
          return Fail(Malformed("control character in a chunk extension"));
        }
        break;
      case State::kChunkSizeLf:
        if (c != '\n') {
          return Fail(Malformed("chunk-size line without CRLF"));
        }
        line_ = 0;
        // The last chunk is followed by the trailer section; any other
        // chunk by its data, which the caller's loop hands out.
        state_ = remaining_ == 0 ? State::kTrailerStart : State::kChunkData;
        if (state_ == State::kChunkData) {
          return absl::OkStatus();
        }
        break;
      case State::kChunkDataCr:
        if (c != '\r') {
          return Fail(Malformed("chunk data not followed by CRLF"));
        }
        state_ = State::kChunkDataLf;
        break;
      case State::kChunkDataLf:
        if (c != '\n') {
          return Fail(Malformed("chunk data not followed by CRLF"));
        }
        state_ = State::kChunkSize;
        remaining_ = 0;
        line_ = 0;
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          state_ = State::kEndLf;
        } else if (IsTokenChar(c)) {
          state_ = State::kTrailerName;
        } else {
          return Fail(Malformed("bad trailer field"));
        }
        break;
      case State::kTrailerName:
        if (c == ':') {
          state_ = State::kTrailerValue;
        } else if (!IsTokenChar(c)) {
          return Fail(Malformed("bad trailer field name"));
        }
        break;
      case State::kTrailerValue:
        if (c == '\r') {
          state_ = State::kTrailerLf;
        } else if (IsForbiddenControl(c)) {
          return Fail(Malformed("control character in a trailer field"));
        }
        break;
      case State::kTrailerLf:
        if (c != '\n') {
          return Fail(Malformed("trailer line without CRLF"));
        }
        state_ = State::kTrailerStart;  // line_ keeps counting: the bound is for all trailers
        break;
      case State::kEndLf:
        if (c != '\n') {
          return Fail(Malformed("chunked body not ended by CRLF"));
        }
        line_ = 0;
        Finish(sink);
        return absl::OkStatus();
      default:
        return absl::OkStatus();  // not reached: Feed calls this only for framing states
    }
  }
  return absl::OkStatus();
}

absl::Status ResponseReader::OnEof(ResponseSink& sink) {
  switch (state_) {
    case State::kFailed:
      return error_;
    case State::kComplete:
      return absl::OkStatus();
    case State::kBodyUntilClose:
      Finish(sink);
      return absl::OkStatus();
    case State::kBodyLength:
      if (remaining_ == 0) {  // OnBody stopped the reader on the last byte
        Finish(sink);
        return absl::OkStatus();
      }
      break;
    default:
      break;
  }
  if (!started_) {
    return absl::OkStatus();
  }
  return Fail(absl::UnavailableError("connection closed before the HTTP response was complete"));
}

}  // namespace llmload::protocol::http1
