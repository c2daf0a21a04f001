// File: channel_hub.h
//
// Centrifugo channels of the emulator: who is subscribed to which channel,
// each channel's stream position (epoch + offset), and the timed token
// streams /api/run starts.
//
// A channel is created by its first subscriber and lives on that
// subscriber's event loop (its "home"); every stream of the channel runs
// there. In the normal case (one WebSocket per session) a token goes from
// the stream's timer to the socket's outbox on one thread; extra
// subscribers on other loops get the same push (same offset) posted to
// their loop, in offset order. A channel is forgotten when it has neither
// subscribers nor running streams; a later subscriber starts a new epoch at
// offset 0, as Centrifugo does when history expires.
//
// Publications to a channel without subscribers are dropped: StartTokenStream
// returns false when nobody is subscribed, and a running stream stops at the
// first publication that finds the channel empty.
//
// Thread-safety: thread-safe. The registry is split into mutex-guarded
// shards touched on subscribe/unsubscribe/stream start; the per-token path
// takes only the channel's own (uncontended) mutex.

#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/io_context.hpp"
#include "lib/protocol/centrifugo_server.h"
#include "services/emulator/behaviour.h"

namespace llmload::emulator {

// Receives pushes; pinned to one io_context.
class ChannelSubscriber {
 public:
  virtual ~ChannelSubscriber() = default;
  // Called on the subscriber's own loop with one encoded push.
  virtual void DeliverPush(std::string frame) = 0;
  // A mid-stream fault of a run: kDisconnect drops the connection,
  // kMalformed sends one frame that is not JSON. Others are ignored.
  virtual void DeliverFault(Fault fault) { (void)fault; }
};

class ChannelHub {
 public:
  // new_epoch makes the epoch of each new channel.
  explicit ChannelHub(std::function<std::string()> new_epoch);
  ~ChannelHub();
  ChannelHub(const ChannelHub&) = delete;
  ChannelHub& operator=(const ChannelHub&) = delete;

  // Adds `subscriber` (identified by `key`, running on `loop`) to the
  // channel, creating it if needed; idempotent per key. Returns the
  // subscription as a connect/subscribe reply reports it (recoverable,
  // positioned, epoch, current offset).
  protocol::centrifugo::ServerSubscription Subscribe(std::string_view channel,
                                                     std::weak_ptr<ChannelSubscriber> subscriber,
                                                     const ChannelSubscriber* key,
                                                     boost::asio::io_context* loop);
  void Unsubscribe(std::string_view channel, const ChannelSubscriber* key);

  // Publishes {"token":tokens[i]} at start + i*delay, then {"done":true} at
  // start + n*delay, on the channel's home loop. Late deadlines are caught up
  // at once (in bursts, yielding to other work between them).
  bool StartTokenStream(std::string_view channel, std::vector<std::string> tokens,
                        std::chrono::nanoseconds delay);
  // The same on a planned schedule: token i at plan.OffsetOf(i), done at
  // plan.OffsetOf(n). The plan's mid-stream fault happens at fault_at:
  // error_event stops the run there (no done: the original's only failure
  // form), disconnect drops every subscriber's connection, malformed sends
  // each subscriber one non-JSON frame and the run goes on.
  bool StartTokenStream(std::string_view channel, ResponsePlan plan);

  size_t ChannelCountForTest() const;

 private:
  class Channel;
  class TokenStream;
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, std::shared_ptr<Channel>> channels ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 16;

  Shard& ShardFor(std::string_view channel);
  void StreamFinished(const std::shared_ptr<Channel>& channel);

  std::function<std::string()> new_epoch_;
  std::array<Shard, kShards> shards_;
};

}  // namespace llmload::emulator
