#include "lib/protocol/ws_llm_client.h"

#include <memory>
#include <optional>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace llmload::protocol::wsllm {
namespace json = boost::json;
namespace {

constexpr size_t kScratchBytes = 16 * 1024;

std::string_view View(const json::value* v) {
  if (v == nullptr || !v->is_string()) {
    return {};
  }
  return {v->get_string().data(), v->get_string().size()};
}

const json::object* Obj(const json::value* v) {
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

const json::value* At(const json::object* o, const char* k) {
  return o == nullptr ? nullptr : o->if_contains(k);
}

int64_t Int(const json::value* v) {
  if (v == nullptr) {
    return -1;
  }
  if (v->is_int64()) {
    return v->get_int64();
  }
  if (v->is_uint64()) {
    return static_cast<int64_t>(v->get_uint64());
  }
  return -1;
}

std::string Quote(std::string_view s) { return json::serialize(json::string_view(s.data(), s.size())); }

void ParseWsChat(const json::object& root, absl::FunctionRef<void(const WsEvent&)> out) {
  const std::string_view type = View(root.if_contains("type"));
  const json::object* data = Obj(root.if_contains("data"));
  WsEvent e;
  e.id = View(root.if_contains("id"));
  if (type == "llm_chunk") {
    e.kind = WsEvent::Kind::kChunk;
    e.text = View(At(data, "chunk"));
  } else if (type == "llm_complete") {
    e.kind = WsEvent::Kind::kComplete;
    e.reported_tokens = Int(At(Obj(At(data, "tokenUsage")), "completionTokens"));
  } else if (type == "status") {
    if (View(At(data, "status")) == "connected") {
      e.kind = WsEvent::Kind::kReady;
    }
  } else if (type == "error") {
    e.kind = WsEvent::Kind::kError;
    e.error_code = View(At(data, "code"));
    e.error_message = View(At(data, "message"));
  } else if (type == "ping") {
    e.kind = WsEvent::Kind::kPing;
    e.reply = absl::StrCat("{\"type\":\"pong\",\"id\":", Quote(e.id), "}");
  }
  out(e);
}

void ParseRealm(const json::object& root, absl::FunctionRef<void(const WsEvent&)> out) {
  WsEvent e;
  const std::string_view type = View(root.if_contains("type"));
  if (!type.empty()) {
    if (type == "auth_success") {
      e.kind = WsEvent::Kind::kAuthOk;
    } else if (type == "auth_failed") {
      e.kind = WsEvent::Kind::kAuthFailed;
      e.error_message = View(root.if_contains("error"));
    }
    out(e);  // auth_required and unknown types are ignored
    return;
  }
  const std::string_view status = View(root.if_contains("status"));
  e.id = View(root.if_contains("id"));
  if (status == "connected" && e.id.empty()) {
    e.kind = WsEvent::Kind::kReady;  // the welcome message
  } else if (status == "streaming") {
    const json::object* data = Obj(root.if_contains("data"));
    e.kind = WsEvent::Kind::kChunk;
    e.text = View(At(data, "text"));
    if (e.text.empty()) {
      e.text = View(At(data, "token"));  // the Node SDK's spelling
    }
  } else if (status == "complete") {
    e.kind = WsEvent::Kind::kComplete;
    e.reported_tokens = Int(At(Obj(root.if_contains("data")), "tokens_generated"));
  } else if (status == "error" || status == "cancelled") {
    const json::object* err = Obj(root.if_contains("error"));
    e.kind = WsEvent::Kind::kError;
    e.error_code = status == "cancelled" ? std::string_view("CANCELLED") : View(At(err, "code"));
    e.error_message = View(At(err, "message"));
    e.retry_after_seconds = static_cast<double>(Int(At(err, "retry_after")));
    if (e.retry_after_seconds < 0) {
      e.retry_after_seconds = RetryAfterFromText(e.error_message);
    }
  } else if (root.if_contains("error") != nullptr && e.id.empty()) {
    e.kind = WsEvent::Kind::kError;  // {"error":"Binary messages not supported"}
    e.error_code = "INTERNAL_ERROR";
    e.error_message = View(root.if_contains("error"));
  }
  out(e);
}

}  // namespace

double RetryAfterFromText(std::string_view message) {
  constexpr std::string_view kMarker = "Try again in ";
  const size_t at = message.find(kMarker);
  if (at == std::string_view::npos) {
    return -1;
  }
  std::string_view rest = message.substr(at + kMarker.size());
  const size_t end = rest.find_first_not_of("0123456789.");
  rest = rest.substr(0, end);
  double v = 0;
  return absl::SimpleAtod(absl::string_view(rest.data(), rest.size()), &v) ? v : -1;
}

WsLlmClient::WsLlmClient(Dialect dialect) : dialect_(dialect) {}

std::optional<std::string> WsLlmClient::OpeningFrame(std::string_view api_key) const {
  if (dialect_ == Dialect::kRealm && !api_key.empty()) {
    return absl::StrCat("{\"type\":\"auth\",\"api_key\":", Quote(api_key), "}");
  }
  return std::nullopt;
}

std::string WsLlmClient::EncodeRequest(const RequestParams& p) const {
  std::string out;
  if (dialect_ == Dialect::kWsChat) {
    out = absl::StrCat("{\"type\":\"user_message\",\"id\":", Quote(p.id),
                       ",\"data\":{\"text\":", Quote(p.prompt), ",\"options\":{");
    bool first = true;
    if (p.max_tokens > 0) {
      absl::StrAppend(&out, "\"maxTokens\":", p.max_tokens);
      first = false;
    }
    if (p.token_delay_ms >= 0) {
      absl::StrAppend(&out, first ? "" : ",", "\"tokenDelayMs\":", p.token_delay_ms);
    }
    out += "}}}";
    return out;
  }
  out = absl::StrCat("{\"id\":", Quote(p.id), ",\"function\":\"generate\",\"params\":{\"prompt\":",
                     Quote(p.prompt));
  if (!p.model.empty()) {
    absl::StrAppend(&out, ",\"model\":", Quote(p.model));
  }
  absl::StrAppend(&out, ",\"max_tokens\":", p.max_tokens > 0 ? p.max_tokens : 100,
                  ",\"stream\":", p.stream ? "true" : "false");
  if (p.token_delay_ms >= 0) {
    absl::StrAppend(&out, ",\"token_delay_ms\":", p.token_delay_ms);
  }
  out += "}";
  if (!p.tenant.empty()) {
    absl::StrAppend(&out, ",\"tenant_id\":", Quote(p.tenant));
  }
  out += "}";
  return out;
}

std::string WsLlmClient::EncodeKeepAlive(std::string_view id) const {
  if (dialect_ == Dialect::kWsChat) {
    return absl::StrCat("{\"type\":\"ping\",\"id\":", Quote(id), "}");
  }
  return {};
}

absl::Status WsLlmClient::Parse(std::string_view frame,
                                absl::FunctionRef<void(const WsEvent&)> on_event) {
  // The parse tree lives in one scratch area per thread, not per client: a
  // worker holds thousands of idle sessions and parses for one at a time. A
  // parse started from inside an event handler (none does so today) gets a
  // resource of its own, so the outer event's views stay valid.
  thread_local std::unique_ptr<unsigned char[]> scratch(new unsigned char[kScratchBytes]);
  thread_local bool scratch_in_use = false;
  std::optional<json::monotonic_resource> mr;
  const bool nested = scratch_in_use;
  if (nested) {
    mr.emplace();
  } else {
    mr.emplace(scratch.get(), kScratchBytes);
    scratch_in_use = true;
  }
  struct Release {
    bool nested;
    ~Release() {
      if (!nested) {
        scratch_in_use = false;
      }
    }
  } release{nested};
  json::error_code ec;
  json::value v = json::parse(json::string_view(frame.data(), frame.size()), ec, &*mr);
  if (ec || !v.is_object()) {
    return absl::InvalidArgumentError("websocket message is not a JSON object");
  }
  if (dialect_ == Dialect::kWsChat) {
    ParseWsChat(v.get_object(), on_event);
  } else {
    ParseRealm(v.get_object(), on_event);
  }
  return absl::OkStatus();
}

}  // namespace llmload::protocol::wsllm
