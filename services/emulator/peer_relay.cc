#include "services/emulator/peer_relay.h"

#include <unistd.h>

#include <array>
#include <deque>
#include <utility>

#include "boost/asio/buffer.hpp"
#include "boost/asio/local/stream_protocol.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/write.hpp"
#include "lib/common/log.h"

namespace llmload::emulator {

namespace net = boost::asio;
using local_stream = net::local::stream_protocol;

// One sibling. Loop-confined: every member is touched on the relay's
// io_context only.
class PeerRelay::Link : public std::enable_shared_from_this<PeerRelay::Link> {
 public:
  Link(net::io_context& ioc, int fd, size_t index, PeerRelay* relay)
      : socket_(ioc), index_(index), relay_(relay) {
    boost::system::error_code ec;
    socket_.assign(local_stream(), fd, ec);
    if (ec) {
      ::close(fd);
      LLMLOAD_LOG(kError, "Cannot use a link to a sibling process.")
          .Kv("link", index_)
          .Kv("error", ec.message());
      dead_ = true;
    }
  }

  void Start() { ReadHeader(); }

  void Send(std::shared_ptr<const std::string> frame) {
    if (dead_) {
      return;
    }
    if (backlog_ + frame->size() > kMaxBacklogBytes) {
      if (relay_->frames_dropped_.fetch_add(1, std::memory_order_relaxed) % 1000 == 0) {
        LLMLOAD_LOG(kWarn, "A sibling process reads too slowly; relayed runs dropped.")
            .Kv("link", index_)
            .Kv("backlog_bytes", backlog_);
      }
      return;
    }
    backlog_ += frame->size();
    outbox_.push_back(std::move(frame));
    relay_->frames_sent_.fetch_add(1, std::memory_order_relaxed);
    if (outbox_.size() == 1) {
      WriteNext();
    }
  }

  void Close() {
    dead_ = true;
    outbox_.clear();
    backlog_ = 0;
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  void ReadHeader() {
    if (dead_) {
      return;
    }
    net::async_read(socket_, net::buffer(header_),
                    [self = shared_from_this()](boost::system::error_code ec, size_t) {
                      self->OnHeader(ec);
                    });
  }

  void OnHeader(boost::system::error_code ec) {
    if (ec) {
      return Gone(ec);
    }
    const uint32_t length = DecodeFrameLength(std::string_view(header_.data(), header_.size()));
    if (length == 0 || length > kMaxRelayPayloadBytes) {
      return Broken("bad frame length");
    }
    payload_.resize(length);
    net::async_read(socket_, net::buffer(payload_),
                    [self = shared_from_this()](boost::system::error_code read_ec, size_t) {
                      self->OnPayload(read_ec);
                    });
  }

  void OnPayload(boost::system::error_code ec) {
    if (ec) {
      return Gone(ec);
    }
    absl::StatusOr<RelayedRun> run = DecodeRunPayload(payload_);
    if (!run.ok()) {
      return Broken(run.status().ToString());
    }
    relay_->frames_received_.fetch_add(1, std::memory_order_relaxed);
    relay_->on_run_(*std::move(run));
    ReadHeader();
  }

  void WriteNext() {
    if (dead_ || outbox_.empty()) {
      return;
    }
    // The handler holds the frame: Close may clear the outbox meanwhile.
    const std::shared_ptr<const std::string>& frame = outbox_.front();
    net::async_write(socket_, net::buffer(*frame),
                     [self = shared_from_this(), frame](boost::system::error_code ec, size_t) {
                       if (self->dead_) {
                         return;
                       }
                       if (ec) {
                         return self->Gone(ec);
                       }
                       self->backlog_ -= self->outbox_.front()->size();
                       self->outbox_.pop_front();
                       self->WriteNext();
                     });
  }

  // The sibling closed its end or failed: it is stopping, or dead (then the
  // supervisor stops the group).
  void Gone(boost::system::error_code ec) {
    if (dead_ || ec == net::error::operation_aborted) {
      return;
    }
    LLMLOAD_LOG(kDebug, "A sibling process closed its link.")
        .Kv("link", index_)
        .Kv("error", ec.message());
    Close();
  }

  void Broken(const std::string& why) {
    LLMLOAD_LOG(kError, "A sibling process sent a malformed frame; link closed.")
        .Kv("link", index_)
        .Kv("error", why);
    Close();
  }

  local_stream::socket socket_;
  const size_t index_;
  PeerRelay* relay_;
  std::array<char, kRelayHeaderBytes> header_{};
  std::string payload_;
  std::deque<std::shared_ptr<const std::string>> outbox_;
  size_t backlog_ = 0;
  bool dead_ = false;
};

PeerRelay::PeerRelay(net::io_context& ioc, const std::vector<int>& fds, OnRun on_run)
    : ioc_(ioc), on_run_(std::move(on_run)) {
  for (size_t i = 0; i < fds.size(); ++i) {
    links_.push_back(std::make_shared<Link>(ioc_, fds[i], i, this));
  }
}

PeerRelay::~PeerRelay() {
  // The loop is stopped by now: nothing else touches the links.
  for (auto& link : links_) {
    link->Close();
  }
}

void PeerRelay::Start() {
  net::post(ioc_, [this] {
    for (auto& link : links_) {
      link->Start();
    }
  });
}

void PeerRelay::Broadcast(std::string frame) {
  auto shared = std::make_shared<const std::string>(std::move(frame));
  net::post(ioc_, [this, shared = std::move(shared)] {
    for (auto& link : links_) {
      link->Send(shared);
    }
  });
}

void PeerRelay::Close() {
  net::post(ioc_, [this] {
    for (auto& link : links_) {
      link->Close();
    }
  });
}

}  // namespace llmload::emulator
