#include "lib/protocol/centrifugo_server.h"

#include <array>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"

namespace llmload::protocol::centrifugo {
namespace {

namespace json = boost::json;

// Debian's Abseil does not alias absl::string_view to std::string_view.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

struct MethodKey {
  std::string_view key;
  ClientMethod method;
};
constexpr std::array<MethodKey, 11> kMethodKeys = {{
    {"connect", ClientMethod::kConnect},
    {"subscribe", ClientMethod::kSubscribe},
    {"unsubscribe", ClientMethod::kUnsubscribe},
    {"publish", ClientMethod::kPublish},
    {"presence", ClientMethod::kPresence},
    {"presence_stats", ClientMethod::kPresenceStats},
    {"history", ClientMethod::kHistory},
    {"rpc", ClientMethod::kRpc},
    {"refresh", ClientMethod::kRefresh},
    {"sub_refresh", ClientMethod::kSubRefresh},
    {"send", ClientMethod::kSend},
}};

bool IsBlank(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
      return false;
    }
  }
  return true;
}

// Copies params[key] into *out when present; null counts as absent (as in
// Go's decoder, which Centrifugo uses).
absl::Status GetString(const json::object& params, std::string_view key, std::string* out) {
  const json::value* v = params.if_contains(json::string_view(key.data(), key.size()));
  if (v == nullptr || v->is_null()) {
    return absl::OkStatus();
  }
  if (!v->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("centrifugo: ", Av(key), " is not a string"));
  }
  *out = std::string(v->get_string());
  return absl::OkStatus();
}

absl::Status GetUint32(const json::object& params, std::string_view key, uint32_t* out) {
  const json::value* v = params.if_contains(json::string_view(key.data(), key.size()));
  if (v == nullptr || v->is_null()) {
    return absl::OkStatus();
  }
  if (v->is_int64() && v->get_int64() >= 0 && v->get_int64() <= 0xffffffffLL) {
    *out = static_cast<uint32_t>(v->get_int64());
    return absl::OkStatus();
  }
  if (v->is_uint64() && v->get_uint64() <= 0xffffffffULL) {
    *out = static_cast<uint32_t>(v->get_uint64());
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("centrifugo: ", Av(key), " is not an integer in [0, 2^32)"));
}

absl::Status GetBool(const json::object& params, std::string_view key, bool* out) {
  const json::value* v = params.if_contains(json::string_view(key.data(), key.size()));
  if (v == nullptr || v->is_null()) {
    return absl::OkStatus();
  }
  if (!v->is_bool()) {
    return absl::InvalidArgumentError(absl::StrCat("centrifugo: ", Av(key), " is not a bool"));
  }
  *out = v->get_bool();
  return absl::OkStatus();
}

absl::Status GetUint64(const json::object& params, std::string_view key, uint64_t* out) {
  const json::value* v = params.if_contains(json::string_view(key.data(), key.size()));
  if (v == nullptr || v->is_null()) {
    return absl::OkStatus();
  }
  if (v->is_int64() && v->get_int64() >= 0) {
    *out = static_cast<uint64_t>(v->get_int64());
    return absl::OkStatus();
  }
  if (v->is_uint64()) {
    *out = v->get_uint64();
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("centrifugo: ", Av(key), " is not an unsigned integer"));
}

// recover, offset, epoch of a connect sub or a subscribe command.
absl::Status DecodeRecovery(const json::object& params, SubRecovery* out) {
  if (absl::Status s = GetBool(params, "recover", &out->recover); !s.ok()) {
    return s;
  }
  if (absl::Status s = GetUint64(params, "offset", &out->offset); !s.ok()) {
    return s;
  }
  return GetString(params, "epoch", &out->epoch);
}

absl::Status DecodeSubs(const json::object& params, ClientCommand* cmd) {
  const json::value* v = params.if_contains("subs");
  if (v == nullptr || v->is_null()) {
    return absl::OkStatus();
  }
  if (!v->is_object()) {
    return absl::InvalidArgumentError("centrifugo: subs is not an object");
  }
  for (const auto& [channel, sub] : v->get_object()) {
    if (!sub.is_object()) {
      return absl::InvalidArgumentError("centrifugo: a subs entry is not an object");
    }
    SubRecovery r;
    r.channel = std::string(channel);
    if (absl::Status s = DecodeRecovery(sub.get_object(), &r); !s.ok()) {
      return s;
    }
    cmd->subs.push_back(std::move(r));
  }
  return absl::OkStatus();
}

