// Fuzzes the WS_CHAT and REALM frame parsers: never crash; chunk text always
// points into the frame; and the allocation-free fast path for content
// chunks agrees with the DOM parse on every frame it accepts.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

#include "lib/protocol/ws_llm_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using llmload::protocol::wsllm::Dialect;
  using llmload::protocol::wsllm::WsEvent;
  static auto* chat = new llmload::protocol::wsllm::WsLlmClient(Dialect::kWsChat);
  static auto* realm = new llmload::protocol::wsllm::WsLlmClient(Dialect::kRealm);
  std::string_view frame(reinterpret_cast<const char*>(data), size);
  for (auto* c : {chat, realm}) {
    (void)c->Parse(frame, [&](const WsEvent& e) {
      if (e.text.size() > size || e.error_message.size() > size ||
          e.tool_call_id.size() > size || e.tool_name.size() > size) {
        __builtin_trap();
      }
    });
    WsEvent fast;
    if (!llmload::protocol::wsllm::ParseChunkFast(c->dialect(), frame, &fast)) {
      continue;
    }
    // The DOM parse of the same frame: one chunk event, same id and text.
    static auto* dom_chat = new llmload::protocol::wsllm::WsLlmClient(Dialect::kWsChat);
    static auto* dom_realm = new llmload::protocol::wsllm::WsLlmClient(Dialect::kRealm);
    auto* dom = c == chat ? dom_chat : dom_realm;
    dom->set_fast_path(false);
    const std::string fast_id(fast.id), fast_text(fast.text);
    int events = 0;
    bool same = true;
    const absl::Status s = dom->Parse(frame, [&](const WsEvent& e) {
      ++events;
      same = same && e.kind == WsEvent::Kind::kChunk && e.id == fast_id && e.text == fast_text;
    });
    if (!s.ok()) {
      __builtin_trap();
    }
    if (events != 1 || !same) {
      __builtin_trap();
    }
  }
  return 0;
}
