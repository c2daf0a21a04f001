// File: metrics_text.h
//
// The emulator's GET /metrics: what GET /stats reports, in the Prometheus
// text format (0.0.4), so a load test can scrape the target's own view of
// the load beside its client-side numbers (RunSpec.targetMetrics). Every
// value is this process's, as in /stats; each series carries a `process`
// label (the process's index in its --processes group).
//
//   llmload_emulator_requests_total{process,protocol}        counter
//   llmload_emulator_abandoned_total{process,protocol}       counter
//   llmload_emulator_tokens_sent_total{process,protocol}     counter
//   llmload_emulator_connections_accepted_total{process}     counter
//   llmload_emulator_open_connections{process}               gauge
//   llmload_emulator_token_gap_seconds{process,protocol,le}  histogram
//
// protocol is the name /stats uses (OPENAI_CHAT, ...). The token-gap
// histogram has fixed `le` bounds; a sample counts under the first bound at
// or above the upper edge of its llmload histogram bucket (at most 0.1 %
// above the sample), and _sum is exact in microseconds.
//
// Pure apart from reading Behaviour's thread-safe counters.

#pragma once

#include <cstdint>
#include <string>

#include "services/emulator/behaviour.h"

namespace llmload::emulator {

struct ConnectionCounts {
  uint64_t accepted = 0;
  int64_t open = 0;
};

std::string MetricsText(const Behaviour& behaviour, int32_t process, ConnectionCounts connections);

}  // namespace llmload::emulator
