#include "services/emulator/channel_hub.h"

#include <algorithm>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/beast/core/bind_handler.hpp"
#include "lib/common/log.h"

namespace llmload::emulator {
namespace {

namespace net = boost::asio;
namespace centrifugo = protocol::centrifugo;

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Publications handled per turn of the loop when a stream is behind (or has
// no delay), so one long stream cannot starve the loop's other sockets.
constexpr size_t kMaxBurst = 256;

}  // namespace

class ChannelHub::Channel {
 public:
  struct Entry {
    const ChannelSubscriber* key;
    std::weak_ptr<ChannelSubscriber> subscriber;
    net::io_context* loop;
  };

  Channel(std::string name, std::string epoch, net::io_context* home, size_t history_size)
      : name(std::move(name)), epoch(std::move(epoch)), home(home), history_size(history_size) {}

  // Encodes one publication (the pub object) with the next offset, keeps it
  // in the history and hands it to every subscriber. Runs on the home loop.
  // Returns false when the publication went nowhere (no subscriber, and no
  // history to keep it for one coming back): the stream should stop.
  bool Publish(absl::FunctionRef<void(std::string*, uint64_t)> encode_pub) {
    absl::InlinedVector<Entry, 2> targets;
    std::string pub;
    {
      absl::MutexLock lock(&mu);
      if (subscribers.empty() && (history_size == 0 || removed)) {
        return false;
      }
      // Encoded under the lock: offsets enter the history in order.
      encode_pub(&pub, ++offset);
      if (history_size > 0 && !removed) {
        history.emplace_back(offset, pub);
        if (history.size() > history_size) {
          history.pop_front();
        }
      }
      targets.assign(subscribers.begin(), subscribers.end());
    }
    if (targets.empty()) {
      return true;
    }
    std::string frame;
    frame.reserve(32 + name.size() + pub.size());
    centrifugo::AppendPushOfPub(&frame, name, pub);
    for (size_t i = 0; i < targets.size(); ++i) {
      Entry& e = targets[i];
      std::string copy = i + 1 == targets.size() ? std::move(frame) : frame;
      if (e.loop == home) {
        if (auto sub = e.subscriber.lock()) {
          sub->DeliverPush(std::move(copy));
        }
      } else {
        net::post(*e.loop, [weak = std::move(e.subscriber), f = std::move(copy)]() mutable {
          if (auto sub = weak.lock()) {
            sub->DeliverPush(std::move(f));
          }
        });
      }
    }
    return true;
  }

  // No subscribers and no streams.
  bool IdleLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return subscribers.empty() && active_streams == 0;
  }

  // Hands a mid-stream fault to every subscriber. Runs on the home loop.
  void DeliverFault(Fault fault) {
    absl::InlinedVector<Entry, 2> targets;
    {
      absl::MutexLock lock(&mu);
      targets.assign(subscribers.begin(), subscribers.end());
    }
    for (Entry& e : targets) {
      if (e.loop == home) {
        if (auto sub = e.subscriber.lock()) {
          sub->DeliverFault(fault);
        }
      } else {
        net::post(*e.loop, [weak = std::move(e.subscriber), fault] {
          if (auto sub = weak.lock()) {
            sub->DeliverFault(fault);
          }
        });
      }
    }
  }

  const std::string name;
  const std::string epoch;
  net::io_context* const home;
  const size_t history_size;

  absl::Mutex mu;
  uint64_t offset ABSL_GUARDED_BY(mu) = 0;
  int active_streams ABSL_GUARDED_BY(mu) = 0;
  absl::InlinedVector<Entry, 1> subscribers ABSL_GUARDED_BY(mu);
  // The last history_size publications (offset, pub object), oldest first.
  std::deque<std::pair<uint64_t, std::string>> history ABSL_GUARDED_BY(mu);
  bool removed ABSL_GUARDED_BY(mu) = false;  // RemoveHistory was called
  // When the channel last became idle (for the history's ttl).
  std::chrono::steady_clock::time_point idle_since ABSL_GUARDED_BY(mu);
};

class ChannelHub::TokenStream : public std::enable_shared_from_this<TokenStream> {
 public:
  TokenStream(ChannelHub* hub, std::shared_ptr<Channel> channel, ResponsePlan plan)
      : hub_(hub),
        channel_(std::move(channel)),
        plan_(std::move(plan)),
        timer_(*channel_->home) {}

  void Start() {
    start_ = std::chrono::steady_clock::now();
    Step();
  }

