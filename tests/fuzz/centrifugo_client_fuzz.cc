// Fuzzes the worker's Centrifugo frame parser: never crash, and every event
// it reports points into the frame.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lib/protocol/centrifugo_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* parser = new llmload::protocol::centrifugo::ClientFrameParser();
  std::string_view frame(reinterpret_cast<const char*>(data), size);
  (void)parser->Parse(frame, [&](const llmload::protocol::centrifugo::ServerEvent& e) {
    if (e.token.size() > size || e.channel.size() > size || e.message.size() > size) {
      __builtin_trap();
    }
  });
  return 0;
}
