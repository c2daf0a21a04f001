// File: http_stream_session.h
//
// Session driver for the HTTP targets: OPENAI_CHAT, ANTHROPIC_MESSAGES,
// GEMINI and OPENAI_RESPONSES (SSE streams, or plain JSON with
// target.noStream) and HTTP_JSON (a non-streaming JSON request/response).
//
// A session owns one HTTP/1.1 keep-alive connection (http_connection.h),
// reused between its requests. The body is fed to the SSE parser as each
// read brings it, so nothing is assumed about how the target chunks it and
// memory stays bounded whatever it sends.
//
// Measures connect (TCP connect), session_setup (= connect for a session
// that needs nothing else), request (request sent -> response headers),
// ttft, chunk_gap (every gap between content events), itl (per token; tokens
// are counted as chunks unless the target reports usage, see below), tpot
// and e2e. Loop-confined.
//
// Tokens: the providers' usage (OpenAI completion_tokens, Anthropic
// output_tokens, Gemini candidatesTokenCount) when reported, else one token
// per content chunk. When usage reports N tokens over C chunks, itl records
// each chunk gap divided by the tokens that chunk carried on average (N/C),
// N/C times over, so itl and tpot are per token.
//
// Input tokens: the providers' prompt usage (OpenAI prompt_tokens,
// Anthropic message_start input_tokens, Gemini promptTokenCount, HTTP_JSON
// usage.prompt_tokens) when reported, else ceil(prompt bytes / 4), counted
// as estimated. A promptMessages entry goes out as the provider's message
// list; HTTP_JSON sends its last user message.

#pragma once

#include <memory>

#include "services/worker/shard.h"

namespace llmload::worker {

std::shared_ptr<Session> MakeHttpStreamSession(std::shared_ptr<LoopShard> shard, int32_t client_id);

}  // namespace llmload::worker
