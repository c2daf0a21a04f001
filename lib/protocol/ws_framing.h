// File: ws_framing.h
//
// The client side of RFC 6455 without I/O: the opening handshake (request
// text, response check) and the framing (masked frames out, server frames in).
//
// The worker drives tens of thousands of WebSockets per process, most of
// them idle, so this is built for its data path rather than for generality:
// FrameReader hands out payloads that lie whole in the caller's buffer
// without copying them, keeps only the unfinished tail of a read, and holds
// no memory between messages. No extensions are negotiated, so any RSV bit
// is an error.
//
//   ws::FrameReader reader(1 << 20);
//   absl::Status s = reader.Feed(bytes, [&](ws::Opcode op, std::string_view payload) {...});
//
// Thread-compatible.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace llmload::protocol::ws {

enum class Opcode : uint8_t {
  kContinuation = 0,
  kText = 1,
  kBinary = 2,
  kClose = 8,
  kPing = 9,
  kPong = 10,
};

// ---- opening handshake ----

// Sec-WebSocket-Key for 16 nonce bytes (base64).
std::string ClientKey(const uint8_t (&nonce)[16]);
// The Sec-WebSocket-Accept a server must answer `key` with.
std::string AcceptFor(std::string_view key);

// The upgrade request. `headers` are extra (name, value) pairs sent as
// given; names the handshake itself sets are the caller's to avoid.
std::string UpgradeRequest(std::string_view host, std::string_view path, std::string_view key,
                           const std::vector<std::pair<std::string, std::string>>& headers = {});

struct UpgradeResponse {
  enum class State {
    kIncomplete,  // the header block has not ended yet: read more
    kAccepted,    // 101 with a valid upgrade; frames start at `header_bytes`
    kRefused,     // any other status: `status` says which
    kInvalid,     // not an HTTP response, a 101 without a proper upgrade, or too long
  };
  State state = State::kIncomplete;
  int status = 0;
  size_t header_bytes = 0;
  std::string error;  // kRefused / kInvalid: why, for logs
};

// Checks the server's answer to UpgradeRequest(…, key) from the bytes read
// so far. A header block over `max_bytes` is kInvalid.
UpgradeResponse ParseUpgradeResponse(std::string_view data, std::string_view key,
                                     size_t max_bytes = 16 * 1024);

// ---- frames ----

// Appends one masked client frame (FIN set) to `out`. `mask` is the masking
// key (RFC 6455 5.3: the caller draws it unpredictably per frame).
void AppendClientFrame(std::string& out, Opcode opcode, std::string_view payload, uint32_t mask);

// A close frame's payload: status code (0 when absent) and reason.
struct ClosePayload {
  uint16_t code = 0;
  std::string_view reason;
};
// INVALID_ARGUMENT for a one-byte payload or a code RFC 6455 forbids on the
// wire.
absl::Status ParseClosePayload(std::string_view payload, ClosePayload* out);

// True when `text` is well-formed UTF-8 (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view text);

// Turns the server's byte stream into messages. Text and binary messages are
// delivered whole (fragments joined, text checked as UTF-8); control frames
// (close, ping, pong) as they come, also between the fragments of a message.
class FrameReader {
 public:
  using Handler = absl::FunctionRef<void(Opcode, std::string_view)>;

  // Messages larger than `max_message_bytes` fail the read with
  // RESOURCE_EXHAUSTED (a WebSocket 1009).
  explicit FrameReader(size_t max_message_bytes) : max_message_(max_message_bytes) {}

  // Consumes all of `data`, calling `on_message` for every message it
  // completes. A payload that lies whole in `data` is passed as a view into
  // it. After an error the connection must be failed: INVALID_ARGUMENT for a
  // protocol violation (masked server frame, RSV bits, unknown opcode, bad
  // control frame, continuation without a start, invalid UTF-8),
  // RESOURCE_EXHAUSTED for a message over the limit. `on_message` may ask
  // to stop by calling Stop(); the rest of `data` is then dropped.
  absl::Status Feed(std::string_view data, Handler on_message);
  void Stop() { stopped_ = true; }

  // Bytes held between calls: an unfinished frame and a fragmented message.
  size_t buffered() const { return partial_.size() + message_.size(); }
  // Forgets everything (a new connection).
  void Reset();

 private:
  // One complete frame whose header was checked.
  absl::Status OnFrame(uint8_t b0, std::string_view payload, Handler on_message);

  size_t max_message_;
  std::string partial_;   // the start of a frame that did not arrive whole
  std::string message_;   // fragments of a message so far
  Opcode message_opcode_ = Opcode::kContinuation;  // kContinuation: none open
  bool stopped_ = false;
};

}  // namespace llmload::protocol::ws
