// File: event_loops.h
//
// The worker's data path: one io_context per thread. A session is pinned to
// one loop for its whole life, so everything it touches on the per-token
// path (sockets, parser, metric set) is confined to that thread and needs no
// lock. Work crosses threads only by net::post.
//
// Each loop also measures its own lag: a 100 ms timer whose drift is the time
// the loop was too busy to run ready handlers.

#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace llmload::worker {

namespace net = boost::asio;

class EventLoops {
 public:
  explicit EventLoops(int threads);
  ~EventLoops();
  EventLoops(const EventLoops&) = delete;
  EventLoops& operator=(const EventLoops&) = delete;

  int size() const { return static_cast<int>(loops_.size()); }
  net::io_context& loop(int i) { return loops_[static_cast<size_t>(i)]->ioc; }
  // Largest timer drift seen on any loop since the last call (ms).
  double TakeMaxLagMs();
  void Stop();

 private:
  struct Loop {
    net::io_context ioc{1};
    std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
    std::unique_ptr<net::steady_timer> lag_timer;
    std::atomic<int64_t> max_lag_us{0};
    std::thread thread;
  };
  void ArmLagTimer(Loop& loop);

  std::vector<std::unique_ptr<Loop>> loops_;
};

}  // namespace llmload::worker
