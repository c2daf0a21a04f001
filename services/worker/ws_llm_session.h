// File: ws_llm_session.h
//
// Session driver for the WebSocket LLM protocols WS_CHAT and REALM (see
// lib/protocol/ws_llm_client.h): one WebSocket per session, set up once
// (upgrade, Realm authentication with the API key, until the target says it
// is ready), then one request at a time: chunks until the completion.
//
// Measures connect (TCP connect -> upgrade done), session_setup (session
// start -> ready), ttft, chunk_gap, itl (per token: the target's reported
// token count when it gives one, else one token per chunk), tpot and e2e.
// Error frames are classified (rate limits honour the wait the target
// names); a lost connection is counted and re-established with backoff.
// Loop-confined.

#pragma once

#include <memory>

#include "services/worker/shard.h"

namespace llmload::worker {

std::shared_ptr<Session> MakeWsLlmSession(std::shared_ptr<LoopShard> shard, int32_t client_id);

}  // namespace llmload::worker
