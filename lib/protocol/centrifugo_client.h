// File: centrifugo_client.h
//
// Client side of the Centrifugo v2 JSON protocol, as a load-generating
// worker speaks it (see shared/protocols/centrifugo.md §8): encode the
// connect command and pongs, and classify every message of a server frame.
//
// A frame carries one or more JSON objects separated by '\n'. Parsing runs
// once per received frame on the worker's per-token path, so it allocates
// nothing on the heap for frames up to kScratchBytes of JSON values: the
// parsed document lives in a caller-owned scratch buffer.
//
//   centrifugo::ClientFrameParser parser;
//   absl::Status s = parser.Parse(frame, [&](const centrifugo::ServerEvent& e) {
//     if (e.kind == centrifugo::ServerEvent::Kind::kPublication && e.has_token) { ... }
//   });
//
// Thread-compatible: one parser per thread (or per session).

#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace llmload::protocol::centrifugo {

struct ServerEvent {
  enum class Kind {
    kPing,            // {} : answer with a pong when the connect reply said pong
    kConnectReply,    // {"id":N,"connect":{...}}; its recovered publications
                      // follow as kPublication events with from_recovery
    kReply,           // {"id":N,"<method>":{...}} for another command
    kReplyError,      // {"id":N,"error":{"code":..,"message":..}}
    kPublication,     // {"push":{"channel":..,"pub":{"data":..,"offset":..}}}
    kDisconnectPush,  // {"push":{"disconnect":{"code":..,"reason":..}}}
    kOtherPush,       // join/leave/unsubscribe/message/... pushes
  };
  Kind kind = Kind::kPing;
  uint32_t id = 0;
  // kReplyError and kDisconnectPush.
  uint32_t code = 0;
  std::string_view message;
  // kConnectReply.
  uint32_t ping_interval_seconds = 0;
  bool pong = false;
  // kConnectReply: the first server-side subscription of "subs" (channel in
  // `channel`), as a recovering client needs it: the stream position
  // (epoch, offset), whether the server tried to recover (was_recovering)
  // and managed it (recovered), and how many publications it sent back.
  bool has_sub = false;
  std::string_view epoch;
  bool recovered = false;
  bool was_recovering = false;
  uint32_t recovered_count = 0;
  // kPublication. The token text is valid only during the callback.
  std::string_view channel;
  bool has_token = false;  // data.token is a non-empty string
  std::string_view token;
  bool done = false;       // data.done is true
  uint64_t offset = 0;     // kPublication; kConnectReply: the sub's offset
  // kPublication: one of the publications a connect reply recovered (sent
  // right after its kConnectReply event, in the server's order).
  bool from_recovery = false;
};

// Where a client left a channel's stream: the last offset it received and
// the stream's epoch (from the connect reply).
struct StreamPosition {
  std::string_view channel;
  uint64_t offset = 0;
  std::string_view epoch;
};

// {"connect":{"token":"<jwt>","name":"js"},"id":<id>}
std::string EncodeConnectCommand(std::string_view token, uint32_t id);
// The same asking the server to recover the server-side subscription from
// `since`: {"connect":{"token":…,"name":"js","subs":{"<channel>":
// {"recover":true,"offset":N,"epoch":"…"}}},"id":<id>} (offset omitted
// when 0, as Centrifugo's encoder does).
std::string EncodeConnectCommand(std::string_view token, uint32_t id, const StreamPosition& since);
// {"subscribe":{"channel":"<channel>"},"id":<id>}
std::string EncodeSubscribeCommand(std::string_view channel, uint32_t id);
// A pong is an empty command object.
inline constexpr std::string_view kPongCommand = "{}";

class ClientFrameParser {
 public:
  static constexpr size_t kScratchBytes = 16 * 1024;
  static constexpr size_t kMaxFrameBytes = 1 << 20;

  ClientFrameParser();
  ~ClientFrameParser();
  ClientFrameParser(const ClientFrameParser&) = delete;
  ClientFrameParser& operator=(const ClientFrameParser&) = delete;

  // Calls on_event for each message of the frame, in order. Blank lines are
  // skipped. A line that is not a JSON object, or a frame over
  // kMaxFrameBytes, returns INVALID_ARGUMENT (events of earlier lines have
  // been delivered).
  absl::Status Parse(std::string_view frame, absl::FunctionRef<void(const ServerEvent&)> on_event);

 private:
  std::unique_ptr<unsigned char[]> scratch_;
};

}  // namespace llmload::protocol::centrifugo
