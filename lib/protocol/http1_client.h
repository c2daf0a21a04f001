// File: http1_client.h
//
// The client side of HTTP/1.1 (RFC 9112) without I/O: a request encoder and
// an incremental response reader.
//
// The worker keeps many thousands of streaming (SSE) responses open at once,
// so the reader is shaped for that: while a body streams it holds a handful
// of integers and no strings. The header block is gathered in a buffer only
// when it does not arrive in one read, and that buffer is freed as soon as
// the block is parsed. Body bytes are handed to the sink as views into the
// caller's data (chunked framing removed), never copied.
//
// The reader is strict where leniency would only hide a broken server: lines
// in the head end in CRLF, obs-fold is rejected, Content-Length is digits
// only, the only transfer coding understood is chunked, and every size
// (head, chunk-size line, trailers) is bounded.
//
// Not handled: responses to HEAD (the reader does not know the method and
// would wait for a body) and protocol upgrades (a 101 is an error).
//
//   http1::ResponseReader reader;
//   absl::StatusOr<size_t> used = reader.Feed(bytes, sink);
//
// Thread-compatible.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace llmload::protocol::http1 {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Appends one request to `out`: "<method> <target> HTTP/1.1\r\n",
// "Host: <host>\r\n", each extra header as given, "Content-Length: N\r\n"
// when `body` is non-empty or the method is POST, PUT or PATCH, a blank line,
// then the body. No Connection header is sent: HTTP/1.1 keeps the connection
// alive by default. Names and values are written as given; keeping CR and LF
// out of them is the caller's job.
void AppendRequest(std::string& out, std::string_view method, std::string_view target,
                   std::string_view host, const HeaderList& headers, std::string_view body);

// The parts of a final response head the worker acts on. Built for the
// OnHead call only; the reader keeps none of it.
struct ResponseHead {
  int status = 0;
  // False for HTTP/1.0 without "Connection: keep-alive", for "Connection:
  // close", for a body delimited by the close, and when both
  // Transfer-Encoding and Content-Length were sent.
  bool keep_alive = true;
  std::string retry_after;     // the Retry-After value, if any
  std::string retry_after_ms;  // the retry-after-ms value, if any
  size_t head_bytes = 0;       // bytes of the status line and header block
};

// What the reader reports, in order: OnHead once, OnBody zero or more times,
// OnComplete once.
class ResponseSink {
 public:
  // The final (non-1xx) head.
  virtual void OnHead(const ResponseHead& head) = 0;
  // Decoded body bytes (chunk framing removed), a view valid during the call.
  // Returning false stops the reader at once: Feed returns the bytes consumed
  // up to and including this piece.
  virtual bool OnBody(std::string_view bytes) = 0;
  // The whole response has arrived.
  virtual void OnComplete() = 0;

 protected:
  ~ResponseSink() = default;
};

// Reads one response at a time from a connection's byte stream.
class ResponseReader {
 public:
  explicit ResponseReader(size_t max_head_bytes = 16 * 1024);

  // Ready for the next response on the same connection. Also frees the head
  // buffer and clears an error.
  void Reset();

  // Feeds bytes read from the connection. Returns how many were consumed:
  // all of `data`, or fewer when the response completed (the rest is not part
  // of it) or when OnBody returned false. Fed after completion, it consumes
  // nothing. Errors: INVALID_ARGUMENT for anything malformed (status line,
  // header syntax, Content-Length, Transfer-Encoding, chunk framing, a 101),
  // RESOURCE_EXHAUSTED for a head, chunk-size line or trailer section over
  // `max_head_bytes`. After an error the reader stays failed until Reset().
  absl::StatusOr<size_t> Feed(std::string_view data, ResponseSink& sink);

  // The connection ended. Completes a body delimited by the close (calls
  // OnComplete). Returns UNAVAILABLE (and fails the reader) when a response
  // was started but not finished; OK with no callback when nothing was read
  // or the response was already complete.
  absl::Status OnEof(ResponseSink& sink);

  // OnComplete was called for the current response.
  bool complete() const { return state_ == State::kComplete; }
  // Some byte of the current response was fed.
  bool started() const { return started_; }
  // Bytes held between calls: only an unfinished head; 0 in the body.
  size_t buffered() const { return head_.size(); }

 private:
  enum class State : uint8_t {
    kHead,            // status line and header fields
    kBodyLength,      // Content-Length body: remaining_ bytes left
    kBodyUntilClose,  // body ends when the connection does
    kChunkSize,       // hex digits of a chunk-size; remaining_ accumulates
    kChunkSizeWs,     // whitespace after the digits
    kChunkExt,        // a chunk extension, skipped
    kChunkSizeLf,     // CR seen at the end of the chunk-size line
    kChunkData,       // remaining_ bytes of chunk data left
    kChunkDataCr,     // the CRLF that closes a chunk's data
    kChunkDataLf,
    kTrailerStart,  // start of a trailer line (or of the final CRLF)
    kTrailerName,
    kTrailerValue,
    kTrailerLf,  // CR seen at the end of a trailer line
    kEndLf,      // CR of the final empty line seen
    kComplete,
    kFailed,
  };

  // Consumes head bytes from `data` (starting at `*pos`); parses the head
  // once it ends and picks the body state.
  absl::Status ReadHead(std::string_view data, size_t* pos, ResponseSink& sink);
  // Parses one complete head (ends with the empty line).
  absl::Status OnHeadBlock(std::string_view block, ResponseSink& sink);
  // Consumes chunk framing and trailer bytes from `data` until a state that
  // is not framing is reached.
  absl::Status ReadFraming(std::string_view data, size_t* pos, ResponseSink& sink);
  absl::Status Fail(absl::Status status);
  void Finish(ResponseSink& sink);

  std::string head_;  // an unfinished head; empty (and freed) otherwise
  size_t max_head_;
  uint64_t remaining_ = 0;  // body or chunk bytes left; a chunk-size being read
  size_t line_ = 0;         // bytes of the current head line / chunk-size line / trailers
  absl::Status error_;      // set with kFailed
  State state_ = State::kHead;
  bool started_ = false;
  bool last_cr_ = false;  // the head's last byte was a CR
};

}  // namespace llmload::protocol::http1
