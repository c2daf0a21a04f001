#include "services/emulator/event_loop.h"

#include <algorithm>

namespace llmload::emulator {

EventLoop::EventLoop() : work_(boost::asio::make_work_guard(context_)) {}

EventLoop::~EventLoop() { StopAndJoin(); }

void EventLoop::Start() {
  thread_ = std::thread([this] { context_.run(); });
}

void EventLoop::StopAndJoin() {
  work_.reset();
  context_.stop();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void EventLoop::Track(std::weak_ptr<ServerConnection> connection) {
  if (connections_.size() >= prune_at_) {
    connections_.erase(std::remove_if(connections_.begin(), connections_.end(),
                                      [](const auto& w) { return w.expired(); }),
                       connections_.end());
    prune_at_ = std::max<size_t>(1024, connections_.size() * 2);
  }
  connections_.push_back(std::move(connection));
}

void EventLoop::ShutdownAll() {
  std::vector<std::weak_ptr<ServerConnection>> all;
  all.swap(connections_);
  for (const auto& weak : all) {
    if (auto conn = weak.lock()) {
      conn->Shutdown();
    }
  }
}

}  // namespace llmload::emulator
