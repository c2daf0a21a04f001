// Fuzzes the SSE parser and every provider's stream decoder together: the
// input is split into reads at positions taken from its first byte, so chunk
// boundaries vary too. Must never crash, hang or grow without bound.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lib/protocol/provider_stream.h"
#include "lib/protocol/sse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using llmload::protocol::llm::Provider;
  using llmload::protocol::llm::StreamDecoder;
  using llmload::protocol::llm::StreamItem;
  if (size == 0) {
    return 0;
  }
  const size_t step = 1 + data[0] % 17;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (Provider p : {Provider::kOpenAiChat, Provider::kAnthropic, Provider::kGemini,
                     Provider::kOpenAiResponses}) {
    llmload::protocol::sse::SseParser parser(4096, 16384);
    StreamDecoder decoder(p);
    size_t text_bytes = 0;
    auto on_event = [&](const llmload::protocol::sse::SseEvent& e) {
      (void)decoder.OnEvent(e, [&](const StreamItem& it) { text_bytes += it.text.size(); });
    };
    for (size_t i = 0; i < input.size(); i += step) {
      if (!parser.Feed(input.substr(i, step), on_event).ok()) {
        break;
      }
    }
    if (text_bytes > input.size()) {
      __builtin_trap();  // decoded text cannot exceed the input
    }
    (void)llmload::protocol::llm::ParseCompletion(p, input);
  }
  (void)llmload::protocol::llm::ParseErrorBody(input);
  return 0;
}
