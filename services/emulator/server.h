// File: server.h
//
// The emulator process minus flags: N event loops, one listening socket on
// loop 0 that deals accepted connections round-robin to the loops, the
// router with every protocol handler registered, and orderly shutdown.
//
//   absl::StatusOr<std::unique_ptr<EmulatorServer>> s = EmulatorServer::Create(config);
//   if (!s.ok()) { … }
//   (*s)->Start();
//   …  // wait for SIGTERM
//   (*s)->Shutdown(absl::Seconds(2));
//
// Protocols on the port today: the llm-emulator REST API
// (llm_emulator_api.h) and Centrifugo WebSocket (centrifugo_endpoint.h).
//
// Thread-safety: Create/Start/Shutdown from one controlling thread (not a
// loop thread).

#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/steady_timer.hpp"
#include "services/emulator/centrifugo_endpoint.h"
#include "services/emulator/channel_hub.h"
#include "services/emulator/config.h"
#include "services/emulator/event_loop.h"
#include "services/emulator/http_session.h"
#include "services/emulator/llm_emulator_api.h"
#include "services/emulator/router.h"

namespace llmload::emulator {

class EmulatorServer {
 public:
  // Validates the config and binds the listening socket (so port 0 is
  // resolved here). INVALID_ARGUMENT for a bad config or host,
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<EmulatorServer>> Create(const EmulatorConfig& config);
  ~EmulatorServer();
  EmulatorServer(const EmulatorServer&) = delete;
  EmulatorServer& operator=(const EmulatorServer&) = delete;

  uint16_t port() const { return port_; }
  int64_t open_connections() const { return open_connections_.load(std::memory_order_relaxed); }

  // Starts the loops and accepting.
  void Start();
  // Stops accepting, closes every connection (WebSocket close 3001
  // "shutdown"), waits up to `grace` for them to go, then stops the loops.
  // Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  // /api/run publishes into channel session:<id>.
  class SessionRunPublisher final : public RunPublisher {
   public:
    explicit SessionRunPublisher(ChannelHub* hub) : hub_(hub) {}
    bool StartRun(std::string_view session_id, std::vector<std::string> tokens,
                  std::chrono::nanoseconds token_delay) override;

   private:
    ChannelHub* hub_;
  };

  explicit EmulatorServer(const EmulatorConfig& config);
  absl::Status Listen();
  void DoAccept();
  void OnAccept(EventLoop* loop, boost::system::error_code ec, boost::asio::ip::tcp::socket socket);
  void WarnRateLimited(const char* message, const std::string& detail);

  const EmulatorConfig config_;
  std::atomic<int64_t> open_connections_{0};
  std::atomic<int64_t> last_warning_unix_{0};
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};

  ChannelHub hub_;
  SessionRunPublisher publisher_;
  LlmEmulatorApi api_;
  CentrifugoEndpoint centrifugo_;
  Router router_;
  HttpSessionOptions http_options_;

  // Declared after everything sessions use, so loops (and the handlers they
  // still hold) are destroyed first.
  std::vector<std::unique_ptr<EventLoop>> loops_;
  size_t next_loop_ = 0;  // loop 0 only
  std::optional<boost::asio::ip::tcp::acceptor> acceptor_;
  std::optional<boost::asio::steady_timer> accept_retry_;
  uint16_t port_ = 0;
};

}  // namespace llmload::emulator
