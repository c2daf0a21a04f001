#include "lib/protocol/centrifugo_client.h"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include "absl/strings/str_cat.h"

namespace llmload::protocol::centrifugo {
namespace json = boost::json;
namespace {

// Appends s as a JSON string literal.
void AppendQuoted(std::string& out, std::string_view s) {
  out += json::serialize(json::string_view(s.data(), s.size()));
}

uint32_t ToU32(const json::value* v) {
  if (v == nullptr) {
    return 0;
  }
  if (v->is_uint64()) {
    return static_cast<uint32_t>(std::min<uint64_t>(v->get_uint64(), UINT32_MAX));
  }
  if (v->is_int64() && v->get_int64() > 0) {
    return static_cast<uint32_t>(std::min<int64_t>(v->get_int64(), UINT32_MAX));
  }
  return 0;
}

uint64_t ToU64(const json::value* v) {
  if (v == nullptr) {
    return 0;
  }
  if (v->is_uint64()) {
    return v->get_uint64();
  }
  if (v->is_int64() && v->get_int64() > 0) {
    return static_cast<uint64_t>(v->get_int64());
  }
  return 0;
}

std::string_view ToView(const json::value* v) {
  if (v == nullptr || !v->is_string()) {
    return {};
  }
  const json::string& s = v->get_string();
  return {s.data(), s.size()};
}

bool ToBool(const json::value* v) { return v != nullptr && v->is_bool() && v->get_bool(); }

// Reads pub {"data":{…},"offset":N} into a publication event.
void ReadPublication(const json::object& po, ServerEvent& e) {
  e.kind = ServerEvent::Kind::kPublication;
  e.offset = ToU64(po.if_contains("offset"));
  if (const json::value* data = po.if_contains("data"); data != nullptr && data->is_object()) {
    const json::object& d = data->get_object();
    if (const json::value* tok = d.if_contains("token");
        tok != nullptr && tok->is_string() && !tok->get_string().empty()) {
      e.has_token = true;
      e.token = ToView(tok);
    }
    if (const json::value* done = d.if_contains("done"); done != nullptr && done->is_bool()) {
      e.done = done->get_bool();
    }
  }
}

// A sub's "publications" array (recovered on connect), else null.
const json::array* RecoveredOf(const json::object& sub) {
  const json::value* pubs = sub.if_contains("publications");
  return pubs != nullptr && pubs->is_array() ? &pubs->get_array() : nullptr;
}

// Returns the recovered publications of a connect reply's sub (else null).
const json::array* Classify(const json::object& obj, ServerEvent& e) {
  if (const json::value* push = obj.if_contains("push"); push != nullptr && push->is_object()) {
    const json::object& p = push->get_object();
    e.channel = ToView(p.if_contains("channel"));
    if (const json::value* pub = p.if_contains("pub"); pub != nullptr && pub->is_object()) {
      ReadPublication(pub->get_object(), e);
      return nullptr;
    }
    if (const json::value* d = p.if_contains("disconnect"); d != nullptr && d->is_object()) {
      e.kind = ServerEvent::Kind::kDisconnectPush;
      e.code = ToU32(d->get_object().if_contains("code"));
      e.message = ToView(d->get_object().if_contains("reason"));
      return nullptr;
    }
    e.kind = ServerEvent::Kind::kOtherPush;
    return nullptr;
  }
  e.id = ToU32(obj.if_contains("id"));
  if (e.id == 0) {
    // Anything that is neither a reply nor a push is a server ping.
    e.kind = ServerEvent::Kind::kPing;
    return nullptr;
  }
  if (const json::value* err = obj.if_contains("error"); err != nullptr && err->is_object()) {
    e.kind = ServerEvent::Kind::kReplyError;
    e.code = ToU32(err->get_object().if_contains("code"));
    e.message = ToView(err->get_object().if_contains("message"));
    return nullptr;
  }
  if (const json::value* c = obj.if_contains("connect"); c != nullptr && c->is_object()) {
    e.kind = ServerEvent::Kind::kConnectReply;
    e.ping_interval_seconds = ToU32(c->get_object().if_contains("ping"));
    if (const json::value* pong = c->get_object().if_contains("pong");
        pong != nullptr && pong->is_bool()) {
      e.pong = pong->get_bool();
    }
    const json::value* subs = c->get_object().if_contains("subs");
    if (subs != nullptr && subs->is_object()) {
      for (const auto& [channel, sub] : subs->get_object()) {
        if (!sub.is_object()) {
          continue;
        }
        const json::object& so = sub.get_object();
        e.has_sub = true;
        e.channel = std::string_view(channel.data(), channel.size());
        e.epoch = ToView(so.if_contains("epoch"));
        e.offset = ToU64(so.if_contains("offset"));
        e.recovered = ToBool(so.if_contains("recovered"));
        e.was_recovering = ToBool(so.if_contains("was_recovering"));
        const json::array* pubs = RecoveredOf(so);
        if (pubs != nullptr) {
          for (const json::value& p : *pubs) {
            e.recovered_count += p.is_object() ? 1 : 0;
          }
        }
        return pubs;  // the LLM emulator's sessions have one channel
      }
    }
    return nullptr;
  }
  e.kind = ServerEvent::Kind::kReply;
  return nullptr;
}

}  // namespace

std::string EncodeConnectCommand(std::string_view token, uint32_t id) {
  std::string out = "{\"connect\":{\"token\":";
  AppendQuoted(out, token);
  absl::StrAppend(&out, ",\"name\":\"js\"},\"id\":", id, "}");
  return out;
}

std::string EncodeConnectCommand(std::string_view token, uint32_t id,
                                 const StreamPosition& since) {
  std::string out = "{\"connect\":{\"token\":";
  AppendQuoted(out, token);
  out += ",\"name\":\"js\",\"subs\":{";
  AppendQuoted(out, since.channel);
  out += ":{\"recover\":true";
  if (since.offset != 0) {
    absl::StrAppend(&out, ",\"offset\":", since.offset);
  }
  out += ",\"epoch\":";
  AppendQuoted(out, since.epoch);
  absl::StrAppend(&out, "}}},\"id\":", id, "}");
  return out;
}

std::string EncodeSubscribeCommand(std::string_view channel, uint32_t id) {
  std::string out = "{\"subscribe\":{\"channel\":";
  AppendQuoted(out, channel);
  absl::StrAppend(&out, "},\"id\":", id, "}");
  return out;
}

ClientFrameParser::ClientFrameParser() : scratch_(new unsigned char[kScratchBytes]) {}
ClientFrameParser::~ClientFrameParser() = default;

absl::Status ClientFrameParser::Parse(std::string_view frame,
                                      absl::FunctionRef<void(const ServerEvent&)> on_event) {
  if (frame.size() > kMaxFrameBytes) {
    return absl::InvalidArgumentError("centrifugo frame exceeds the size limit");
  }
  size_t pos = 0;
  while (pos <= frame.size()) {
    size_t end = frame.find('\n', pos);
    if (end == std::string_view::npos) {
      end = frame.size();
    }
    std::string_view line = frame.substr(pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      if (end == frame.size()) {
        break;
      }
      continue;
    }
    // The monotonic resource serves from the scratch buffer and falls back
    // to the heap only for unusually large messages.
    json::monotonic_resource mr(scratch_.get(), kScratchBytes);
    json::error_code ec;
    json::value v = json::parse(json::string_view(line.data(), line.size()), ec, &mr);
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat("centrifugo message is not JSON: ", ec.message()));
    }
    if (!v.is_object()) {
      return absl::InvalidArgumentError("centrifugo message is not a JSON object");
    }
    ServerEvent e;
    const json::array* recovered = Classify(v.get_object(), e);
    on_event(e);
    if (recovered != nullptr) {
      // The recovered publications, after their reply, in the server's order.
      for (const json::value& p : *recovered) {
        if (!p.is_object()) {
          continue;
        }
        ServerEvent pub;
        pub.channel = e.channel;
        pub.from_recovery = true;
        ReadPublication(p.get_object(), pub);
        on_event(pub);
      }
    }
    if (end == frame.size()) {
      break;
    }
  }
  return absl::OkStatus();
}

}  // namespace llmload::protocol::centrifugo
