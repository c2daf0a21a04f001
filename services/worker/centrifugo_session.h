// File: centrifugo_session.h
//
// The CENTRIFUGO_EMULATOR session driver: one client of the Centrifugo-based
// LLM emulator, with the lifecycle of the original TypeScript client
// (shared/protocols/llm-emulator-api.md §5):
//
//   POST /api/sessions/create -> WebSocket /connection/websocket, connect
//   command with the JWT -> connect reply (session ready)
//   per cycle: POST /api/run; tokens arrive as publications; {"done":true}
//   ends the response
//   close the WebSocket, DELETE /api/sessions/{id}
//
// Measures connect, session_setup, request (the /api/run round trip), ttft,
// itl, tpot and e2e, and classifies every failure. Loop-confined.

#pragma once

#include <memory>

#include "services/worker/shard.h"

namespace llmload::worker {

std::shared_ptr<Session> MakeCentrifugoSession(std::shared_ptr<LoopShard> shard, int32_t client_id);

}  // namespace llmload::worker
