#include "lib/protocol/ws_framing.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

#include <openssl/evp.h>


namespace llmload::protocol::ws {
namespace {

constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
// RFC 6455 5.5: control frames carry at most 125 payload bytes.
constexpr uint64_t kMaxControlPayload = 125;

bool IsControl(uint8_t opcode) { return opcode >= 8; }

bool IsKnownOpcode(uint8_t opcode) {
  return opcode <= 2 || (opcode >= 8 && opcode <= 10);
}

// Bytes of the header that starts with `b1` (the second byte): 2, 4 or 10
// (server frames carry no mask key).
size_t HeaderLength(uint8_t b1) {
  const uint8_t len7 = b1 & 0x7f;
  return len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
}

struct Header {
  uint8_t b0 = 0;
  size_t length = 0;        // header bytes
  uint64_t payload = 0;     // payload bytes
};

// Decodes and checks the header at the start of `data`. Returns OK with
// `*complete` false when more bytes are needed.
absl::Status ParseHeader(std::string_view data, Header* h, bool* complete) {
  *complete = false;
  if (data.size() < 2) {
    return absl::OkStatus();
  }
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const uint8_t b0 = p[0];
  const uint8_t b1 = p[1];
  const uint8_t opcode = b0 & 0x0f;
  if ((b0 & 0x70) != 0) {
    return absl::InvalidArgumentError("RSV bits set without a negotiated extension");
  }
  if (!IsKnownOpcode(opcode)) {
    return absl::InvalidArgumentError("unknown opcode " + std::to_string(opcode));
  }
  if ((b1 & 0x80) != 0) {
    return absl::InvalidArgumentError("masked frame from the server");
  }
  h->b0 = b0;
  h->length = HeaderLength(b1);
  if (data.size() < h->length) {
    return absl::OkStatus();
  }
  const uint8_t len7 = b1 & 0x7f;
  if (len7 == 126) {
    h->payload = (uint64_t{p[2]} << 8) | p[3];
  } else if (len7 == 127) {
    h->payload = 0;
    for (int i = 2; i < 10; ++i) {
      h->payload = (h->payload << 8) | p[i];
    }
    if ((h->payload >> 63) != 0) {
      return absl::InvalidArgumentError("64-bit payload length with the high bit set");
    }
  } else {
    h->payload = len7;
  }
  if (IsControl(opcode) && ((b0 & 0x80) == 0 || h->payload > kMaxControlPayload)) {
    return absl::InvalidArgumentError("fragmented or oversized control frame");
  }
  *complete = true;
  return absl::OkStatus();
}

// (Debian's Abseil has its own string_view, so the few string helpers the
// handshake needs are written here against std::string_view.)

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

// True when the comma-separated `value` holds `token` (case-insensitive).
bool HasToken(std::string_view value, std::string_view token) {
  while (true) {
    const size_t comma = value.find(',');
    if (EqualsIgnoreCase(Trim(value.substr(0, comma)), token)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      return false;
    }
    value.remove_prefix(comma + 1);
  }
}

std::string Base64(const unsigned char* data, size_t n) {
  std::string out(4 * ((n + 2) / 3), '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                                      static_cast<int>(n));
  out.resize(static_cast<size_t>(written));
  return out;
}

}  // namespace

std::string ClientKey(const uint8_t (&nonce)[16]) {
  return Base64(nonce, 16);
}

std::string AcceptFor(std::string_view key) {
  std::string input(key);
  input += kAcceptGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return Base64(digest, sizeof digest);
}

std::string UpgradeRequest(std::string_view host, std::string_view path, std::string_view key,
                           const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out = "GET ";
  out += path.empty() ? std::string_view("/") : path;
  out += " HTTP/1.1\r\nHost: ";
  out += host;
  out += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
  out += key;
  out += "\r\nSec-WebSocket-Version: 13\r\n";
  for (const auto& [name, value] : headers) {
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += "\r\n";
  return out;
}

UpgradeResponse ParseUpgradeResponse(std::string_view data, std::string_view key,
                                     size_t max_bytes) {
  UpgradeResponse r;
  const size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos || end + 4 > max_bytes) {
    if (data.size() > max_bytes || end != std::string_view::npos) {
      r.state = UpgradeResponse::State::kInvalid;
      r.error = "upgrade response header block too long";
    }
    return r;
  }
  r.header_bytes = end + 4;
  std::string_view block = data.substr(0, end + 2);  // every line ends in CRLF
  const auto next_line = [&block]() {
    const size_t eol = block.find("\r\n");
    const std::string_view line = block.substr(0, eol);
    block.remove_prefix(eol + 2);
    return line;
  };
  // Status line: HTTP/1.x SSS reason
  const std::string_view status_line = next_line();
  int status = 0;
  const bool digits = status_line.size() >= 12 && status_line[9] >= '0' && status_line[9] <= '9' &&
                      status_line[10] >= '0' && status_line[10] <= '9' &&
                      status_line[11] >= '0' && status_line[11] <= '9';
  if (digits) {
    status = (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');
  }
  if (status_line.substr(0, 7) != "HTTP/1." || !digits || status_line[8] != ' ') {
    r.state = UpgradeResponse::State::kInvalid;
    r.error = "not an HTTP/1.x response";
    return r;
  }
  r.status = status;
  if (status != 101) {
    r.state = UpgradeResponse::State::kRefused;
    r.error = "upgrade refused with HTTP " + std::to_string(status);
    return r;
  }
  bool upgrade = false, connection = false, accept = false;
  const std::string expected_accept = AcceptFor(key);
  while (!block.empty()) {
    const std::string_view line = next_line();
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      r.state = UpgradeResponse::State::kInvalid;
      r.error = "malformed header line in the upgrade response";
      return r;
    }
    const std::string_view name = Trim(line.substr(0, colon));
    const std::string_view value = Trim(line.substr(colon + 1));
    if (EqualsIgnoreCase(name, "upgrade")) {
      upgrade = EqualsIgnoreCase(value, "websocket");
    } else if (EqualsIgnoreCase(name, "connection")) {
      connection = HasToken(value, "upgrade");
    } else if (EqualsIgnoreCase(name, "sec-websocket-accept")) {
      accept = value == expected_accept;
    } else if (EqualsIgnoreCase(name, "sec-websocket-extensions") ||
               EqualsIgnoreCase(name, "sec-websocket-protocol")) {
      r.state = UpgradeResponse::State::kInvalid;
      r.error = "server chose a " + std::string(name) + " the client did not offer";
      return r;
    }
  }
  if (!upgrade || !connection || !accept) {
    r.state = UpgradeResponse::State::kInvalid;
    r.error = !accept ? "missing or wrong Sec-WebSocket-Accept" : "101 without Upgrade: websocket";
    return r;
  }
  r.state = UpgradeResponse::State::kAccepted;
  return r;
}

void AppendClientFrame(std::string& out, Opcode opcode, std::string_view payload, uint32_t mask) {
  const size_t n = payload.size();
  uint8_t header[14];
  size_t h = 0;
  header[h++] = static_cast<uint8_t>(0x80 | static_cast<uint8_t>(opcode));
  if (n < 126) {
    header[h++] = static_cast<uint8_t>(0x80 | n);
  } else if (n <= 0xffff) {
    header[h++] = 0x80 | 126;
    header[h++] = static_cast<uint8_t>(n >> 8);
    header[h++] = static_cast<uint8_t>(n);
  } else {
    header[h++] = 0x80 | 127;
    for (int shift = 56; shift >= 0; shift -= 8) {
      header[h++] = static_cast<uint8_t>(static_cast<uint64_t>(n) >> shift);
    }
  }
  uint8_t key[4];
  std::memcpy(key, &mask, 4);
  std::memcpy(header + h, key, 4);
  h += 4;
  const size_t start = out.size();
  out.append(reinterpret_cast<const char*>(header), h);
  out.append(payload);
  char* p = out.data() + start + h;
  // Eight bytes at a time, then the tail; the key repeats every four bytes.
  uint64_t key8;
  std::memcpy(&key8, key, 4);
  std::memcpy(reinterpret_cast<char*>(&key8) + 4, key, 4);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= key8;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) {
    p[i] = static_cast<char>(p[i] ^ static_cast<char>(key[i & 3]));
  }
}

absl::Status ParseClosePayload(std::string_view payload, ClosePayload* out) {
  *out = ClosePayload{};
  if (payload.empty()) {
    return absl::OkStatus();
  }
  if (payload.size() == 1) {
    return absl::InvalidArgumentError("close frame with a one-byte payload");
  }
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  const uint16_t code = static_cast<uint16_t>((p[0] << 8) | p[1]);
  // RFC 6455 7.4: 1005, 1006 and 1015 never go on the wire; below 1000 and
  // 1016-2999 are unassigned.
  const bool valid = (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 &&
                      code != 1006) ||
                     (code >= 3000 && code <= 4999);
  if (!valid) {
    return absl::InvalidArgumentError("close code " + std::to_string(code) + " is not allowed");
  }
  out->code = code;
  out->reason = payload.substr(2);
  if (!IsValidUtf8(out->reason)) {
    return absl::InvalidArgumentError("close reason is not UTF-8");
  }
  return absl::OkStatus();
}

bool IsValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII runs eight bytes at a time: the common case for JSON.
    if (i + 8 <= n) {
      uint64_t v;
      std::memcpy(&v, p + i, 8);
      if ((v & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf;  // bounds of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) {
        lo = 0xa0;  // no overlongs
      } else if (c == 0xed) {
        hi = 0x9f;  // no surrogates
      }
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) {
        lo = 0x90;
      } else if (c == 0xf4) {
        hi = 0x8f;  // nothing above U+10FFFF
      }
    } else {
      return false;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) {
      return false;
    }
    for (size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) {
        return false;
      }
    }
    i += len;
  }
  return true;
}

