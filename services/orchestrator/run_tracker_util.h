// File: run_tracker_util.h
//
// Helpers shared by the RunTracker's translation units (run_tracker.cc:
// runs, workers, verdicts; run_tracker_moves.cc: lost work). Internal to
// the orchestrator. Pure.

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "lib/planning/planning.h"
#include "llmload/v1/collector.pb.h"
#include "llmload/v1/run.pb.h"

namespace llmload::orchestrator::tracker_util {

// A failed seal is tried again after this long.
inline constexpr absl::Duration kSealRetry = absl::Milliseconds(500);
// Duration and open models: less load than this left is not worth moving.
inline constexpr absl::Duration kMinMovedLoad = absl::Milliseconds(500);

std::string Secs(absl::Duration d);
planning::MoveModel ModelOf(const v1::RunSpec& spec);
// The shard's clients with the cycles each had to run.
std::vector<v1::ClientSpan> ClientsOf(const v1::RunSpec& spec, const v1::Shard& shard);
// "clients 3-5,9, 12 cycles".
std::string DescribeSpans(const std::vector<v1::ClientSpan>& spans, bool with_cycles);
uint64_t SealedCounter(const v1::SealedShard& sealed, v1::Counter c);

}  // namespace llmload::orchestrator::tracker_util
