// Fuzzes the client side of RFC 6455: the upgrade-response check and the
// frame reader, with the input cut into reads at a size the first byte
// picks. Never crash; messages never exceed the limit; what the reader holds
// between reads stays bounded by the limit.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lib/protocol/ws_framing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace ws = llmload::protocol::ws;
  if (size == 0) {
    return 0;
  }
  constexpr size_t kMax = 4096;
  const size_t step = 1 + data[0] % 64;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const ws::UpgradeResponse up = ws::ParseUpgradeResponse(rest, "dGhlIHNhbXBsZSBub25jZQ==");
  if (up.state == ws::UpgradeResponse::State::kAccepted) {
    if (up.header_bytes > rest.size()) {
      __builtin_trap();
    }
    rest.remove_prefix(up.header_bytes);
  }
  ws::FrameReader reader(kMax);
  while (!rest.empty()) {
    const std::string_view read = rest.substr(0, std::min(step, rest.size()));
    rest.remove_prefix(read.size());
    const absl::Status s = reader.Feed(read, [&](ws::Opcode op, std::string_view payload) {
      if (payload.size() > kMax) {
        __builtin_trap();
      }
      if (op == ws::Opcode::kClose) {
        ws::ClosePayload close;
        (void)ws::ParseClosePayload(payload, &close);
      }
    });
    if (reader.buffered() > kMax + 14) {
      __builtin_trap();
    }
    if (!s.ok()) {
      break;
    }
  }
  return 0;
}