absl::Status DecodeParams(const json::object& params, ClientCommand* cmd) {
  switch (cmd->method) {
    case ClientMethod::kConnect:
      if (absl::Status s = GetString(params, "token", &cmd->token); !s.ok()) {
        return s;
      }
      if (absl::Status s = GetString(params, "name", &cmd->name); !s.ok()) {
        return s;
      }
      if (absl::Status s = GetString(params, "version", &cmd->version); !s.ok()) {
        return s;
      }
      return DecodeSubs(params, cmd);
    case ClientMethod::kSubscribe:
      if (absl::Status s = GetString(params, "channel", &cmd->channel); !s.ok()) {
        return s;
      }
      if (absl::Status s = GetString(params, "token", &cmd->token); !s.ok()) {
        return s;
      }
      if (absl::Status s = DecodeRecovery(params, &cmd->recovery); !s.ok()) {
        return s;
      }
      return GetUint32(params, "flag", &cmd->flag);
    case ClientMethod::kUnsubscribe:
    case ClientMethod::kPublish:
    case ClientMethod::kPresence:
    case ClientMethod::kPresenceStats:
    case ClientMethod::kHistory:
      return GetString(params, "channel", &cmd->channel);
    case ClientMethod::kRefresh:
      return GetString(params, "token", &cmd->token);
    case ClientMethod::kSubRefresh:
      if (absl::Status s = GetString(params, "channel", &cmd->channel); !s.ok()) {
        return s;
      }
      return GetString(params, "token", &cmd->token);
    case ClientMethod::kRpc:
    case ClientMethod::kSend:
    case ClientMethod::kPong:
    case ClientMethod::kUnknown:
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::StatusOr<ClientCommand> DecodeCommand(std::string_view line) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(line.data(), line.size()), ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("centrifugo: command is not JSON: ", ec.message()));
  }
  if (!v.is_object()) {
    return absl::InvalidArgumentError("centrifugo: command is not a JSON object");
  }
  const json::object& obj = v.get_object();
  ClientCommand cmd;
  if (absl::Status s = GetUint32(obj, "id", &cmd.id); !s.ok()) {
    return s;
  }
  const json::object* params = nullptr;
  bool has_method = false;
  for (const MethodKey& mk : kMethodKeys) {
    const json::value* p = obj.if_contains(json::string_view(mk.key.data(), mk.key.size()));
    if (p == nullptr || p->is_null()) {
      continue;
    }
    if (has_method) {
      return absl::InvalidArgumentError("centrifugo: command names more than one method");
    }
    if (!p->is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("centrifugo: ", Av(mk.key), " params are not an object"));
    }
    has_method = true;
    cmd.method = mk.method;
    params = &p->get_object();
  }
  if (!has_method) {
    cmd.method = cmd.id == 0 ? ClientMethod::kPong : ClientMethod::kUnknown;
    return cmd;
  }
  if (absl::Status s = DecodeParams(*params, &cmd); !s.ok()) {
    return s;
  }
  return cmd;
}

void AppendReplyHead(std::string* out, uint32_t id, std::string_view key) {
  absl::StrAppend(out, "{\"id\":", id, ",\"", Av(key), "\":");
}

void AppendSubscriptionBody(std::string* out, const ServerSubscription& sub) {
  out->push_back('{');
  bool first = true;
  auto sep = [&] {
    if (!first) {
      out->push_back(',');
    }
    first = false;
  };
  if (sub.recoverable) {
    sep();
    out->append("\"recoverable\":true");
  }
  if (!sub.epoch.empty()) {
    sep();
    out->append("\"epoch\":");
    AppendJsonQuoted(out, sub.epoch);
  }
  if (sub.offset != 0) {
    sep();
    absl::StrAppend(out, "\"offset\":", sub.offset);
  }
  if (sub.positioned) {
    sep();
    out->append("\"positioned\":true");
  }
  if (sub.recovered) {
    sep();
    out->append("\"recovered\":true");
  }
  if (sub.was_recovering) {
    sep();
    out->append("\"was_recovering\":true");
  }
  if (!sub.publications.empty()) {
    sep();
    out->append("\"publications\":[");
    for (size_t i = 0; i < sub.publications.size(); ++i) {
      if (i > 0) {
        out->push_back(',');
      }
      out->append(sub.publications[i]);
    }
    out->push_back(']');
  }
  out->push_back('}');
}

