#include "lib/protocol/provider_stream.h"

#include <memory>
#include <optional>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace llmload::protocol::llm {
namespace json = boost::json;
namespace {

constexpr size_t kScratchBytes = 16 * 1024;
// Largest token count or error code taken from a target (2^53: exact in a
// double, far above any real count).
constexpr int64_t kMaxCount = int64_t{1} << 53;

std::string_view View(const json::value* v) {
  if (v == nullptr || !v->is_string()) {
    return {};
  }
  return {v->get_string().data(), v->get_string().size()};
}

int64_t Int(const json::value* v) {
  if (v == nullptr) {
    return -1;
  }
  if (v->is_int64()) {
    return v->get_int64();
  }
  if (v->is_uint64()) {
    return v->get_uint64() <= static_cast<uint64_t>(kMaxCount)
               ? static_cast<int64_t>(v->get_uint64())
               : -1;
  }
  if (v->is_double()) {
    // A target can send any number: only finite, integral-range values
    // count (converting anything else to an integer is undefined).
    const double d = v->get_double();
    return d >= 0 && d <= static_cast<double>(kMaxCount) ? static_cast<int64_t>(d) : -1;
  }
  return -1;
}

const json::object* Obj(const json::value* v) { return v != nullptr && v->is_object() ? &v->get_object() : nullptr; }
const json::value* At(const json::object* o, std::string_view k) {
  return o == nullptr ? nullptr : o->if_contains(json::string_view(k.data(), k.size()));
}

// Emits the error item of an {"error": {...}} object; true if there was one.
bool EmitError(const json::object& root, absl::FunctionRef<void(const StreamItem&)> out) {
  const json::value* err = root.if_contains("error");
  if (err == nullptr || (err->is_bool() && !err->get_bool()) || err->is_null()) {
    return false;
  }
  StreamItem item;
  item.kind = StreamItem::Kind::kError;
  if (const json::object* e = Obj(err)) {
    item.error_type = View(At(e, "type"));
    if (item.error_type.empty()) {
      item.error_type = View(At(e, "status"));
    }
    item.error_message = View(At(e, "message"));
    const int64_t code = Int(At(e, "code"));
    item.error_code = code > 0 && code < 1000 ? static_cast<int32_t>(code) : 0;
  }
  out(item);
  return true;
}

void AppendJsonString(std::string& out, std::string_view s) {
  out += json::serialize(json::string_view(s.data(), s.size()));
}

}  // namespace

