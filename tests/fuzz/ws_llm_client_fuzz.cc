// Fuzzes the WS_CHAT and REALM frame parsers: never crash; chunk text always
// points into the frame.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lib/protocol/ws_llm_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using llmload::protocol::wsllm::Dialect;
  static auto* chat = new llmload::protocol::wsllm::WsLlmClient(Dialect::kWsChat);
  static auto* realm = new llmload::protocol::wsllm::WsLlmClient(Dialect::kRealm);
  std::string_view frame(reinterpret_cast<const char*>(data), size);
  for (auto* c : {chat, realm}) {
    (void)c->Parse(frame, [&](const llmload::protocol::wsllm::WsEvent& e) {
      if (e.text.size() > size || e.error_message.size() > size) {
        __builtin_trap();
      }
    });
  }
  return 0;
}