 private:
  void Step() {
    const auto now = std::chrono::steady_clock::now();
    size_t budget = kMaxBurst;
    const std::vector<std::string>& tokens = plan_.tokens;
    while (next_ <= tokens.size()) {
      const auto due = start_ + plan_.OffsetOf(next_);
      if (due > now) {
        timer_.expires_at(due);
        timer_.async_wait(
            boost::beast::bind_front_handler(&TokenStream::OnTimer, shared_from_this()));
        return;
      }
      if (budget-- == 0) {
        net::post(timer_.get_executor(), [self = shared_from_this()] { self->Step(); });
        return;
      }
      if (!fault_done_ && next_ == plan_.fault_at && plan_.fault != Fault::kNone) {
        fault_done_ = true;
        if (plan_.fault == Fault::kErrorEvent) {
          break;  // the run just stops: no done
        }
        if (plan_.fault == Fault::kDisconnect) {
          channel_->DeliverFault(Fault::kDisconnect);
          break;
        }
        if (plan_.fault == Fault::kMalformed) {
          channel_->DeliverFault(Fault::kMalformed);
        }
      }
      bool reached = false;
      if (next_ < tokens.size()) {
        const std::string& token = tokens[next_];
        reached = channel_->Publish([&](std::string* out, uint64_t offset) {
          centrifugo::AppendTokenPub(out, token, offset);
        });
      } else {
        reached = channel_->Publish(
            [&](std::string* out, uint64_t offset) { centrifugo::AppendDonePub(out, offset); });
      }
      if (!reached) {
        plan_.ClientLeft();
        LLMLOAD_LOG(kDebug, "Channel lost its subscribers; rest of the run dropped.")
            .Kv("channel", channel_->name)
            .Kv("published", next_)
            .Kv("total", tokens.size() + 1);
        break;
      }
      if (next_ < tokens.size()) {
        plan_.TokenSent(next_, now);
      }
      ++next_;
    }
    hub_->StreamFinished(channel_);
  }

  void OnTimer(boost::system::error_code ec) {
    if (ec) {
      return;  // the loop is shutting down
    }
    Step();
  }

