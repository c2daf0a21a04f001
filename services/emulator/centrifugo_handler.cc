#include "services/emulator/centrifugo_handler.h"

#include <algorithm>
#include <utility>

#include "lib/protocol/jwt.h"

namespace llmload::emulator {
namespace {

namespace centrifugo = protocol::centrifugo;
using centrifugo::ClientMethod;
using centrifugo::ServerDisconnectCode;
using centrifugo::ServerErrorCode;

constexpr std::string_view kSessionNamespace = "session:";

}  // namespace

CentrifugoHandler::CentrifugoHandler(const CentrifugoHandlerOptions* options,
                                     CentrifugoChannels* channels, std::string client_id)
    : options_(options), channels_(channels), client_id_(std::move(client_id)) {}

void CentrifugoHandler::Reply(CentrifugoOutput* out, std::string_view reply) {
  if (!out->frame.empty()) {
    out->frame.push_back('\n');
  }
  out->frame.append(reply);
}

void CentrifugoHandler::Disconnect(CentrifugoOutput* out, ServerDisconnectCode code) {
  out->disconnect = code;
  OnClosed();
}

bool CentrifugoHandler::IsSubscribed(const std::string& channel) const {
  return std::find(subscribed_.begin(), subscribed_.end(), channel) != subscribed_.end();
}

CentrifugoOutput CentrifugoHandler::OnMessage(std::string_view frame, int64_t now_unix_seconds) {
  CentrifugoOutput out;
  if (closed_) {
    return out;
  }
  absl::StatusOr<std::vector<centrifugo::ClientCommand>> commands =
      centrifugo::ParseClientFrame(frame);
  if (!commands.ok()) {
    Disconnect(&out, ServerDisconnectCode::kBadRequest);
    return out;
  }
  for (const centrifugo::ClientCommand& cmd : *commands) {
    const bool go_on = connected_ ? HandleCommand(cmd, now_unix_seconds, &out)
                                  : HandleConnect(cmd, now_unix_seconds, &out);
    if (!go_on) {
      break;
    }
  }
  return out;
}

bool CentrifugoHandler::HandleConnect(const centrifugo::ClientCommand& cmd, int64_t now,
                                      CentrifugoOutput* out) {
  if (cmd.method != ClientMethod::kConnect || cmd.id == 0) {
    Disconnect(out, ServerDisconnectCode::kBadRequest);
    return false;
  }
  absl::StatusOr<protocol::jwt::Claims> claims =
      protocol::jwt::VerifyHs256(cmd.token, options_->jwt_secret);
  if (!claims.ok()) {
    Disconnect(out, ServerDisconnectCode::kInvalidToken);
    return false;
  }
  if (protocol::jwt::IsExpired(*claims, now)) {
    Reply(out, centrifugo::EncodeErrorReply(cmd.id, ServerErrorCode::kTokenExpired));
    return false;
  }
  connected_ = true;
  out->connected = true;
  centrifugo::ServerConnectResult result;
  result.client = client_id_;
  result.version = options_->version;
  if (claims->exp.has_value()) {
    result.ttl_seconds = *claims->exp - now;
    expires_at_ = *claims->exp;
    out->expires_at_unix = *claims->exp;
  }
  for (const std::string& channel : claims->channels) {
    if (channel.empty() || IsSubscribed(channel)) {
      continue;
    }
    static const centrifugo::SubRecovery kNoRecovery;
    const centrifugo::SubRecovery* recovery = &kNoRecovery;
    for (const centrifugo::SubRecovery& r : cmd.subs) {
      if (r.channel == channel) {
        recovery = &r;
      }
    }
    centrifugo::ServerSubscription sub = channels_->Subscribe(channel, *recovery);
    sub.channel = channel;
    result.subs.push_back(std::move(sub));
    subscribed_.push_back(channel);
  }
  result.ping_seconds = options_->ping_seconds;
  result.pong = true;
  Reply(out, centrifugo::EncodeConnectReply(cmd.id, result));
  return true;
}

bool CentrifugoHandler::HandleRefresh(const centrifugo::ClientCommand& cmd, int64_t now,
                                      CentrifugoOutput* out) {
  absl::StatusOr<protocol::jwt::Claims> claims =
      protocol::jwt::VerifyHs256(cmd.token, options_->jwt_secret);
  if (!claims.ok()) {
    Disconnect(out, ServerDisconnectCode::kInvalidToken);
    return false;
  }
  if (protocol::jwt::IsExpired(*claims, now)) {
    Reply(out, centrifugo::EncodeErrorReply(cmd.id, ServerErrorCode::kTokenExpired));
    return true;
  }
  std::optional<int64_t> ttl;
  expires_at_ = claims->exp;
  if (claims->exp.has_value()) {
    ttl = *claims->exp - now;
    out->expires_at_unix = *claims->exp;
  }
  Reply(out, centrifugo::EncodeRefreshReply(cmd.id, client_id_, options_->version, ttl));
  return true;
}

bool CentrifugoHandler::HandleCommand(const centrifugo::ClientCommand& cmd, int64_t now,
                                      CentrifugoOutput* out) {
  if (cmd.method == ClientMethod::kPong) {
    if (!awaiting_pong_) {
      Disconnect(out, ServerDisconnectCode::kBadRequest);
      return false;
    }
    awaiting_pong_ = false;
    return true;
  }
  if (cmd.method == ClientMethod::kSend) {
    return true;
  }
  if (cmd.id == 0 || cmd.method == ClientMethod::kConnect) {
    // A command that needs a reply without id, or a second connect.
    Disconnect(out, ServerDisconnectCode::kBadRequest);
    return false;
  }
  switch (cmd.method) {
    case ClientMethod::kSubscribe: {
      if (cmd.channel.empty()) {
        Disconnect(out, ServerDisconnectCode::kBadRequest);
        return false;
      }
      if (IsSubscribed(cmd.channel)) {
        Reply(out, centrifugo::EncodeErrorReply(cmd.id, ServerErrorCode::kAlreadySubscribed));
        return true;
      }
      if (cmd.channel.rfind(kSessionNamespace, 0) != 0) {
        Reply(out, centrifugo::EncodeErrorReply(
                       cmd.id, cmd.channel.find(':') != std::string::npos
                                   ? ServerErrorCode::kUnknownChannel
                                   : ServerErrorCode::kPermissionDenied));
        return true;
      }
      centrifugo::ServerSubscription sub = channels_->Subscribe(cmd.channel, cmd.recovery);
      subscribed_.push_back(cmd.channel);
      Reply(out, centrifugo::EncodeSubscribeReply(cmd.id, sub));
      return true;
    }
    case ClientMethod::kUnsubscribe: {
      auto it = std::find(subscribed_.begin(), subscribed_.end(), cmd.channel);
      if (it != subscribed_.end()) {
        channels_->Unsubscribe(*it);
        subscribed_.erase(it);
      }
      Reply(out, centrifugo::EncodeEmptyReply(cmd.id, "unsubscribe"));
      return true;
    }
    case ClientMethod::kPublish:
      Reply(out, centrifugo::EncodeErrorReply(cmd.id, ServerErrorCode::kPermissionDenied));
      return true;
    case ClientMethod::kRefresh:
      return HandleRefresh(cmd, now, out);
    case ClientMethod::kPresence:
    case ClientMethod::kPresenceStats:
    case ClientMethod::kHistory:
    case ClientMethod::kSubRefresh:
      Reply(out, centrifugo::EncodeErrorReply(cmd.id, ServerErrorCode::kNotAvailable));
      return true;
    case ClientMethod::kRpc:
    case ClientMethod::kUnknown:
    case ClientMethod::kPong:
    case ClientMethod::kSend:
    case ClientMethod::kConnect:
      break;
  }
  Reply(out, centrifugo::EncodeErrorReply(cmd.id, ServerErrorCode::kMethodNotFound));
  return true;
}

CentrifugoOutput CentrifugoHandler::OnPingDue() {
  CentrifugoOutput out;
  if (closed_ || !connected_) {
    return out;
  }
  if (awaiting_pong_) {
    Disconnect(&out, ServerDisconnectCode::kNoPong);
    return out;
  }
  awaiting_pong_ = true;
  out.frame = std::string(centrifugo::kServerPing);
  return out;
}

CentrifugoOutput CentrifugoHandler::OnPongDeadline() {
  CentrifugoOutput out;
  if (!closed_ && awaiting_pong_) {
    Disconnect(&out, ServerDisconnectCode::kNoPong);
  }
  return out;
}

CentrifugoOutput CentrifugoHandler::OnStaleDeadline() {
  CentrifugoOutput out;
  if (!closed_ && !connected_) {
    Disconnect(&out, ServerDisconnectCode::kStale);
  }
  return out;
}

CentrifugoOutput CentrifugoHandler::OnExpiryDeadline(int64_t now_unix_seconds) {
  CentrifugoOutput out;
  if (!closed_ && connected_ && expires_at_.has_value() && now_unix_seconds >= *expires_at_) {
    Disconnect(&out, ServerDisconnectCode::kExpired);
  }
  return out;
}

void CentrifugoHandler::OnClosed() {
  if (closed_) {
    return;
  }
  closed_ = true;
  for (const std::string& channel : subscribed_) {
    channels_->Unsubscribe(channel);
  }
  subscribed_.clear();
}

}  // namespace llmload::emulator
