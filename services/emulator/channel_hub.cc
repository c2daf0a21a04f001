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

  Channel(std::string name, std::string epoch, net::io_context* home)
      : name(std::move(name)), epoch(std::move(epoch)), home(home) {}

  // Encodes one publication with the next offset and hands it to every
  // subscriber. Runs on the home loop. Returns the number of subscribers.
  size_t Publish(absl::FunctionRef<void(std::string*, uint64_t)> encode) {
    absl::InlinedVector<Entry, 2> targets;
    uint64_t pub_offset = 0;
    {
      absl::MutexLock lock(&mu);
      if (subscribers.empty()) {
        return 0;
      }
      pub_offset = ++offset;
      targets.assign(subscribers.begin(), subscribers.end());
    }
    std::string frame;
    frame.reserve(96 + name.size());
    encode(&frame, pub_offset);
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
    return targets.size();
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

  absl::Mutex mu;
  uint64_t offset ABSL_GUARDED_BY(mu) = 0;
  int active_streams ABSL_GUARDED_BY(mu) = 0;
  absl::InlinedVector<Entry, 1> subscribers ABSL_GUARDED_BY(mu);
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
      size_t reached = 0;
      if (next_ < tokens.size()) {
        const std::string& token = tokens[next_];
        reached = channel_->Publish([&](std::string* out, uint64_t offset) {
          centrifugo::AppendTokenPush(out, channel_->name, token, offset);
        });
      } else {
        reached = channel_->Publish([&](std::string* out, uint64_t offset) {
          centrifugo::AppendDonePush(out, channel_->name, offset);
        });
      }
      if (reached == 0) {
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

ChannelHub::ChannelHub(std::function<std::string()> new_epoch) : new_epoch_(std::move(new_epoch)) {}

ChannelHub::~ChannelHub() = default;

ChannelHub::Shard& ChannelHub::ShardFor(std::string_view channel) {
  return shards_[std::hash<std::string_view>()(channel) % kShards];
}

centrifugo::ServerSubscription ChannelHub::Subscribe(std::string_view channel,
                                                     std::weak_ptr<ChannelSubscriber> subscriber,
                                                     const ChannelSubscriber* key,
                                                     net::io_context* loop) {
  Shard& shard = ShardFor(channel);
  centrifugo::ServerSubscription result;
  result.channel = std::string(channel);
  absl::MutexLock lock(&shard.mu);
  std::shared_ptr<Channel>& slot = shard.channels[Av(channel)];
  if (slot == nullptr) {
    slot = std::make_shared<Channel>(std::string(channel), new_epoch_(), loop);
  }
  absl::MutexLock channel_lock(&slot->mu);
  const bool present = std::any_of(slot->subscribers.begin(), slot->subscribers.end(),
                                   [key](const Channel::Entry& e) { return e.key == key; });
  if (!present) {
    slot->subscribers.push_back(Channel::Entry{key, std::move(subscriber), loop});
  }
  result.epoch = slot->epoch;
  result.offset = slot->offset;
  return result;
}

void ChannelHub::Unsubscribe(std::string_view channel, const ChannelSubscriber* key) {
  Shard& shard = ShardFor(channel);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.channels.find(Av(channel));
  if (it == shard.channels.end()) {
    return;
  }
  Channel& ch = *it->second;
  bool forget = false;
  {
    absl::MutexLock channel_lock(&ch.mu);
    ch.subscribers.erase(std::remove_if(ch.subscribers.begin(), ch.subscribers.end(),
                                        [key](const Channel::Entry& e) { return e.key == key; }),
                         ch.subscribers.end());
    forget = ch.subscribers.empty() && ch.active_streams == 0;
  }
  if (forget) {
    shard.channels.erase(it);
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
    if (ch->subscribers.empty()) {
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
  bool forget = false;
  {
    absl::MutexLock channel_lock(&channel->mu);
    --channel->active_streams;
    forget = channel->subscribers.empty() && channel->active_streams == 0;
  }
  if (forget) {
    auto it = shard.channels.find(Av(channel->name));
    if (it != shard.channels.end() && it->second == channel) {
      shard.channels.erase(it);
    }
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
