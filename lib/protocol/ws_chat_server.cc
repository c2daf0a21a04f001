#include "lib/protocol/ws_chat_server.h"

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "lib/protocol/server_json.h"

namespace llmload::protocol::ws_chat_server {
namespace {

namespace json = boost::json;
using server_json::AppendQuoted;

void ReadOptions(const json::object& o, UserOptions* out) {
  if (auto v = server_json::GetInt(o, "maxTokens"); v.ok() && v->has_value() && **v > 0) {
    out->max_tokens = **v;
  }
  if (auto v = server_json::GetNumber(o, "tokenDelayMs"); v.ok() && v->has_value() && **v >= 0) {
    out->token_delay_ms = **v;
  }
  if (auto v = server_json::GetNumber(o, "ttftMs"); v.ok() && v->has_value() && **v >= 0) {
    out->ttft_ms = **v;
  }
  if (auto v = server_json::GetString(o, "fault"); v.has_value()) {
    out->fault = std::string(*v);
  }
  if (const json::value* tools = o.if_contains("tools"); tools != nullptr && tools->is_array()) {
    for (const json::value& t : tools->get_array()) {
      if (t.is_string()) {
        out->tools.emplace_back(t.get_string());
      } else if (t.is_object()) {
        if (auto name = server_json::GetString(t.get_object(), "name"); name.has_value()) {
          out->tools.emplace_back(*name);
        }
      }
    }
  }
}

}  // namespace

absl::StatusOr<ClientMessage> ParseClientMessage(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec || !v.is_object()) {
    return absl::InvalidArgumentError("Failed to parse message");
  }
  const json::object& obj = v.get_object();
  ClientMessage m;
  if (auto t = server_json::GetString(obj, "type"); t.has_value()) {
    m.type = std::string(*t);
  }
  if (auto id = server_json::GetString(obj, "id"); id.has_value()) {
    m.id = std::string(*id);
  }
  const json::value* data = obj.if_contains("data");
  if (data != nullptr && data->is_object()) {
    const json::object& d = data->get_object();
    if (auto t = server_json::GetString(d, "text"); t.has_value()) {
      m.text = std::string(*t);
    }
    if (m.type == "control") {
      if (auto t = server_json::GetString(d, "type"); t.has_value()) {
        m.control_type = std::string(*t);
      }
    } else {
      ReadOptions(d, &m.options);  // flattened
      if (const json::value* opts = d.if_contains("options"); opts != nullptr && opts->is_object()) {
        ReadOptions(opts->get_object(), &m.options);  // nested wins
      }
    }
  }
  return m;
}

void AppendEnvelope(std::string* out, std::string_view type, std::string_view id,
                    std::string_view data_json, const Meta& meta) {
  out->append("{\"type\":");
  AppendQuoted(out, type);
  out->append(",\"id\":");
  AppendQuoted(out, id);
  if (!data_json.empty()) {
    out->append(",\"data\":");
    out->append(data_json);
  }
  absl::StrAppend(out, ",\"metadata\":{\"timestamp\":", meta.timestamp_ms);
  if (!meta.client_id.empty()) {
    out->append(",\"clientId\":");
    AppendQuoted(out, meta.client_id);
  }
  if (!meta.session_id.empty()) {
    out->append(",\"sessionId\":");
    AppendQuoted(out, meta.session_id);
  }
  out->append("}}");
}

std::string EncodeConnected(std::string_view id, std::string_view client_id,
                            std::string_view session_id, int64_t timestamp_ms) {
  std::string data = "{\"status\":\"connected\",\"message\":\"Connected to chat server\",\"clientId\":";
  AppendQuoted(&data, client_id);
  data += ",\"sessionId\":";
  AppendQuoted(&data, session_id);
  data += "}";
  std::string out;
  AppendEnvelope(&out, "status", id, data, Meta{timestamp_ms, client_id, session_id});
  return out;
}

std::string EncodeProcessing(std::string_view id, int64_t timestamp_ms) {
  std::string out;
  AppendEnvelope(&out, "status", id,
                 "{\"status\":\"processing\",\"message\":\"Processing your message...\"}",
                 Meta{timestamp_ms, {}, {}});
  return out;
}

void AppendChunk(std::string* out, std::string_view id, std::string_view chunk, const Meta& meta) {
  std::string data = "{\"chunk\":";
  AppendQuoted(&data, chunk);
  data += ",\"isComplete\":false}";
  AppendEnvelope(out, "llm_chunk", id, data, meta);
}

std::string EncodeComplete(std::string_view id, std::string_view full_text, int64_t prompt_tokens,
                           int64_t completion_tokens, const Meta& meta) {
  std::string data = "{\"fullText\":";
  AppendQuoted(&data, full_text);
  absl::StrAppend(&data, ",\"tokenUsage\":{\"promptTokens\":", prompt_tokens,
                  ",\"completionTokens\":", completion_tokens,
                  ",\"totalTokens\":", prompt_tokens + completion_tokens, "}}");
  std::string out;
  AppendEnvelope(&out, "llm_complete", id, data, meta);
  return out;
}

std::string EncodeToolCall(std::string_view id, std::string_view tool_call_id,
                           std::string_view tool_name, std::string_view status,
                           const Meta& meta) {
  std::string data = "{\"toolCallId\":";
  AppendQuoted(&data, tool_call_id);
  data += ",\"toolName\":";
  AppendQuoted(&data, tool_name);
  data += ",\"args\":{},\"status\":";
  AppendQuoted(&data, status);
  data += "}";
  std::string out;
  AppendEnvelope(&out, "tool_call", id, data, meta);
  return out;
}

std::string EncodeToolResult(std::string_view id, std::string_view tool_call_id,
                             std::string_view tool_name, std::string_view result_json,
                             const Meta& meta) {
  std::string data = "{\"toolCallId\":";
  AppendQuoted(&data, tool_call_id);
  data += ",\"toolName\":";
  AppendQuoted(&data, tool_name);
  data += ",\"result\":";
  data.append(result_json);
  data += "}";
  std::string out;
  AppendEnvelope(&out, "tool_result", id, data, meta);
  return out;
}

std::string EncodeError(std::string_view id, std::string_view code, std::string_view message,
                        int64_t timestamp_ms) {
  std::string data = "{\"code\":";
  AppendQuoted(&data, code);
  data += ",\"message\":";
  AppendQuoted(&data, message);
  data += ",\"recoverable\":true}";
  std::string out;
  AppendEnvelope(&out, "error", id, data, Meta{timestamp_ms, {}, {}});
  return out;
}

std::string EncodePong(std::string_view id, int64_t timestamp_ms) {
  std::string out;
  AppendEnvelope(&out, "pong", id, "", Meta{timestamp_ms, {}, {}});
  return out;
}

std::string EncodePing(std::string_view id, int64_t timestamp_ms) {
  std::string out;
  AppendEnvelope(&out, "ping", id, "", Meta{timestamp_ms, {}, {}});
  return out;
}

std::string EncodeControlResponse(std::string_view id, std::string_view data_json,
                                  int64_t timestamp_ms) {
  std::string out;
  AppendEnvelope(&out, "control_response", id, data_json, Meta{timestamp_ms, {}, {}});
  return out;
}

}  // namespace llmload::protocol::ws_chat_server
