// File: centrifugo_handler.h
//
// The Centrifugo protocol state of one WebSocket connection, without I/O:
// client frames, timer expiries and the clock go in; reply frames and
// disconnect decisions come out. The socket side (centrifugo_endpoint.h)
// only moves bytes and runs timers.
//
// Rules (shared/protocols/centrifugo.md §4–§7):
// - The first command must be connect with an id; anything else, or a frame
//   that is not JSON commands, closes with 3501 "bad request".
// - connect verifies the HS256 token: a bad one closes with 3500 "invalid
//   token"; an expired one is answered with error 109 and the rest of that
//   frame is ignored (the client decides what to do). A good one subscribes
//   the token's channels server-side and replies with client id, version,
//   expires/ttl, subs, ping and pong:true. A channel the connect's subs
//   names with recover is recovered (recovered, was_recovering,
//   publications in its subs entry); subs naming channels the token does
//   not grant are ignored. subscribe with recover recovers the same way.
// - subscribe to a channel already subscribed: error 105 "already
//   subscribed" (the centrifuge-js flow). Other channels of the "session:"
//   namespace are subscribed on request; other namespaces get 102, channels
//   without a namespace 103 (Centrifugo's default permissions).
// - Token expiry: a token with exp makes the connection expire then; the
//   socket arms a timer at expires_at_unix and OnExpiryDeadline closes with
//   3005 "connection expired" unless a refresh command ({"refresh":
//   {"token":…}}) moved the expiry: a good new token is answered with
//   client, version, expires and ttl; an expired one with error 109; a bad
//   one closes with 3500.
// - unsubscribe replies {}; publish gets 103; presence, presence_stats,
//   history and sub_refresh 108 "not available"; rpc and unknown
//   methods 104; send is ignored. A command other than send without id: 3501.
// - Pings: OnPingDue emits {} and expects a pong ({} without id) before
//   OnPongDeadline, else 3012 "no pong". A pong with no ping outstanding is
//   3501 (Centrifugo's rule).
// - OnStaleDeadline before a successful connect closes with 3502 "stale".
//
// Thread-compatible: confine to the connection's loop.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/protocol/centrifugo_server.h"

namespace llmload::emulator {

// The connection's link to the channel registry.
class CentrifugoChannels {
 public:
  virtual ~CentrifugoChannels() = default;
  // Returns the subscription (epoch, offset, flags) for the reply; with
  // recovery.recover, also what the client missed (channel_hub.h).
  virtual protocol::centrifugo::ServerSubscription Subscribe(
      const std::string& channel, const protocol::centrifugo::SubRecovery& recovery) = 0;
  virtual void Unsubscribe(const std::string& channel) = 0;
};

struct CentrifugoHandlerOptions {
  std::string jwt_secret;
  std::string version;        // "version" in the connect reply
  uint32_t ping_seconds = 25;  // "ping" in the connect reply
};

struct CentrifugoOutput {
  // Replies to send, '\n'-joined into one frame; empty = nothing.
  std::string frame;
  // Close the socket with this code after sending `frame`.
  std::optional<protocol::centrifugo::ServerDisconnectCode> disconnect;
  // This input completed the connect: start pinging, stop the stale timer.
  bool connected = false;
  // (Re)arm the expiry timer for this unix time (connect or refresh with a
  // token that has exp).
  std::optional<int64_t> expires_at_unix;
};

class CentrifugoHandler {
 public:
  // options and channels must outlive the handler.
  CentrifugoHandler(const CentrifugoHandlerOptions* options, CentrifugoChannels* channels,
                    std::string client_id);

  CentrifugoOutput OnMessage(std::string_view frame, int64_t now_unix_seconds);
  CentrifugoOutput OnPingDue();
  CentrifugoOutput OnPongDeadline();
  CentrifugoOutput OnStaleDeadline();
  CentrifugoOutput OnExpiryDeadline(int64_t now_unix_seconds);
  // The socket is going away: unsubscribe everything, ignore further input.
  // Idempotent.
  void OnClosed();

  bool connected() const { return connected_; }
  bool awaiting_pong() const { return awaiting_pong_; }
  const std::vector<std::string>& subscriptions() const { return subscribed_; }
  const std::string& client_id() const { return client_id_; }

 private:
  // False when the rest of the frame must not be processed.
  bool HandleConnect(const protocol::centrifugo::ClientCommand& cmd, int64_t now,
                     CentrifugoOutput* out);
  bool HandleCommand(const protocol::centrifugo::ClientCommand& cmd, int64_t now,
                     CentrifugoOutput* out);
  bool HandleRefresh(const protocol::centrifugo::ClientCommand& cmd, int64_t now,
                     CentrifugoOutput* out);
  void Reply(CentrifugoOutput* out, std::string_view reply);
  void Disconnect(CentrifugoOutput* out, protocol::centrifugo::ServerDisconnectCode code);
  bool IsSubscribed(const std::string& channel) const;

  const CentrifugoHandlerOptions* options_;
  CentrifugoChannels* channels_;
  std::string client_id_;
  bool connected_ = false;
  bool closed_ = false;
  bool awaiting_pong_ = false;
  std::optional<int64_t> expires_at_;
  std::vector<std::string> subscribed_;
};

}  // namespace llmload::emulator
