#include "services/worker/event_loops.h"

#include <chrono>

namespace llmload::worker {
namespace {
constexpr auto kLagTick = std::chrono::milliseconds(100);
}  // namespace

EventLoops::EventLoops(int threads) {
  threads = std::max(1, threads);
  for (int i = 0; i < threads; ++i) {
    auto loop = std::make_unique<Loop>();
    loop->guard.emplace(loop->ioc.get_executor());
    loop->lag_timer = std::make_unique<net::steady_timer>(loop->ioc);
    ArmLagTimer(*loop);
    loops_.push_back(std::move(loop));
  }
  for (auto& loop : loops_) {
    Loop* l = loop.get();
    l->thread = std::thread([l] { l->ioc.run(); });
  }
}

EventLoops::~EventLoops() { Stop(); }

void EventLoops::ArmLagTimer(Loop& loop) {
  const auto expected = std::chrono::steady_clock::now() + kLagTick;
  loop.lag_timer->expires_at(expected);
  loop.lag_timer->async_wait([this, &loop, expected](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    const auto lag = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::steady_clock::now() - expected)
                         .count();
    int64_t prev = loop.max_lag_us.load(std::memory_order_relaxed);
    while (lag > prev && !loop.max_lag_us.compare_exchange_weak(prev, lag)) {
    }
    ArmLagTimer(loop);
  });
}

double EventLoops::TakeMaxLagMs() {
  int64_t max_us = 0;
  for (auto& loop : loops_) {
    max_us = std::max(max_us, loop->max_lag_us.exchange(0));
  }
  return static_cast<double>(max_us) / 1000.0;
}

void EventLoops::Stop() {
  for (auto& loop : loops_) {
    loop->guard.reset();
    loop->ioc.stop();  // sessions were cancelled by their runners already
  }
  for (auto& loop : loops_) {
    if (loop->thread.joinable()) {
      loop->thread.join();
    }
  }
}

}  // namespace llmload::worker
