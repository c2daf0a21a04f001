#include "lib/protocol/ws_llm_client.h"

#include <cctype>
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
    e.reported_input_tokens = Int(At(Obj(At(data, "tokenUsage")), "promptTokens"));
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
  } else if (type == "tool_call" || type == "tool_result") {
    e.kind = type == "tool_call" ? WsEvent::Kind::kToolCall : WsEvent::Kind::kToolResult;
    e.tool_call_id = View(At(data, "toolCallId"));
    e.tool_name = View(At(data, "toolName"));
    e.tool_status = View(At(data, "status"));
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
    e.reported_input_tokens = Int(At(Obj(root.if_contains("data")), "prompt_tokens"));
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

// ---- the fast path for content chunks ----
//
// Nearly every message of a response is a content chunk, and building a
// JSON DOM for each one was half of the worker's CPU on an unpaced stream.
// ChunkScanner validates the whole message against the JSON grammar in one
// pass without allocating, and reads the few fields of a chunk. It gives up
// (and Parse falls back to the DOM) on anything it does not handle exactly
// as the DOM parse would: non-ASCII bytes, escapes in the strings it reads,
// numbers with exponents or many digits, repeated keys it reads, deep
// nesting. The fuzz target checks that both paths agree.
class ChunkScanner {
 public:
  explicit ChunkScanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  // One JSON value, skipped. False when it is not one (or not handled).
  bool SkipValue(int depth) {
    SkipSpace();
    if (p_ == end_ || depth > kMaxDepth) {
      return false;
    }
    switch (*p_) {
      case '{':
        return Object(depth, [this](std::string_view, int d) { return SkipValue(d); });
      case '[':
        return Array(depth);
      case '"': {
        std::string_view unused;
        bool escaped = false;
        return String(&unused, &escaped);
      }
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number();
    }
  }

  // An object; `member(key, depth)` consumes each member's value.
  template <class Member>
  bool Object(int depth, Member&& member) {
    SkipSpace();
    if (p_ == end_ || *p_ != '{') {
      return false;
    }
    ++p_;
    SkipSpace();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    for (;;) {
      SkipSpace();
      std::string_view key;
      bool escaped = false;
      if (!String(&key, &escaped) || escaped) {
        return false;
      }
      SkipSpace();
      if (p_ == end_ || *p_ != ':') {
        return false;
      }
      ++p_;
      if (!member(key, depth + 1)) {
        return false;
      }
      SkipSpace();
      if (p_ == end_) {
        return false;
      }
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      if (*p_ != ',') {
        return false;
      }
      ++p_;
    }
  }

  // A string without escapes (else `*escaped`), as the view between quotes.
  bool StringValue(std::string_view* out) {
    SkipSpace();
    bool escaped = false;
    return String(out, &escaped) && !escaped;
  }

  bool AtEnd() {
    SkipSpace();
    return p_ == end_;
  }

 private:
  static constexpr int kMaxDepth = 30;  // Boost.JSON's default limit is 32

  void SkipSpace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) {
      ++p_;
    }
  }

  bool Array(int depth) {
    ++p_;  // '['
    SkipSpace();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    for (;;) {
      if (!SkipValue(depth + 1)) {
        return false;
      }
      SkipSpace();
      if (p_ == end_) {
        return false;
      }
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      if (*p_ != ',') {
        return false;
      }
      ++p_;
    }
  }

  bool String(std::string_view* out, bool* escaped) {
    if (p_ == end_ || *p_ != '"') {
      return false;
    }
    const char* start = ++p_;
    while (p_ != end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        *out = std::string_view(start, static_cast<size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (c < 0x20 || c >= 0x80) {
        return false;  // control characters are invalid; non-ASCII goes to the DOM
      }
      if (c == '\\') {
        *escaped = true;
        ++p_;
        if (p_ == end_) {
          return false;
        }
        const char e = *p_;
        if (e == 'u') {
          unsigned code = 0;
          for (int i = 0; i < 4; ++i) {
            ++p_;
            if (p_ == end_ || !std::isxdigit(static_cast<unsigned char>(*p_))) {
              return false;
            }
            const char h = *p_;
            code = code * 16 + static_cast<unsigned>(h <= '9'   ? h - '0'
                                                     : h <= 'F' ? h - 'A' + 10
                                                                : h - 'a' + 10);
          }
          if (code >= 0xd800 && code <= 0xdfff) {
            return false;  // surrogates must pair up: the DOM checks that
          }
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return false;
        }
      }
      ++p_;
    }
    return false;
  }

  bool Literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  // -?(0|[1-9][0-9]*)(.[0-9]+)? with at most 15 digits: exact in a double
  // and in an int64 alike, so the DOM could not read it differently.
  bool Number() {
    const char* start = p_;
    if (p_ != end_ && *p_ == '-') {
      ++p_;
    }
    const char* digits = p_;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
      ++p_;
    }
    const size_t int_digits = static_cast<size_t>(p_ - digits);
    if (int_digits == 0 || (int_digits > 1 && *digits == '0')) {
      return false;
    }
    size_t frac_digits = 0;
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      const char* frac = p_;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
        ++p_;
      }
      frac_digits = static_cast<size_t>(p_ - frac);
      if (frac_digits == 0) {
        return false;
      }
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      return false;  // exponents: left to the DOM
    }
    return p_ != start && int_digits + frac_digits <= 15;
  }

  const char* p_;
  const char* end_;
};

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

