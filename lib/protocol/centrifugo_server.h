// File: centrifugo_server.h
//
// Server side of the Centrifugo client protocol v2 over WebSocket + JSON
// (shared/protocols/centrifugo.md): decode the commands a client frame holds
// and encode the replies, errors and pushes a server sends back.
//
// A client frame carries one or more JSON objects separated by '\n'; blank
// lines are skipped. Each object is one command: {"<method>":{…},"id":N}.
// An object without id and without a method ({}) is a pong.
//
//   absl::StatusOr<std::vector<ClientCommand>> cmds = ParseClientFrame(text);
//   if (!cmds.ok()) { /* close 3501 bad request */ }
//   for (const ClientCommand& c : *cmds) { … EncodeErrorReply(c.id, ServerErrorCode::kAlreadySubscribed) … }
//
// The push encoders append to a caller-owned string so the per-token path
// allocates at most once per frame.
//
// Pure: no I/O, no clock, no globals. Thread-safe (no shared state).

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace llmload::protocol::centrifugo {

// ---------------------------------------------------------------------------
// Client -> server

enum class ClientMethod {
  kPong,  // {} (no id, no method)
  kConnect,
  kSubscribe,
  kUnsubscribe,
  kPublish,
  kPresence,
  kPresenceStats,
  kHistory,
  kRpc,
  kRefresh,
  kSubRefresh,
  kSend,     // the only method sent without id; never answered
  kUnknown,  // has an id but no method this server knows
};

std::string_view ClientMethodName(ClientMethod method);

// Where a client asks to resume a channel's stream: connect's
// subs{channel:{recover,offset,epoch}} or subscribe's recover/offset/epoch.
struct SubRecovery {
  std::string channel;
  bool recover = false;
  uint64_t offset = 0;
  std::string epoch;
};

struct ClientCommand {
  uint32_t id = 0;  // 0 = no id
  ClientMethod method = ClientMethod::kPong;
  // connect, refresh, subscribe, sub_refresh: the JWT (may be empty).
  std::string token;
  // subscribe, unsubscribe, publish, presence, presence_stats, history,
  // sub_refresh.
  std::string channel;
  // connect: the client's name and version (centrifuge-js sends name "js").
  std::string name;
  std::string version;
  // subscribe: the flag bit set (1 = channel compaction).
  uint32_t flag = 0;
  // connect: the subs map (server-side subscriptions to recover), in the
  // frame's order. subscribe: recover, offset and epoch (channel unset).
  std::vector<SubRecovery> subs;
  SubRecovery recovery;
};

// Decodes every command of a frame, in order. INVALID_ARGUMENT when a
// non-blank line is not a JSON object, id is not an integer in
// [0, 2^32), a command names more than one method, a method's params are
// not an object, or a known param has the wrong JSON type. Unknown keys are
// ignored (forward compatibility, as Centrifugo's decoder does).
// connect's subs must be an object of objects, and there and in subscribe
// recover a bool, offset an unsigned integer, epoch a string.
absl::StatusOr<std::vector<ClientCommand>> ParseClientFrame(std::string_view frame);

// ---------------------------------------------------------------------------
// Server -> client

// Reply error codes (centrifugo.md §6).
enum class ServerErrorCode : uint32_t {
  kInternal = 100,
  kUnauthorized = 101,
  kUnknownChannel = 102,
  kPermissionDenied = 103,
  kMethodNotFound = 104,
  kAlreadySubscribed = 105,
  kLimitExceeded = 106,
  kBadRequest = 107,
  kNotAvailable = 108,
  kTokenExpired = 109,
  kExpired = 110,
  kTooManyRequests = 111,
  kUnrecoverablePosition = 112,
};
// "already subscribed", "token expired", … (Centrifugo's own texts).
std::string_view ServerErrorMessage(ServerErrorCode code);

// Disconnect codes, delivered as WebSocket close frames (centrifugo.md §7).
enum class ServerDisconnectCode : uint16_t {
  kShutdown = 3001,
  kInternal = 3004,
  kExpired = 3005,
  kSlow = 3008,
  kWriteError = 3009,
  kNoPong = 3012,
  kInvalidToken = 3500,
  kBadRequest = 3501,
  kStale = 3502,
  kConnectionLimit = 3504,
};
// "shutdown", "no pong", "invalid token", "bad request", … (< 123 bytes).
std::string_view ServerDisconnectReason(ServerDisconnectCode code);

// A server ping is an empty object.
inline constexpr std::string_view kServerPing = "{}";

// One server-side subscription in a connect reply's subs map.
struct ServerSubscription {
  std::string channel;
  bool recoverable = true;
  bool positioned = true;
  std::string epoch;
  uint64_t offset = 0;  // omitted when 0
  // The client asked to recover (was_recovering), whether every missed
  // publication is in `publications` (recovered), and those publications as
  // encoded pub objects ({"data":…,"offset":N}, see AppendTokenPub), in
  // offset order.
  bool was_recovering = false;
  bool recovered = false;
  std::vector<std::string> publications;
};

struct ServerConnectResult {
  std::string client;   // connection id
  std::string version;  // server version
  // Present when the token had exp: seconds until it expires.
  std::optional<int64_t> ttl_seconds;
  std::vector<ServerSubscription> subs;
  uint32_t ping_seconds = 0;  // 0 = the server does not ping
  bool pong = false;          // the client must answer pings
};

// {"id":N,"connect":{"client":…,"version":…,"expires":true,"ttl":…,
//  "subs":{…},"ping":…,"pong":true}} (zero/empty fields omitted).
std::string EncodeConnectReply(uint32_t id, const ServerConnectResult& result);

// {"id":N,"refresh":{"client":…,"version":…,"expires":true,"ttl":…}}: the
// reply to a connection token refresh (ttl omitted when the new token has
// no exp).
std::string EncodeRefreshReply(uint32_t id, std::string_view client, std::string_view version,
                               std::optional<int64_t> ttl_seconds);

// {"id":N,"subscribe":{"recoverable":true,"epoch":…,"positioned":true}}.
std::string EncodeSubscribeReply(uint32_t id, const ServerSubscription& sub);

// {"id":N,"<method>":{}} — the empty result of e.g. unsubscribe.
std::string EncodeEmptyReply(uint32_t id, std::string_view method);

// {"id":N,"error":{"code":C,"message":"…"}} with Centrifugo's message.
std::string EncodeErrorReply(uint32_t id, ServerErrorCode code);
// Same with an explicit message and the temporary flag.
std::string EncodeErrorReply(uint32_t id, uint32_t code, std::string_view message,
                             bool temporary);

// Appends {"push":{"channel":"<channel>","pub":{"data":<data_json>,"offset":N}}}.
// data_json must be valid JSON; it is copied verbatim.
void AppendPublicationPush(std::string* out, std::string_view channel, std::string_view data_json,
                           uint64_t offset);
// The llm-emulator's token publication: data {"token":"<token>"}.
void AppendTokenPush(std::string* out, std::string_view channel, std::string_view token,
                     uint64_t offset);
// The llm-emulator's end of response: data {"done":true}.
void AppendDonePush(std::string* out, std::string_view channel, uint64_t offset);

// The pub objects alone, as history keeps them and a recovering reply's
// "publications" lists them: {"data":{"token":"<token>"},"offset":N} and
// {"data":{"done":true},"offset":N}.
void AppendTokenPub(std::string* out, std::string_view token, uint64_t offset);
void AppendDonePub(std::string* out, uint64_t offset);
// {"push":{"channel":"<channel>","pub":<pub>}} around an encoded pub object.
void AppendPushOfPub(std::string* out, std::string_view channel, std::string_view pub);

// Appends s as a JSON string literal (quotes included), escaping '"', '\\'
// and control characters; other bytes are copied as they are.
void AppendJsonQuoted(std::string* out, std::string_view s);

}  // namespace llmload::protocol::centrifugo
