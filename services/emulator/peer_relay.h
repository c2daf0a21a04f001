// File: peer_relay.h
//
// The links between the processes of a multi-process emulator: one
// connected Unix stream socket to each sibling, set up by the supervisor
// (process_group.h) before it starts the processes. Carries relayed runs
// (run_relay_codec.h) and nothing else.
//
//   PeerRelay relay(loop0, {fd_to_1, fd_to_2}, [&](RelayedRun&& r) { … });
//   relay.Start();
//   relay.Broadcast(EncodeRunFrame(id, plan));  // from any thread
//
// A sibling that goes away (its link reads EOF or fails) is left alone from
// then on: the supervisor stops the whole group when a process dies, and
// during an orderly stop the siblings close one after another. A sibling
// that sends a malformed frame is a bug; its link is closed with an error
// logged. Frames to a sibling whose unsent backlog is over kMaxBacklogBytes
// are dropped (and counted) instead of growing without bound.
//
// Thread-safety: Broadcast, Close and the counters from any thread; every
// link lives on the one io_context given (a single-threaded event loop),
// and on_run runs there.

#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "boost/asio/io_context.hpp"
#include "services/emulator/run_relay_codec.h"

namespace llmload::emulator {

class PeerRelay {
 public:
  using OnRun = std::function<void(RelayedRun&& run)>;
  static constexpr size_t kMaxBacklogBytes = 64u << 20;

  // Takes ownership of `fds` (connected stream sockets, one per sibling).
  PeerRelay(boost::asio::io_context& ioc, const std::vector<int>& fds, OnRun on_run);
  ~PeerRelay();
  PeerRelay(const PeerRelay&) = delete;
  PeerRelay& operator=(const PeerRelay&) = delete;

  // Starts reading every link.
  void Start();
  // Sends one encoded frame to every sibling still linked.
  void Broadcast(std::string frame);
  // Closes every link (pending frames are dropped).
  void Close();

  size_t links() const { return links_.size(); }
  uint64_t frames_sent() const { return frames_sent_.load(std::memory_order_relaxed); }
  uint64_t frames_dropped() const { return frames_dropped_.load(std::memory_order_relaxed); }
  uint64_t frames_received() const { return frames_received_.load(std::memory_order_relaxed); }

 private:
  class Link;

  boost::asio::io_context& ioc_;
  OnRun on_run_;
  std::vector<std::shared_ptr<Link>> links_;
  std::atomic<uint64_t> frames_sent_{0};
  std::atomic<uint64_t> frames_dropped_{0};
  std::atomic<uint64_t> frames_received_{0};
};

}  // namespace llmload::emulator