std::string RequestPath(Provider p, std::string_view model, bool stream) {
  switch (p) {
    case Provider::kOpenAiChat:
      return "/v1/chat/completions";
    case Provider::kAnthropic:
      return "/v1/messages";
    case Provider::kGemini:
      return absl::StrCat("/v1beta/models/", absl::string_view(model.data(), model.size()),
                          stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
    case Provider::kOpenAiResponses:
      return "/v1/responses";
  }
  return "/";
}

std::string RequestPathBelow(Provider p, std::string_view base_path, std::string_view model,
                             bool stream) {
  const absl::string_view base(base_path.data(), base_path.size());
  switch (p) {
    case Provider::kOpenAiChat:
      if (absl::EndsWith(base, "/chat/completions")) {
        return "";
      }
      break;
    case Provider::kAnthropic:
      if (absl::EndsWith(base, "/messages")) {
        return "";
      }
      break;
    case Provider::kGemini:
      if (absl::EndsWith(base, ":streamGenerateContent") ||
          absl::EndsWith(base, ":generateContent")) {
        return stream && absl::EndsWith(base, ":streamGenerateContent") ? "?alt=sse" : "";
      }
      break;
    case Provider::kOpenAiResponses:
      if (absl::EndsWith(base, "/responses")) {
        return "";
      }
      break;
  }
  return RequestPath(p, model, stream);
}

namespace {

// The messages of a request: `r.messages`, or one user message of r.prompt.
std::span<const ChatMessage> Messages(const RequestParams& r, ChatMessage* one) {
  if (!r.messages.empty()) {
    return r.messages;
  }
  *one = ChatMessage{"user", r.prompt};
  return std::span<const ChatMessage>(one, 1);
}

// [{"role":…,"content":…},…] of the messages whose role is not system (all
// of them when `keep_system`).
void AppendRoleContentList(std::string& out, std::span<const ChatMessage> messages,
                           bool keep_system) {
  out += '[';
  bool first = true;
  for (const ChatMessage& m : messages) {
    if (!keep_system && m.role == "system") {
      continue;
    }
    out += first ? "{\"role\":" : ",{\"role\":";
    first = false;
    AppendJsonString(out, m.role);
    out += ",\"content\":";
    AppendJsonString(out, m.content);
    out += '}';
  }
  out += ']';
}

}  // namespace

std::string RequestBody(Provider p, const RequestParams& r) {
  std::string out;
  ChatMessage one;
  const std::span<const ChatMessage> messages = Messages(r, &one);
  switch (p) {
    case Provider::kOpenAiChat:
      out = "{\"model\":";
      AppendJsonString(out, r.model);
      out += ",\"messages\":";
      AppendRoleContentList(out, messages, /*keep_system=*/true);
      if (r.max_tokens > 0) {
        absl::StrAppend(&out, ",\"max_tokens\":", r.max_tokens);
      }
      if (r.stream) {
        out += ",\"stream\":true,\"stream_options\":{\"include_usage\":true}";
      }
      out += "}";
      return out;
    case Provider::kAnthropic: {
      out = "{\"model\":";
      AppendJsonString(out, r.model);
      absl::StrAppend(&out, ",\"max_tokens\":", r.max_tokens > 0 ? r.max_tokens : 1024);
      // System messages become the top-level "system" text, in order.
      bool system = false;
      for (const ChatMessage& m : messages) {
        if (m.role != "system") {
          continue;
        }
        if (!system) {
          out += ",\"system\":[";
        } else {
          out += ',';
        }
        out += "{\"type\":\"text\",\"text\":";
        AppendJsonString(out, m.content);
        out += '}';
        system = true;
      }
      if (system) {
        out += ']';
      }
      out += ",\"messages\":";
      AppendRoleContentList(out, messages, /*keep_system=*/false);
      if (r.stream) {
        out += ",\"stream\":true";
      }
      out += "}";
      return out;
    }
    case Provider::kGemini: {
      out = "{";
      bool system = false;
      for (const ChatMessage& m : messages) {
        if (m.role != "system") {
          continue;
        }
        out += system ? ",{\"text\":" : "\"systemInstruction\":{\"parts\":[{\"text\":";
        AppendJsonString(out, m.content);
        out += '}';
        system = true;
      }
      if (system) {
        out += "]},";
      }
      out += "\"contents\":[";
      bool first = true;
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          continue;
        }
        out += first ? "{\"role\":" : ",{\"role\":";
        first = false;
        AppendJsonString(out, m.role == "assistant" ? std::string_view("model") : m.role);
        out += ",\"parts\":[{\"text\":";
        AppendJsonString(out, m.content);
        out += "}]}";
      }
      out += "]";
      if (r.max_tokens > 0) {
        absl::StrAppend(&out, ",\"generationConfig\":{\"maxOutputTokens\":", r.max_tokens, "}");
      }
      out += "}";
      return out;
    }
    case Provider::kOpenAiResponses:
      // A single prompt goes as the input string; a conversation as input
      // messages (system messages included: the API takes them in input).
      out = "{\"model\":";
      AppendJsonString(out, r.model);
      out += ",\"input\":";
      if (r.messages.empty()) {
        AppendJsonString(out, r.prompt);
      } else {
        AppendRoleContentList(out, messages, /*keep_system=*/true);
      }
      if (r.max_tokens > 0) {
        absl::StrAppend(&out, ",\"max_output_tokens\":", r.max_tokens);
      }
      if (r.stream) {
        out += ",\"stream\":true";
      }
      out += "}";
      return out;
  }
  return out;
}

