#include "services/emulator/ws_chat_endpoint.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/protocol/server_json.h"
#include "lib/protocol/ws_chat_server.h"
#include "services/emulator/ids.h"
#include "services/emulator/stream.h"

namespace llmload::emulator {
namespace {

namespace wc = protocol::ws_chat_server;

std::string Base36Id(std::string_view prefix, int64_t ms) {
  std::string id(prefix);
  absl::StrAppend(&id, ms, "_");
  std::string r = NewShortId(9);
  for (char& c : r) {
    const unsigned char u = static_cast<unsigned char>(c);
    c = "0123456789abcdefghijklmnopqrstuvwxyz"[u % 36];
  }
  return id + r;
}

class WsChatStream final : public PlannedStream {
 public:
  WsChatStream(ResponsePlan plan, std::string id, std::vector<std::string> tools,
               const WsChatOptions* options, std::string client_id, std::string session_id,
               int64_t prompt_tokens)
      : PlannedStream(std::move(plan)),
        id_(std::move(id)),
        tools_(std::move(tools)),
        options_(options),
        client_id_(std::move(client_id)),
        session_id_(std::move(session_id)),
        prompt_tokens_(prompt_tokens) {}

 private:
  wc::Meta Meta() const { return wc::Meta{options_->now_ms(), client_id_, session_id_}; }

  void Head() override {
    const auto zero = std::chrono::nanoseconds(0);
    for (size_t i = 0; i < tools_.size(); ++i) {
      const std::string call_id = absl::StrCat("call_", NewShortId(16));
      Push(zero, wc::EncodeToolCall(id_, call_id, tools_[i], "start", Meta()));
      Push(zero, wc::EncodeToolCall(id_, call_id, tools_[i], "complete", Meta()));
      std::string result = "{\"ok\":true,\"output\":";
      protocol::server_json::AppendQuoted(&result, absl::StrCat(tools_[i], " result"));
      result += "}";
      Push(zero, wc::EncodeToolResult(id_, call_id, tools_[i], result, Meta()));
    }
  }
  void Token(size_t i, std::string_view token, std::chrono::nanoseconds at) override {
    std::string chunk;
    if (i > 0) {
      chunk.push_back(' ');
    }
    chunk.append(token);
    std::string out;
    out.reserve(160 + id_.size());
    wc::AppendChunk(&out, id_, chunk, Meta());
    Push(at, std::move(out));
  }
  void Tail(std::chrono::nanoseconds at) override {
    Push(at, wc::EncodeComplete(id_, plan().text, prompt_tokens_,
                                static_cast<int64_t>(plan().tokens.size()), Meta()));
  }
  void ErrorEvent(std::chrono::nanoseconds at) override {
    Push(at, wc::EncodeError(Base36Id("msg_", options_->now_ms()), "PROCESSING_ERROR",
                             "Error processing message", options_->now_ms()));
  }