  ChannelHub* hub_;
  std::shared_ptr<Channel> channel_;
  ResponsePlan plan_;
  net::steady_timer timer_;
  std::chrono::steady_clock::time_point start_;
  size_t next_ = 0;  // index of the next publication; tokens.size() = done
  bool fault_done_ = false;
};

ChannelHub::ChannelHub(std::function<std::string()> new_epoch, ChannelHistoryOptions history)
    : new_epoch_(std::move(new_epoch)), history_(history) {}

ChannelHub::~ChannelHub() = default;

ChannelHub::Shard& ChannelHub::ShardFor(std::string_view channel) {
  return shards_[std::hash<std::string_view>()(channel) % kShards];
}

centrifugo::ServerSubscription ChannelHub::Subscribe(std::string_view channel,
                                                     std::weak_ptr<ChannelSubscriber> subscriber,
                                                     const ChannelSubscriber* key,
                                                     net::io_context* loop,
                                                     const centrifugo::SubRecovery& recovery) {
  Shard& shard = ShardFor(channel);
  centrifugo::ServerSubscription result;
  result.channel = std::string(channel);
  absl::MutexLock lock(&shard.mu);
  Expire(shard);
  std::shared_ptr<Channel>& slot = shard.channels[Av(channel)];
  if (slot == nullptr) {
    slot = std::make_shared<Channel>(std::string(channel), new_epoch_(), loop, history_.size);
  }
  absl::MutexLock channel_lock(&slot->mu);
  const bool present = std::any_of(slot->subscribers.begin(), slot->subscribers.end(),
                                   [key](const Channel::Entry& e) { return e.key == key; });
  if (!present) {
    slot->subscribers.push_back(Channel::Entry{key, std::move(subscriber), loop});
  }
  result.epoch = slot->epoch;
  result.offset = slot->offset;
  if (recovery.recover) {
    // Under the channel's lock, so that a publication is either in the
    // history copied here or delivered live to the new subscriber, and the
    // live pushes are queued after this reply (the caller sends the reply
    // before it returns to its loop).
    result.was_recovering = true;
    attempted_.fetch_add(1, std::memory_order_relaxed);
    if (recovery.epoch == slot->epoch && recovery.offset <= slot->offset) {
      const uint64_t oldest =
          slot->history.empty() ? slot->offset + 1 : slot->history.front().first;
      // Nothing it missed has left the history.
      result.recovered = recovery.offset + 1 >= oldest;
      for (const auto& [offset, pub] : slot->history) {
        if (offset > recovery.offset) {
          result.publications.push_back(pub);
        }
      }
      recovered_pubs_.fetch_add(result.publications.size(), std::memory_order_relaxed);
    }
    if (result.recovered) {
      succeeded_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return result;
}

void ChannelHub::Unsubscribe(std::string_view channel, const ChannelSubscriber* key) {
  Shard& shard = ShardFor(channel);
  absl::MutexLock lock(&shard.mu);
  Expire(shard);
  auto it = shard.channels.find(Av(channel));
  if (it == shard.channels.end()) {
    return;
  }
  std::shared_ptr<Channel> ch = it->second;
  bool idle = false;
  {
    absl::MutexLock channel_lock(&ch->mu);
    ch->subscribers.erase(std::remove_if(ch->subscribers.begin(), ch->subscribers.end(),
                                         [key](const Channel::Entry& e) { return e.key == key; }),
                          ch->subscribers.end());
    idle = ch->IdleLocked();
  }
  if (idle) {
    Idle(shard, ch);
  }
}

void ChannelHub::RemoveHistory(std::string_view channel) {
  Shard& shard = ShardFor(channel);
  absl::MutexLock lock(&shard.mu);
  Expire(shard);
  auto it = shard.channels.find(Av(channel));
  if (it == shard.channels.end()) {
    return;
  }
  bool idle = false;
  {
    absl::MutexLock channel_lock(&it->second->mu);
    it->second->history.clear();
    it->second->removed = true;
    idle = it->second->IdleLocked();
  }
  if (idle) {
    shard.channels.erase(it);
  }
}

void ChannelHub::Idle(Shard& shard, const std::shared_ptr<Channel>& channel) {
  bool keep = false;
  const auto now = std::chrono::steady_clock::now();
  {
    absl::MutexLock channel_lock(&channel->mu);
    keep = !channel->history.empty() && !channel->removed && history_.ttl.count() > 0;
    channel->idle_since = now;
  }
  if (keep) {
    shard.expiring.emplace_back(channel->name, now + history_.ttl);
    return;
  }
  auto it = shard.channels.find(Av(channel->name));
  if (it != shard.channels.end() && it->second == channel) {
    shard.channels.erase(it);
  }
}

void ChannelHub::Expire(Shard& shard) {
  const auto now = std::chrono::steady_clock::now();
  while (!shard.expiring.empty() && shard.expiring.front().second <= now) {
    auto it = shard.channels.find(Av(shard.expiring.front().first));
    if (it != shard.channels.end()) {
      Channel& ch = *it->second;
      bool forget = false;
      {
        absl::MutexLock channel_lock(&ch.mu);
        // Still idle since the time this entry was made for.
        forget = ch.IdleLocked() && ch.idle_since + history_.ttl <= now;
      }
      if (forget) {
        shard.channels.erase(it);
      }
    }
    shard.expiring.pop_front();
  }
}

bool ChannelHub::StartTokenStream(std::string_view channel, std::vector<std::string> tokens,
                                  std::chrono::nanoseconds delay) {
  ResponsePlan plan;
  plan.offsets.resize(tokens.size() + 1);
  for (size_t i = 0; i < plan.offsets.size(); ++i) {
    plan.offsets[i] = delay * static_cast<int64_t>(i);
  }
  plan.tokens = std::move(tokens);
  return StartTokenStream(channel, std::move(plan));
}

bool ChannelHub::StartTokenStream(std::string_view channel, ResponsePlan plan) {
  std::shared_ptr<Channel> ch;
  {
    Shard& shard = ShardFor(channel);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.channels.find(Av(channel));
    if (it == shard.channels.end()) {
      return false;
    }
    ch = it->second;
    absl::MutexLock channel_lock(&ch->mu);
    const bool away = history_.start_while_away && history_.size > 0 && !ch->removed;
    if (ch->subscribers.empty() && !away) {
      return false;
    }
    ++ch->active_streams;
  }
  net::io_context* home = ch->home;
  auto stream = std::make_shared<TokenStream>(this, std::move(ch), std::move(plan));
  net::post(*home, [stream = std::move(stream)] { stream->Start(); });
  return true;
}

void ChannelHub::StreamFinished(const std::shared_ptr<Channel>& channel) {
  Shard& shard = ShardFor(channel->name);
  absl::MutexLock lock(&shard.mu);
  bool idle = false;
  {
    absl::MutexLock channel_lock(&channel->mu);
    --channel->active_streams;
    idle = channel->IdleLocked();
  }
  if (idle) {
    Idle(shard, channel);
  }
}

size_t ChannelHub::ChannelCountForTest() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    n += shard.channels.size();
  }
  return n;
}

}  // namespace llmload::emulator
