// File: run_relay_codec.h
//
// The one message the processes of a multi-process emulator (--processes)
// send each other: "run this plan for session <id>". With SO_REUSEPORT the
// kernel puts each connection in any process, so a Centrifugo session's
// /api/run may reach a process that does not hold the session's WebSocket.
// That process sends the planned run to its siblings, and the one that holds
// the subscriber streams it (as a Centrifugo node hands a publication to the
// node of the subscriber through its broker).
//
// A frame is a 4-byte big-endian payload length, then the payload:
//   u8  kind (1 = run)
//   u64 request index
//   u8  fault (Fault), u32 fault_at
//   u32 n, n bytes: session id
//   u32 tokens, then for each: u32 n, n bytes
//   u32 offsets, then for each: i64 nanoseconds
// The plan is sent whole (words and gaps), so the receiver needs neither the
// prompt nor the same request counter to stream exactly what the sender
// answered.
//
// Pure: bytes in, value out. The decoder refuses anything malformed
// (truncated, trailing bytes, unknown kind or fault, offsets that do not go
// with the tokens) with INVALID_ARGUMENT.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "services/emulator/behaviour.h"

namespace llmload::emulator {

// Larger payloads are refused (a plan of 100 000 words is about 2 MiB).
inline constexpr uint32_t kMaxRelayPayloadBytes = 16u << 20;
inline constexpr size_t kRelayHeaderBytes = 4;

struct RelayedRun {
  std::string session_id;
  ResponsePlan plan;
};

// The whole frame: header and payload.
std::string EncodeRunFrame(std::string_view session_id, const ResponsePlan& plan);

// The payload length a frame header announces (the header must be
// kRelayHeaderBytes long).
uint32_t DecodeFrameLength(std::string_view header);

// One payload (without its header). The plan's text is rebuilt from its
// tokens.
absl::StatusOr<RelayedRun> DecodeRunPayload(std::string_view payload);

}  // namespace llmload::emulator