bool ParseChunkFast(Dialect dialect, std::string_view frame, WsEvent* e) {
  ChunkScanner scan(frame);
  std::string_view type, id, status, text, token;
  int seen_type = 0, seen_id = 0, seen_status = 0, seen_data = 0, seen_text = 0, seen_token = 0;
  const auto data_member = [&](std::string_view key, int depth) {
    if (dialect == Dialect::kWsChat ? key == "chunk" : key == "text") {
      ++seen_text;
      return scan.StringValue(&text);
    }
    if (dialect == Dialect::kRealm && key == "token") {
      ++seen_token;
      return scan.StringValue(&token);
    }
    return scan.SkipValue(depth);
  };
  const auto root_member = [&](std::string_view key, int depth) {
    if (key == "type") {
      ++seen_type;
      return scan.StringValue(&type);
    }
    if (key == "id") {
      ++seen_id;
      return scan.StringValue(&id);
    }
    if (dialect == Dialect::kRealm && key == "status") {
      ++seen_status;
      return scan.StringValue(&status);
    }
    if (key == "data") {
      ++seen_data;
      return scan.Object(depth, data_member);
    }
    return scan.SkipValue(depth);
  };
  if (!scan.Object(0, root_member) || !scan.AtEnd()) {
    return false;
  }
  // A repeated key would make the DOM's choice matter: leave it to the DOM.
  if (seen_type > 1 || seen_id > 1 || seen_status > 1 || seen_data != 1 || seen_text > 1 ||
      seen_token > 1) {
    return false;
  }
  *e = WsEvent{};
  e->kind = WsEvent::Kind::kChunk;
  e->id = id;
  if (dialect == Dialect::kWsChat) {
    if (seen_type != 1 || type != "llm_chunk") {
      return false;
    }
    e->text = text;
  } else {
    if (seen_type != 0 || status != "streaming") {
      return false;
    }
    e->text = text.empty() ? token : text;
  }
  return true;
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
      first = false;
    }
    if (!p.tools.empty()) {
      absl::StrAppend(&out, first ? "" : ",", "\"tools\":[");
      for (size_t i = 0; i < p.tools.size(); ++i) {
        absl::StrAppend(&out, i == 0 ? "" : ",", Quote(p.tools[i]));
      }
      out += "]";
    }
    out += "}}}";
    return out;
  }
  if (p.function == "health" || p.function == "metadata") {
    out = absl::StrCat("{\"id\":", Quote(p.id), ",\"function\":", Quote(p.function),
                       ",\"params\":{}");
  } else if (p.function == "pipeline") {
    out = absl::StrCat("{\"id\":", Quote(p.id), ",\"function\":\"pipeline\",\"params\":{",
                       "\"pipeline\":", Quote(p.pipeline), ",\"input\":{\"text\":",
                       Quote(p.prompt), "}}");
  }
  if (!out.empty()) {
    if (!p.tenant.empty()) {
      absl::StrAppend(&out, ",\"tenant_id\":", Quote(p.tenant));
    }
    out += "}";
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
  if (WsEvent chunk; fast_path_ && ParseChunkFast(dialect_, frame, &chunk)) {
    on_event(chunk);
    return absl::OkStatus();
  }
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
