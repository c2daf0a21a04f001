// File: session_util.h
//
// Small pieces every protocol driver uses: durations from the spec, the
// reconnection backoff, and per-token inter-token latency from chunk gaps.

#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "google/protobuf/duration.pb.h"
#include "lib/metrics/metrics.h"
#include "services/worker/http_pool.h"

namespace llmload::worker {

inline uint64_t Micros(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us < 0 ? 0 : static_cast<uint64_t>(us);
}

// The spec's duration when set and positive, else `fallback`.
std::chrono::milliseconds DurationOr(const google::protobuf::Duration& d, bool has,
                                     std::chrono::milliseconds fallback);

// Wait before reconnection attempt `attempt` (0-based): base * 2^attempt,
// with +-20 % jitter derived from `salt` (deterministic per session).
std::chrono::milliseconds BackoffDelay(std::chrono::milliseconds base, int attempt, uint64_t salt);

// Records itl from the gaps between content chunks of one response that
// carried `tokens` tokens in `chunks` chunks: one sample per gap when every
// chunk is one token, else each gap divided by the average tokens per chunk,
// that many times, so that itl is per token.
void RecordTokenGaps(metrics::MetricSet& m, const std::vector<uint64_t>& gaps, uint64_t tokens,
                     uint64_t chunks);

}  // namespace llmload::worker
