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
// Protocols on the port (routed by path):
//   CENTRIFUGO_EMULATOR  REST /health, /api/sessions/create, /api/run,
//                        /api/sessions/{id} (llm_emulator_api.h) + WS
//                        /connection/websocket (centrifugo_endpoint.h)
//   REALM                WS / and /realm (realm_endpoint.h)
//   WS_CHAT              WS /api/ws and /ws (ws_chat_endpoint.h)
//   OPENAI_CHAT          POST /v1/chat/completions (openai_chat_handler.h)
//   OPENAI_RESPONSES     POST /v1/responses (openai_responses_handler.h)
//   ANTHROPIC_MESSAGES   POST /v1/messages (anthropic_messages_handler.h)
//   GEMINI               POST /v1beta/models/{model}:streamGenerateContent[?alt=sse],
//                        :generateContent (gemini_handler.h)
//   HTTP_JSON            POST /v1/generate, /v1/json, /api/generate (http_json_handler.h)
// With a TLS certificate and key, the same routes are served as https/wss
// on a second port (tls_port()).
//
// Every process also answers GET /stats: its pid, its place in the group,
// connections accepted and open, requests planned per protocol, streamed
// responses the client left before their end per protocol, and the runs
// relayed between processes, as JSON.
//
// One of a group (--processes, process_group.h): the listening sockets take
// SO_REUSEPORT so that every process of the group binds the same port and
// the kernel spreads connections over them; requests are numbered apart
// (behaviour.h); and a Centrifugo /api/run whose subscriber is not here is
// relayed to the siblings (peer_relay.h), one of which holds it.
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
#include "boost/asio/ssl/context.hpp"
#include "services/emulator/anthropic_messages_handler.h"
#include "services/emulator/behaviour.h"
#include "services/emulator/centrifugo_endpoint.h"
#include "services/emulator/channel_hub.h"
#include "services/emulator/config.h"
#include "services/emulator/event_loop.h"
#include "services/emulator/gemini_handler.h"
#include "services/emulator/http_json_handler.h"
#include "services/emulator/http_session.h"
#include "services/emulator/llm_emulator_api.h"
#include "services/emulator/openai_chat_handler.h"
#include "services/emulator/openai_responses_handler.h"
#include "services/emulator/peer_relay.h"
#include "services/emulator/provider_http.h"
#include "services/emulator/realm_endpoint.h"
#include "services/emulator/router.h"
#include "services/emulator/ws_chat_endpoint.h"

namespace llmload::emulator {

// This process's place in a group of emulator processes sharing a port.
struct GroupMember {
  int32_t index = 0;
  int32_t count = 1;
  // Connected Unix stream sockets to the siblings, in index order (this
  // process skipped); the server owns them from Create on.
  std::vector<int> peer_fds;
};

// The address the emulator listens on for `host` ("localhost" is
// 127.0.0.1). INVALID_ARGUMENT when it is no IP address.
absl::StatusOr<boost::asio::ip::address> ListenAddress(const std::string& host);

class EmulatorServer {
 public:
  // Validates the config and binds the listening socket (so port 0 is
  // resolved here). INVALID_ARGUMENT for a bad config or host,
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<EmulatorServer>> Create(const EmulatorConfig& config,
                                                                GroupMember member = {});
  // What Create checks before it binds (the config, the Realm key file, the
  // TLS certificate and key), for a supervisor to fail once, early.
  static absl::Status CheckStartup(const EmulatorConfig& config);
  ~EmulatorServer();
  EmulatorServer(const EmulatorServer&) = delete;
  EmulatorServer& operator=(const EmulatorServer&) = delete;

  uint16_t port() const { return listeners_[0].port; }
  // The https/wss port; 0 when TLS is off.
  uint16_t tls_port() const { return listeners_[1].port; }
  Behaviour& behaviour() { return behaviour_; }
  int64_t open_connections() const { return open_connections_.load(std::memory_order_relaxed); }
  // The GET /stats body.
  std::string StatsJson() const;

  // Starts the loops and accepting.
  void Start();
  // Stops accepting, closes every connection (WebSocket close 3001
  // "shutdown"), waits up to `grace` for them to go, then stops the loops.
  // Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  // /api/run publishes into channel session:<id>.
  // Relays the run to the siblings when no subscriber is here.
  class SessionRunPublisher final : public RunPublisher {
   public:
    explicit SessionRunPublisher(EmulatorServer* server) : server_(server) {}
    bool StartRun(std::string_view session_id, ResponsePlan plan) override;
    void EndSession(std::string_view session_id) override;

   private:
    EmulatorServer* server_;
  };

  struct Listener {
    std::optional<boost::asio::ip::tcp::acceptor> acceptor;
    std::optional<boost::asio::steady_timer> retry;
    bool tls = false;
    size_t next_loop = 0;  // loop 0 only
    uint16_t port = 0;
  };

  EmulatorServer(const EmulatorConfig& config, RealmOptions realm_options, GroupMember member);
  absl::Status Listen(Listener* listener, uint16_t port);
  void DoAccept(Listener* listener);
  void OnAccept(Listener* listener, EventLoop* loop, boost::system::error_code ec,
                boost::asio::ip::tcp::socket socket);
  void WarnRateLimited(const char* message, const std::string& detail);
  // A run relayed by a sibling: streamed when its subscriber is here.
  void OnRelayedRun(RelayedRun&& run);

  const EmulatorConfig config_;
  const GroupMember member_;
  std::atomic<int64_t> open_connections_{0};
  std::atomic<uint64_t> accepted_connections_{0};
  std::atomic<uint64_t> runs_relayed_out_{0};    // sent to the siblings
  std::atomic<uint64_t> runs_relayed_in_{0};     // received from a sibling
  std::atomic<uint64_t> runs_relayed_started_{0};  // of those, streamed here
  std::atomic<int64_t> last_warning_unix_{0};
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};

  Behaviour behaviour_;
  ProviderContext provider_;
  ChannelHub hub_;
  SessionRunPublisher publisher_;
  LlmEmulatorApi api_;
  CentrifugoEndpoint centrifugo_;
  RealmEndpoint realm_;
  WsChatEndpoint ws_chat_;
  OpenAiChatHandler openai_;
  OpenAiResponsesHandler openai_responses_;
  AnthropicMessagesHandler anthropic_;
  GeminiHandler gemini_;
  HttpJsonHandler http_json_;
  Router router_;
  HttpSessionOptions http_options_;
  std::unique_ptr<boost::asio::ssl::context> tls_context_;

  // Declared after everything sessions use, so loops (and the handlers they
  // still hold) are destroyed first.
  std::vector<std::unique_ptr<EventLoop>> loops_;
  Listener listeners_[2];  // plain, TLS
  // On loop 0; only in a group.
  std::unique_ptr<PeerRelay> relay_;
};

}  // namespace llmload::emulator