namespace {

// The parsed JSON of an event lives only while OnEvent runs, so one scratch
// buffer per thread serves every decoder on it: a worker keeps thousands of
// responses streaming per thread, and 16 KiB each would be most of their
// memory. A decoder called from inside another's callback (nothing does
// that today) would find it taken and parse on the heap instead.
struct ThreadScratch {
  std::unique_ptr<unsigned char[]> bytes{new unsigned char[kScratchBytes]};
  bool busy = false;
};

class ScratchResource {
 public:
  ScratchResource() : scratch_(Local()) {
    if (scratch_.busy) {
      resource_.emplace();
    } else {
      scratch_.busy = owner_ = true;
      resource_.emplace(scratch_.bytes.get(), kScratchBytes);
    }
  }
  ~ScratchResource() {
    resource_.reset();
    if (owner_) {
      scratch_.busy = false;
    }
  }
  ScratchResource(const ScratchResource&) = delete;
  ScratchResource& operator=(const ScratchResource&) = delete;
  json::monotonic_resource* get() { return &*resource_; }

 private:
  static ThreadScratch& Local() {
    thread_local ThreadScratch scratch;
    return scratch;
  }
  ThreadScratch& scratch_;
  bool owner_ = false;
  std::optional<json::monotonic_resource> resource_;
};

}  // namespace

StreamDecoder::StreamDecoder(Provider p) : provider_(p) {}
StreamDecoder::~StreamDecoder() = default;

absl::Status StreamDecoder::OnEvent(const sse::SseEvent& event,
                                    absl::FunctionRef<void(const StreamItem&)> out) {
  if (provider_ == Provider::kOpenAiChat && event.data.substr(0, 6) == "[DONE]") {
    StreamItem done;
    done.kind = StreamItem::Kind::kDone;
    out(done);
    return absl::OkStatus();
  }
  if (provider_ == Provider::kAnthropic && event.type == "ping") {
    return absl::OkStatus();
  }
  ScratchResource mr;
  json::error_code ec;
  json::value v =
      json::parse(json::string_view(event.data.data(), event.data.size()), ec, mr.get());
  if (ec || !v.is_object()) {
    return absl::InvalidArgumentError("stream event is not a JSON object");
  }
  const json::object& root = v.get_object();
  switch (provider_) {
    case Provider::kOpenAiChat: {
      if (EmitError(root, out)) {
        return absl::OkStatus();
      }
      const json::value* choices = root.if_contains("choices");
      if (choices != nullptr && choices->is_array() && !choices->get_array().empty()) {
        const json::object* c0 = Obj(&choices->get_array()[0]);
        const json::object* delta = Obj(At(c0, "delta"));
        const json::value* content = At(delta, "content");
        if (content != nullptr && content->is_string()) {
          StreamItem item;
          item.text = View(content);
          out(item);
        }
      }
      if (const json::object* usage = Obj(root.if_contains("usage"))) {
        StreamItem item;
        item.kind = StreamItem::Kind::kUsage;
        item.output_tokens = Int(At(usage, "completion_tokens"));
        item.input_tokens = Int(At(usage, "prompt_tokens"));
        if (item.output_tokens >= 0 || item.input_tokens >= 0) {
          out(item);
        }
      }
      return absl::OkStatus();
    }
    case Provider::kAnthropic: {
      const std::string_view type = View(root.if_contains("type"));
      if (event.type == "error" || type == "error") {
        if (!EmitError(root, out)) {
          StreamItem item;
          item.kind = StreamItem::Kind::kError;
          out(item);
        }
        return absl::OkStatus();
      }
      if (type == "content_block_delta") {
        const json::object* delta = Obj(root.if_contains("delta"));
        if (View(At(delta, "type")) == "text_delta") {
          StreamItem item;
          item.text = View(At(delta, "text"));
          out(item);
        }
      } else if (type == "message_start") {
        StreamItem item;
        item.kind = StreamItem::Kind::kUsage;
        item.input_tokens =
            Int(At(Obj(At(Obj(root.if_contains("message")), "usage")), "input_tokens"));
        if (item.input_tokens >= 0) {
          out(item);
        }
      } else if (type == "message_delta") {
        StreamItem item;
        item.kind = StreamItem::Kind::kUsage;
        const json::object* usage = Obj(root.if_contains("usage"));
        item.output_tokens = Int(At(usage, "output_tokens"));
        item.input_tokens = Int(At(usage, "input_tokens"));
        if (item.output_tokens >= 0 || item.input_tokens >= 0) {
          out(item);
        }
      } else if (type == "message_stop") {
        StreamItem item;
        item.kind = StreamItem::Kind::kDone;
        out(item);
      }
      return absl::OkStatus();
    }
    case Provider::kGemini: {
      if (EmitError(root, out)) {
        return absl::OkStatus();
      }
      bool finished = false;
      const json::value* cands = root.if_contains("candidates");
      if (cands != nullptr && cands->is_array() && !cands->get_array().empty()) {
        const json::object* c0 = Obj(&cands->get_array()[0]);
        const json::object* content = Obj(At(c0, "content"));
        const json::value* parts = At(content, "parts");
        if (parts != nullptr && parts->is_array()) {
          for (const json::value& part : parts->get_array()) {
            const json::object* po = Obj(&part);
            const json::value* thought = At(po, "thought");
            if (thought != nullptr && thought->is_bool() && thought->get_bool()) {
              continue;
            }
            const json::value* text = At(po, "text");
            if (text != nullptr && text->is_string()) {
              StreamItem item;
              item.text = View(text);
              out(item);
            }
          }
        }
        finished = !View(At(c0, "finishReason")).empty();
      }
      if (const json::object* usage = Obj(root.if_contains("usageMetadata"))) {
        StreamItem item;
        item.kind = StreamItem::Kind::kUsage;
        item.output_tokens = Int(At(usage, "candidatesTokenCount"));
        item.input_tokens = Int(At(usage, "promptTokenCount"));
        if (item.output_tokens >= 0 || item.input_tokens >= 0) {
          out(item);
        }
      }
      if (finished) {
        StreamItem item;
        item.kind = StreamItem::Kind::kDone;
        out(item);
      }
      return absl::OkStatus();
    }
    case Provider::kOpenAiResponses:
      return OnResponsesEvent(event, root, out);
  }
  return absl::OkStatus();
}