void FrameReader::Reset() {
  std::string().swap(partial_);
  std::string().swap(message_);
  message_opcode_ = Opcode::kContinuation;
  stopped_ = false;
}

absl::Status FrameReader::OnFrame(uint8_t b0, std::string_view payload, Handler on_message) {
  const auto opcode = static_cast<Opcode>(b0 & 0x0f);
  const bool fin = (b0 & 0x80) != 0;
  switch (opcode) {
    case Opcode::kClose:
    case Opcode::kPing:
    case Opcode::kPong:
      on_message(opcode, payload);
      return absl::OkStatus();
    case Opcode::kText:
    case Opcode::kBinary:
      if (message_opcode_ != Opcode::kContinuation) {
        return absl::InvalidArgumentError("a new message inside a fragmented one");
      }
      if (fin) {
        if (opcode == Opcode::kText && !IsValidUtf8(payload)) {
          return absl::InvalidArgumentError("text message is not UTF-8");
        }
        on_message(opcode, payload);
        return absl::OkStatus();
      }
      message_opcode_ = opcode;
      message_.assign(payload);
      return absl::OkStatus();
    case Opcode::kContinuation:
      if (message_opcode_ == Opcode::kContinuation) {
        return absl::InvalidArgumentError("continuation frame without a message");
      }
      message_.append(payload);
      if (fin) {
        const Opcode whole = message_opcode_;
        message_opcode_ = Opcode::kContinuation;
        if (whole == Opcode::kText && !IsValidUtf8(message_)) {
          return absl::InvalidArgumentError("text message is not UTF-8");
        }
        on_message(whole, message_);
        std::string().swap(message_);
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown opcode");
}

absl::Status FrameReader::Feed(std::string_view data, Handler on_message) {
  stopped_ = false;
  Header h;
  bool complete = false;
  while (!data.empty() && !stopped_) {
    if (!partial_.empty()) {
      // Finish the frame begun in an earlier read: first its header, then
      // its payload, taking only the bytes it needs from `data`.
      for (;;) {
        size_t want = partial_.size() < 2 ? 2 : HeaderLength(static_cast<uint8_t>(partial_[1]));
        bool header_known = false;
        if (partial_.size() >= want) {
          if (auto s = ParseHeader(partial_, &h, &complete); !s.ok()) {
            return s;
          }
          if (!IsControl(h.b0 & 0x0f) && message_.size() + h.payload > max_message_) {
            return absl::ResourceExhaustedError("message over the size limit");
          }
          want = h.length + static_cast<size_t>(h.payload);
          header_known = true;
        }
        if (header_known && partial_.size() == want) {
          break;
        }
        if (data.empty()) {
          return absl::OkStatus();
        }
        const size_t take = std::min(data.size(), want - partial_.size());
        partial_.append(data.substr(0, take));
        data.remove_prefix(take);
      }
      std::string frame;
      frame.swap(partial_);  // empty again before the handler runs; freed after
      if (auto s = OnFrame(h.b0, std::string_view(frame).substr(h.length), on_message); !s.ok()) {
        return s;
      }
      continue;
    }
    if (auto s = ParseHeader(data, &h, &complete); !s.ok()) {
      return s;
    }
    if (complete && !IsControl(h.b0 & 0x0f) && message_.size() + h.payload > max_message_) {
      return absl::ResourceExhaustedError("message over the size limit");
    }
    if (!complete || data.size() - h.length < h.payload) {
      partial_.assign(data);
      return absl::OkStatus();
    }
    const std::string_view payload = data.substr(h.length, static_cast<size_t>(h.payload));
    data.remove_prefix(h.length + static_cast<size_t>(h.payload));
    if (auto s = OnFrame(h.b0, payload, on_message); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace llmload::protocol::ws