  std::string id_;
  std::vector<std::string> tools_;
  const WsChatOptions* options_;
  std::string client_id_;
  std::string session_id_;
  int64_t prompt_tokens_;
};

WsActions One(std::string frame) {
  WsActions a;
  a.frames.push_back(std::move(frame));
  return a;
}

}  // namespace

WsChatHandler::WsChatHandler(const WsChatOptions* options, Behaviour* behaviour,
                             std::optional<Fault> forced_fault)
    : options_(options), behaviour_(behaviour), forced_fault_(forced_fault) {}

std::string WsChatHandler::NewMessageId() { return Base36Id("msg_", options_->now_ms()); }

WsActions WsChatHandler::Error(std::string_view code, std::string_view message) {
  return One(wc::EncodeError(NewMessageId(), code, message, options_->now_ms()));
}

WsActions WsChatHandler::OnOpen() {
  connected_at_ = options_->now_ms();
  last_activity_ = connected_at_;
  client_id_ = Base36Id("client_", connected_at_);
  session_id_ = Base36Id("session_", connected_at_);
  WsActions a = One(wc::EncodeConnected(NewMessageId(), client_id_, session_id_, connected_at_));
  a.deadline = options_->heartbeat;
  return a;
}

WsActions WsChatHandler::OnDeadline() {
  if (!alive_) {
    WsActions a;
    a.drop = true;  // terminate, as the server's heartbeat does
    return a;
  }
  alive_ = false;
  WsActions a = One(wc::EncodePing(NewMessageId(), options_->now_ms()));
  a.deadline = options_->heartbeat;
  return a;
}

WsActions WsChatHandler::OnBinary() {
  alive_ = true;
  return Error("INVALID_MESSAGE", "Failed to parse message");
}

WsActions WsChatHandler::OnStreamEnd() {
  streaming_ = false;
  history_.emplace_back("assistant", std::move(pending_reply_));
  pending_reply_.clear();
  return {};
}

WsActions WsChatHandler::OnText(std::string_view text) {
  alive_ = true;
  ++message_count_;
  const int64_t now = options_->now_ms();
  last_activity_ = now;
  absl::StatusOr<wc::ClientMessage> msg = wc::ParseClientMessage(text);
  if (!msg.ok()) {
    return Error("INVALID_MESSAGE", "Failed to parse message");
  }
  if (msg->type == "ping") {
    return One(wc::EncodePong(msg->id, now));
  }
  if (msg->type == "pong") {
    return {};
  }
  if (msg->type == "user_message") {
    if (streaming_) {
      return {};  // one reply at a time per conversation
    }
    RequestOverrides overrides;
    overrides.fault = forced_fault_;
    const wc::UserOptions& o = msg->options;
    if (!o.fault.empty()) {
      std::optional<Fault> fault = ParseFault(o.fault);
      if (!fault.has_value()) {
        return Error("PROCESSING_ERROR", absl::StrCat("Unknown fault: ", o.fault));
      }
      overrides.fault = fault;
    }
    if (o.max_tokens.has_value()) {
      overrides.length_words = static_cast<int32_t>(std::min<int64_t>(*o.max_tokens, 100000));
    }
    if (o.token_delay_ms.has_value()) {
      overrides.token_delay_seconds = std::min(*o.token_delay_ms, 60000.0) / 1000.0;
    }
    if (o.ttft_ms.has_value()) {
      overrides.ttft_seconds = std::min(*o.ttft_ms, 60000.0) / 1000.0;
    }
    conversation_ = true;
    history_.emplace_back("user", msg->text);
    behaviour_->CountTurn(std::count_if(history_.begin(), history_.end(),
                                        [](const auto& m) { return m.first == "user"; }));
    ResponsePlan plan = behaviour_->Plan(Protocol::kWsChat, msg->text, overrides);
    WsActions a = One(wc::EncodeProcessing(NewMessageId(), now));
    if (plan.fault == Fault::kHttp500 || plan.fault == Fault::kHttp429) {
      a.frames.push_back(wc::EncodeError(
          NewMessageId(), "PROCESSING_ERROR",
          plan.fault == Fault::kHttp429 ? "Rate limit exceeded" : "Error processing message",
          now));
      return a;
    }
    streaming_ = true;
    pending_reply_ = plan.text;
    a.stream = std::make_unique<WsChatStream>(std::move(plan), msg->id, o.tools, options_,
                                              client_id_, session_id_,
                                              protocol::server_json::CountWords(msg->text));
    return a;
  }
  if (msg->type == "control") {
    const std::string& c = msg->control_type;
    if (c == "abort") {
      if (!conversation_) {
        return {};
      }
      WsActions a = One(wc::EncodeControlResponse(
          msg->id, "{\"status\":\"aborted\",\"type\":\"abort\"}", now));
      if (streaming_) {
        a.cancel_stream = true;
        streaming_ = false;
        pending_reply_.clear();
      }
      return a;
    }
    if (c == "clear_history") {
      if (!conversation_) {
        return {};
      }
      history_.clear();
      return One(wc::EncodeControlResponse(
          msg->id, "{\"status\":\"cleared\",\"type\":\"clear_history\"}", now));
    }
    if (c == "get_history") {
      if (!conversation_) {
        return {};
      }
      std::string data = "{\"status\":\"history\",\"history\":[";
      for (size_t i = 0; i < history_.size(); ++i) {
        if (i > 0) {
          data.push_back(',');
        }
        data += "{\"role\":";
        protocol::server_json::AppendQuoted(&data, history_[i].first);
        data += ",\"content\":";
        protocol::server_json::AppendQuoted(&data, history_[i].second);
        data += "}";
      }
      data += "],\"type\":\"get_history\"}";
      return One(wc::EncodeControlResponse(msg->id, data, now));
    }
    if (c == "get_status") {
      return One(wc::EncodeControlResponse(
          msg->id,
          absl::StrCat("{\"status\":\"status_info\",\"type\":\"get_status\",\"connectedAt\":",
                       connected_at_, ",\"messageCount\":", message_count_,
                       ",\"lastActivity\":", last_activity_, "}"),
          now));
    }
    return Error("UNKNOWN_CONTROL", absl::StrCat("Unknown control type: ", c));
  }
  return Error("UNKNOWN_MESSAGE_TYPE", absl::StrCat("Unknown message type: ", msg->type));
}

WsChatEndpoint::WsChatEndpoint(WsChatOptions options, WsEndpointOptions ws_options,
                               Behaviour* behaviour)
    : options_(std::move(options)),
      behaviour_(behaviour),
      ws_(std::move(ws_options), [this](const HttpRequest& upgrade) {
        std::optional<Fault> forced;
        if (auto it = upgrade.find(boost::beast::string_view(kHeaderFault.data(),
                                                               kHeaderFault.size()));
            it != upgrade.end()) {
          forced = ParseFault(std::string_view(it->value().data(), it->value().size()));
        }
        return std::make_unique<WsChatHandler>(&options_, behaviour_, forced);
      }) {}

}  // namespace llmload::emulator
