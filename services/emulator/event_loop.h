// File: event_loop.h
//
// Threading model of the emulator: one io_context per thread ("event
// loop"), and every accepted connection is pinned to one loop for its whole
// life (round-robin at accept). A run's token timer lives on the loop of
// the channel's subscriber, so the per-token path (timer -> encode -> write)
// never crosses threads, takes no lock shared with other sessions and needs
// no strand: each loop is single-threaded. Only session set-up (connect,
// subscribe, /api/run) touches the shared, mutex-guarded channel registry.
// This is the worker's model too (STYLE.md "Concurrency"), and it scales
// with cores without the contention of N threads on one io_context queue.
//
// Thread-safety: EventLoop::Track/ShutdownAll run on the loop's own thread;
// context() may be used from any thread to post work.

#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"

namespace llmload::emulator {

// Every accepted connection (HTTP or WebSocket), so shutdown can close it.
class ServerConnection {
 public:
  virtual ~ServerConnection() = default;
  // Called on the connection's loop: finish politely (WebSocket close 3001).
  virtual void Shutdown() = 0;
};

// Holds one slot of --max_connections; movable, releases on destruction.
class ConnectionGuard {
 public:
  ConnectionGuard() = default;
  explicit ConnectionGuard(std::atomic<int64_t>* counter) : counter_(counter) {
    counter_->fetch_add(1, std::memory_order_relaxed);
  }
  ConnectionGuard(ConnectionGuard&& other) noexcept : counter_(std::exchange(other.counter_, nullptr)) {}
  ConnectionGuard& operator=(ConnectionGuard&& other) noexcept {
    if (this != &other) {
      Release();
      counter_ = std::exchange(other.counter_, nullptr);
    }
    return *this;
  }
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;
  ~ConnectionGuard() { Release(); }

 private:
  void Release() {
    if (counter_ != nullptr) {
      counter_->fetch_sub(1, std::memory_order_relaxed);
      counter_ = nullptr;
    }
  }
  std::atomic<int64_t>* counter_ = nullptr;
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();  // stops and joins
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  boost::asio::io_context& context() { return context_; }

  void Start();  // runs the context on a new thread
  // Lets run() return once idle, stops it, and joins the thread.
  void StopAndJoin();

  // Loop thread only.
  void Track(std::weak_ptr<ServerConnection> connection);
  void ShutdownAll();

 private:
  boost::asio::io_context context_{1};
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
  // Loop-confined; expired entries are pruned as the list grows.
  std::vector<std::weak_ptr<ServerConnection>> connections_;
  size_t prune_at_ = 1024;
};

}  // namespace llmload::emulator
