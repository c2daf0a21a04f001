// Fuzzes the worker's Centrifugo frame parser: never crash, and every event
// it reports points into the frame.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lib/protocol/centrifugo_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* parser = new llmload::protocol::centrifugo::ClientFrameParser();
  std::string_view frame(reinterpret_cast<const char*>(data), size);
  // A connect reply announces how many recovered publications follow it.
  uint32_t announced = 0;
  (void)parser->Parse(frame, [&](const llmload::protocol::centrifugo::ServerEvent& e) {
    if (e.token.size() > size || e.channel.size() > size || e.message.size() > size ||
        e.epoch.size() > size) {
      __builtin_trap();
    }
    if (e.kind == llmload::protocol::centrifugo::ServerEvent::Kind::kConnectReply) {
      announced = e.recovered_count;
    } else if (e.from_recovery) {
      if (announced == 0) {
        __builtin_trap();
      }
      --announced;
    }
  });
  return 0;
}