void AppendPushHead(std::string* out, std::string_view channel) {
  out->append("{\"push\":{\"channel\":");
  AppendJsonQuoted(out, channel);
  out->append(",\"pub\":{\"data\":");
}

void AppendPushTail(std::string* out, uint64_t offset) {
  absl::StrAppend(out, ",\"offset\":", offset, "}}}");
}

}  // namespace

std::string_view ClientMethodName(ClientMethod method) {
  for (const MethodKey& mk : kMethodKeys) {
    if (mk.method == method) {
      return mk.key;
    }
  }
  return method == ClientMethod::kPong ? "pong" : "unknown";
}

absl::StatusOr<std::vector<ClientCommand>> ParseClientFrame(std::string_view frame) {
  std::vector<ClientCommand> commands;
  while (!frame.empty()) {
    const size_t nl = frame.find('\n');
    const std::string_view line = frame.substr(0, nl);
    frame = nl == std::string_view::npos ? std::string_view() : frame.substr(nl + 1);
    if (IsBlank(line)) {
      continue;
    }
    absl::StatusOr<ClientCommand> cmd = DecodeCommand(line);
    if (!cmd.ok()) {
      return cmd.status();
    }
    commands.push_back(*std::move(cmd));
  }
  return commands;
}

std::string_view ServerErrorMessage(ServerErrorCode code) {
  switch (code) {
    case ServerErrorCode::kInternal:
      return "internal server error";
    case ServerErrorCode::kUnauthorized:
      return "unauthorized";
    case ServerErrorCode::kUnknownChannel:
      return "unknown channel";
    case ServerErrorCode::kPermissionDenied:
      return "permission denied";
    case ServerErrorCode::kMethodNotFound:
      return "method not found";
    case ServerErrorCode::kAlreadySubscribed:
      return "already subscribed";
    case ServerErrorCode::kLimitExceeded:
      return "limit exceeded";
    case ServerErrorCode::kBadRequest:
      return "bad request";
    case ServerErrorCode::kNotAvailable:
      return "not available";
    case ServerErrorCode::kTokenExpired:
      return "token expired";
    case ServerErrorCode::kExpired:
      return "expired";
    case ServerErrorCode::kTooManyRequests:
      return "too many requests";
    case ServerErrorCode::kUnrecoverablePosition:
      return "unrecoverable position";
  }
  return "internal server error";
}

std::string_view ServerDisconnectReason(ServerDisconnectCode code) {
  switch (code) {
    case ServerDisconnectCode::kShutdown:
      return "shutdown";
    case ServerDisconnectCode::kInternal:
      return "internal server error";
    case ServerDisconnectCode::kExpired:
      return "connection expired";
    case ServerDisconnectCode::kSlow:
      return "slow";
    case ServerDisconnectCode::kWriteError:
      return "write error";
    case ServerDisconnectCode::kNoPong:
      return "no pong";
    case ServerDisconnectCode::kInvalidToken:
      return "invalid token";
    case ServerDisconnectCode::kBadRequest:
      return "bad request";
    case ServerDisconnectCode::kStale:
      return "stale";
    case ServerDisconnectCode::kConnectionLimit:
      return "connection limit";
  }
  return "connection closed";
}

