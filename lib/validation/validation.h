// File: validation.h
//
// Checks a RunSpec before anything is stored or started. Pure: no I/O.
//
// Every error names the offending field by its path in proto3 JSON names,
// then the reason, then (where it helps) the value that was given:
//
//   spec.load.closed.clients: must be between 1 and 1000000, got 0
//   spec.target.headers["X Bad"]: header name must be an HTTP token ...
//   spec.thresholds[1].metric: unknown metric "p95"; one of connect, ...
//
// A spec with an invalid field gets INVALID_ARGUMENT (the first such field,
// in message order). A valid spec that asks for something not built yet (a
// protocol other than CENTRIFUGO_EMULATOR) gets UNIMPLEMENTED, e.g.
// "spec.target.protocol: REALM is not implemented yet". Invalid fields are
// reported before unimplemented ones. All three load models (closed,
// duration, open) are implemented.
//
//   if (absl::Status s = validation::ValidateRunSpec(spec); !s.ok()) return s;
//   validation::ApplyDefaults(&spec);
//
// Thread-safe (stateless).

#pragma once

#include "absl/status/status.h"
#include "llmload/v1/run.pb.h"

namespace llmload::validation {

inline constexpr int kMaxNameLength = 128;
inline constexpr int kMaxLoadUnits = 1000000;  // clients, cycles, concurrency
inline constexpr int kMaxLengthWords = 100000;
inline constexpr int kMaxLabels = 64;
inline constexpr int kMaxLabelValueLength = 256;
inline constexpr int kMaxThresholds = 64;
inline constexpr int kMaxStages = 100;  // open-model ramp stages
// Per-request records (spec.records): the cap's default and largest value.
inline constexpr int kDefaultMaxRecords = 10000;
inline constexpr int kMaxRecords = 1000000;
// RunSpec.cancellation.afterTokens: at most this many content chunks.
inline constexpr int kMaxCancelAfterTokens = 1000000;
// Prompt datasets (spec.target.prompts / promptMessages): entries, and bytes
// of text over all of them (the spec travels to every worker).
inline constexpr int kMaxPromptEntries = 100000;
inline constexpr int64_t kMaxPromptBytes = 16 * 1024 * 1024;
inline constexpr int kMaxPromptMessages = 256;  // messages in one conversation

// RunSpec.targetMetrics: selectors per run, and the scrape interval's
// default and bounds.
inline constexpr int kMaxTargetSeries = 64;
inline constexpr int64_t kDefaultTargetScrapeMs = 1000;
inline constexpr int64_t kMinTargetScrapeMs = 100;
inline constexpr int64_t kMaxTargetScrapeMs = 60000;

absl::Status ValidateRunSpec(const v1::RunSpec& spec);

// Fills the defaults a validated spec leaves implicit, so workers and reports
// see explicit values: load.closed.maxConcurrent 0 -> clients,
// load.open.distribution -> POISSON, thresholds[].kind inferred from metric,
// records.maxRecords 0 -> kDefaultMaxRecords when records are on,
// targetMetrics.interval unset or 0 -> 1s when targetMetrics is set.
void ApplyDefaults(v1::RunSpec* spec);

}  // namespace llmload::validation