namespace {

// usage.output_tokens / input_tokens of a Responses API response object.
void ResponsesUsage(const json::object* response, int64_t* output_tokens, int64_t* input_tokens) {
  const json::object* usage = Obj(At(response, "usage"));
  *output_tokens = Int(At(usage, "output_tokens"));
  *input_tokens = Int(At(usage, "input_tokens"));
}

}  // namespace

absl::Status StreamDecoder::OnResponsesEvent(const sse::SseEvent& event,
                                             const boost::json::object& root,
                                             absl::FunctionRef<void(const StreamItem&)> out) {
  std::string_view type = View(root.if_contains("type"));
  if (type.empty()) {
    type = event.type;
  }
  if (type.empty()) {
    return absl::InvalidArgumentError("Responses API event has no type");
  }
  if (type == "response.output_text.delta") {
    const json::value* delta = root.if_contains("delta");
    if (delta == nullptr || !delta->is_string()) {
      return absl::InvalidArgumentError("response.output_text.delta has no delta string");
    }
    StreamItem item;
    item.text = View(delta);
    out(item);
    return absl::OkStatus();
  }
  if (type == "response.completed" || type == "response.incomplete") {
    StreamItem usage;
    usage.kind = StreamItem::Kind::kUsage;
    ResponsesUsage(Obj(root.if_contains("response")), &usage.output_tokens, &usage.input_tokens);
    if (usage.output_tokens >= 0 || usage.input_tokens >= 0) {
      out(usage);
    }
    StreamItem done;
    done.kind = StreamItem::Kind::kDone;
    out(done);
    return absl::OkStatus();
  }
  if (type == "error" || type == "response.failed") {
    // error: {"type":"error","code","message",...}; response.failed:
    // response.error {"code","message"}.
    const json::object* err =
        type == "error" ? &root : Obj(At(Obj(root.if_contains("response")), "error"));
    StreamItem item;
    item.kind = StreamItem::Kind::kError;
    item.error_type = View(At(err, "code"));
    item.error_message = View(At(err, "message"));
    out(item);
    return absl::OkStatus();
  }
  // A top-level error object on any other event is an error too (the SDK
  // throws on it); "error": null on the response events is not.
  const json::value* top_error = root.if_contains("error");
  if (top_error != nullptr && top_error->is_object()) {
    EmitError(root, out);
  }
  return absl::OkStatus();
}