std::string EncodeConnectReply(uint32_t id, const ServerConnectResult& result) {
  std::string out;
  out.reserve(192);
  AppendReplyHead(&out, id, "connect");
  out.push_back('{');
  bool first = true;
  auto sep = [&] {
    if (!first) {
      out.push_back(',');
    }
    first = false;
  };
  if (!result.client.empty()) {
    sep();
    out.append("\"client\":");
    AppendJsonQuoted(&out, result.client);
  }
  if (!result.version.empty()) {
    sep();
    out.append("\"version\":");
    AppendJsonQuoted(&out, result.version);
  }
  if (result.ttl_seconds.has_value()) {
    sep();
    absl::StrAppend(&out, "\"expires\":true,\"ttl\":", *result.ttl_seconds);
  }
  if (!result.subs.empty()) {
    sep();
    out.append("\"subs\":{");
    for (size_t i = 0; i < result.subs.size(); ++i) {
      if (i > 0) {
        out.push_back(',');
      }
      AppendJsonQuoted(&out, result.subs[i].channel);
      out.push_back(':');
      AppendSubscriptionBody(&out, result.subs[i]);
    }
    out.push_back('}');
  }
  if (result.ping_seconds != 0) {
    sep();
    absl::StrAppend(&out, "\"ping\":", result.ping_seconds);
  }
  if (result.pong) {
    sep();
    out.append("\"pong\":true");
  }
  out.append("}}");
  return out;
}

std::string EncodeRefreshReply(uint32_t id, std::string_view client, std::string_view version,
                               std::optional<int64_t> ttl_seconds) {
  std::string out;
  AppendReplyHead(&out, id, "refresh");
  out.append("{\"client\":");
  AppendJsonQuoted(&out, client);
  out.append(",\"version\":");
  AppendJsonQuoted(&out, version);
  if (ttl_seconds.has_value()) {
    absl::StrAppend(&out, ",\"expires\":true,\"ttl\":", *ttl_seconds);
  }
  out.append("}}");
  return out;
}

std::string EncodeSubscribeReply(uint32_t id, const ServerSubscription& sub) {
  std::string out;
  AppendReplyHead(&out, id, "subscribe");
  AppendSubscriptionBody(&out, sub);
  out.push_back('}');
  return out;
}

std::string EncodeEmptyReply(uint32_t id, std::string_view method) {
  std::string out;
  AppendReplyHead(&out, id, method);
  out.append("{}}");
  return out;
}

std::string EncodeErrorReply(uint32_t id, ServerErrorCode code) {
  return EncodeErrorReply(id, static_cast<uint32_t>(code), ServerErrorMessage(code), false);
}

std::string EncodeErrorReply(uint32_t id, uint32_t code, std::string_view message,
                             bool temporary) {
  std::string out;
  AppendReplyHead(&out, id, "error");
  absl::StrAppend(&out, "{\"code\":", code, ",\"message\":");
  AppendJsonQuoted(&out, message);
  if (temporary) {
    out.append(",\"temporary\":true");
  }
  out.append("}}");
  return out;
}

void AppendPublicationPush(std::string* out, std::string_view channel, std::string_view data_json,
                           uint64_t offset) {
  AppendPushHead(out, channel);
  out->append(data_json);
  AppendPushTail(out, offset);
}

void AppendTokenPush(std::string* out, std::string_view channel, std::string_view token,
                     uint64_t offset) {
  AppendPushHead(out, channel);
  out->append("{\"token\":");
  AppendJsonQuoted(out, token);
  out->push_back('}');
  AppendPushTail(out, offset);
}

void AppendDonePush(std::string* out, std::string_view channel, uint64_t offset) {
  AppendPublicationPush(out, channel, "{\"done\":true}", offset);
}

void AppendTokenPub(std::string* out, std::string_view token, uint64_t offset) {
  out->append("{\"data\":{\"token\":");
  AppendJsonQuoted(out, token);
  absl::StrAppend(out, "},\"offset\":", offset, "}");
}

void AppendDonePub(std::string* out, uint64_t offset) {
  absl::StrAppend(out, "{\"data\":{\"done\":true},\"offset\":", offset, "}");
}

void AppendPushOfPub(std::string* out, std::string_view channel, std::string_view pub) {
  out->append("{\"push\":{\"channel\":");
  AppendJsonQuoted(out, channel);
  out->append(",\"pub\":");
  out->append(pub);
  out->append("}}");
}

void AppendJsonQuoted(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out->append(buf);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

}  // namespace llmload::protocol::centrifugo
