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
// History (Centrifugo's history_size / history_ttl, with force_recovery):
// with history on, each channel keeps its last `size` publications. A
// subscriber that comes back with recover, the epoch it saw and the last
// offset it received gets what it missed in its subscription (connect reply
// subs or subscribe reply): was_recovering true, and
//   - recovered true and every publication after its offset, in offset
//     order, when the epoch matches and none of them has left the history;
//   - recovered false and the publications the history still holds after
//     its offset when some were pushed out (the gap was larger than the
//     history), as Centrifugo's memory engine answers an offset older than
//     its stream;
//   - recovered false and nothing when the epoch differs (the channel was
//     forgotten and started again) or the offset is ahead of the stream.
// Centrifugo answers the unrecoverable case of a subscribe the same way
// (recovered false; error 112 "unrecoverable position" is for the history
// call, which this emulator does not serve).
//
// Without subscribers, a channel with history goes on recording its running
// streams' publications (the client may be reconnecting) until its session is
// deleted (RemoveHistory: DELETE /api/sessions/{id}, the original's
// history_remove); then, or when history is off, a running stream stops at
// the first publication that finds the channel empty. An idle channel (no
// subscribers, no streams) with history is kept for `ttl` after it became
// idle, then forgotten. StartTokenStream needs a subscriber, unless
// `start_while_away` lets a run start into the history of a channel whose
// client is away (a run asked for just as its client's connection dropped,
// as Centrifugo keeps publishing into history); a group of processes leaves
// it off, so that a run for a client now in another process is relayed there.
//
// Several processes (--processes): a channel and its history live in the
// process whose socket subscribed first, where its runs stream. A client
// that reconnects into another process finds no channel there: it gets a
// new epoch and recovered false, and the rest of the stream it was reading
// goes on into the first process's history unread. DELETE /api/sessions
// reaching another process than the channel's does not stop the channel's
// stream there either (it runs to its end into the history).
//
// Thread-safety: thread-safe. The registry is split into mutex-guarded
// shards touched on subscribe/unsubscribe/stream start; the per-token path
// takes only the channel's own (uncontended) mutex.

#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
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

struct ChannelHistoryOptions {
  size_t size = 0;  // publications kept per channel; 0: no history
  std::chrono::nanoseconds ttl = std::chrono::seconds(300);
  bool start_while_away = false;
};

class ChannelHub {
 public:
  // new_epoch makes the epoch of each new channel.
  explicit ChannelHub(std::function<std::string()> new_epoch,
                      ChannelHistoryOptions history = {});
  ~ChannelHub();
  ChannelHub(const ChannelHub&) = delete;
  ChannelHub& operator=(const ChannelHub&) = delete;

  // Adds `subscriber` (identified by `key`, running on `loop`) to the
  // channel, creating it if needed; idempotent per key. Returns the
  // subscription as a connect/subscribe reply reports it (recoverable,
  // positioned, epoch, current offset). With `recovery.recover`, the reply
  // also carries what the subscriber missed (see History above); the
  // publications that follow reach it live, none twice.
  protocol::centrifugo::ServerSubscription Subscribe(
      std::string_view channel, std::weak_ptr<ChannelSubscriber> subscriber,
      const ChannelSubscriber* key, boost::asio::io_context* loop,
      const protocol::centrifugo::SubRecovery& recovery = {});
  void Unsubscribe(std::string_view channel, const ChannelSubscriber* key);
  // The session behind the channel is gone: its history is dropped, and
  // its streams stop once nobody is subscribed.
  void RemoveHistory(std::string_view channel);

  // Subscriptions that asked to recover, those that recovered (recovered
  // true), and the publications sent back in recovering replies.
  uint64_t recoveries_attempted() const { return attempted_.load(std::memory_order_relaxed); }
  uint64_t recoveries_succeeded() const { return succeeded_.load(std::memory_order_relaxed); }
  uint64_t publications_recovered() const {
    return recovered_pubs_.load(std::memory_order_relaxed);
  }

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
    // Idle channels kept for their history, oldest first: (name, when it
    // may be forgotten).
    std::deque<std::pair<std::string, std::chrono::steady_clock::time_point>> expiring
        ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 16;

  Shard& ShardFor(std::string_view channel);
  void StreamFinished(const std::shared_ptr<Channel>& channel);
  // The channel (of `shard`, locked) has neither subscribers nor streams:
  // forget it, or keep it for its history's ttl.
  void Idle(Shard& shard, const std::shared_ptr<Channel>& channel)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Forgets the idle channels of `shard` whose time is up.
  void Expire(Shard& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  std::function<std::string()> new_epoch_;
  const ChannelHistoryOptions history_;
  std::atomic<uint64_t> attempted_{0};
  std::atomic<uint64_t> succeeded_{0};
  std::atomic<uint64_t> recovered_pubs_{0};
  std::array<Shard, kShards> shards_;
};

}  // namespace llmload::emulator