absl::StatusOr<Completion> ParseCompletion(Provider p, std::string_view body) {
  json::error_code ec;
  json::value v = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec || !v.is_object()) {
    return absl::InvalidArgumentError("response body is not a JSON object");
  }
  const json::object& root = v.get_object();
  Completion c;
  switch (p) {
    case Provider::kOpenAiChat: {
      const json::value* choices = root.if_contains("choices");
      if (choices == nullptr || !choices->is_array() || choices->get_array().empty()) {
        return absl::InvalidArgumentError("response has no choices");
      }
      const json::object* msg = Obj(At(Obj(&choices->get_array()[0]), "message"));
      c.text = std::string(View(At(msg, "content")));
      c.output_tokens = Int(At(Obj(root.if_contains("usage")), "completion_tokens"));
      c.input_tokens = Int(At(Obj(root.if_contains("usage")), "prompt_tokens"));
      return c;
    }
    case Provider::kAnthropic: {
      const json::value* content = root.if_contains("content");
      if (content == nullptr || !content->is_array()) {
        return absl::InvalidArgumentError("response has no content");
      }
      for (const json::value& block : content->get_array()) {
        if (View(At(Obj(&block), "type")) == "text") {
          c.text += std::string(View(At(Obj(&block), "text")));
        }
      }
      c.output_tokens = Int(At(Obj(root.if_contains("usage")), "output_tokens"));
      c.input_tokens = Int(At(Obj(root.if_contains("usage")), "input_tokens"));
      return c;
    }
    case Provider::kGemini: {
      const json::value* cands = root.if_contains("candidates");
      if (cands == nullptr || !cands->is_array() || cands->get_array().empty()) {
        return absl::InvalidArgumentError("response has no candidates");
      }
      const json::value* parts = At(Obj(At(Obj(&cands->get_array()[0]), "content")), "parts");
      if (parts != nullptr && parts->is_array()) {
        for (const json::value& part : parts->get_array()) {
          c.text += std::string(View(At(Obj(&part), "text")));
        }
      }
      c.output_tokens = Int(At(Obj(root.if_contains("usageMetadata")), "candidatesTokenCount"));
      c.input_tokens = Int(At(Obj(root.if_contains("usageMetadata")), "promptTokenCount"));
      return c;
    }
    case Provider::kOpenAiResponses: {
      // output: [{"type":"message","content":[{"type":"output_text","text"}]}, ...]
      const json::value* output = root.if_contains("output");
      if (output == nullptr || !output->is_array()) {
        return absl::InvalidArgumentError("response has no output");
      }
      for (const json::value& item : output->get_array()) {
        if (View(At(Obj(&item), "type")) != "message") {
          continue;
        }
        const json::value* content = At(Obj(&item), "content");
        if (content == nullptr || !content->is_array()) {
          continue;
        }
        for (const json::value& part : content->get_array()) {
          if (View(At(Obj(&part), "type")) == "output_text") {
            c.text += std::string(View(At(Obj(&part), "text")));
          }
        }
      }
      ResponsesUsage(&root, &c.output_tokens, &c.input_tokens);
      return c;
    }
  }
  return c;
}

ErrorBody ParseErrorBody(std::string_view body) {
  ErrorBody out;
  json::error_code ec;
  json::value v = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec || !v.is_object()) {
    return out;
  }
  const json::object* err = Obj(v.get_object().if_contains("error"));
  out.type = std::string(View(At(err, "type")));
  if (out.type.empty()) {
    out.type = std::string(View(At(err, "status")));
  }
  out.message = std::string(View(At(err, "message")));
  return out;
}

double RetryAfterSeconds(std::string_view retry_after, std::string_view retry_after_ms) {
  double v = 0;
  if (!retry_after_ms.empty() &&
      absl::SimpleAtod(absl::string_view(retry_after_ms.data(), retry_after_ms.size()), &v) &&
      v >= 0 && v < 1e9) {
    return v / 1000.0;
  }
  if (!retry_after.empty() &&
      absl::SimpleAtod(absl::string_view(retry_after.data(), retry_after.size()), &v) && v >= 0 &&
      v < 1e7) {
    return v;
  }
  return -1;
}

}  // namespace llmload::protocol::llm
