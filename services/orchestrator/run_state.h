// File: run_state.h
//
// Bookkeeping on a v1::Run that does not depend on the gRPC edge: building a
// run from a plan, summing shard progress, deciding the run state from the
// shard states, and event text. Time comes in as a Timestamp argument.
//
// Thread-compatible.

#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/timestamp.pb.h"
#include "lib/planning/planning.h"
#include "llmload/v1/run.pb.h"

namespace llmload::orchestrator {

bool IsTerminal(v1::RunState state);
bool IsTerminal(v1::ShardState state);

// "w1: clients 0-6 (concurrency 3)".
// For the open model: "w1: 12.50 req/s, in flight <= 100 (ids 0-99)".
std::string DescribeShard(const v1::Shard& shard);

// A PENDING run with one SHARD_ASSIGNED shard per plan entry.
v1::Run NewRun(const std::string& id, const v1::RunSpec& spec,
               const std::vector<planning::ShardPlan>& plan,
               const google::protobuf::Timestamp& now);

// How long the load of a duration or open run lasts (0 for closed).
double LoadSeconds(const v1::RunSpec& spec);

// "closed: 10 clients x 5 cycles, at most 10 concurrent" and the like.
std::string DescribeLoad(const v1::RunSpec& spec);

// Cycles the whole run (or one shard) has to do (closed model; 0 otherwise).
int64_t TotalCycles(const v1::RunSpec& spec);
int64_t ShardCycles(const v1::RunSpec& spec, const v1::Shard& shard);

// run.progress = sum over shards (requests_lost too); cycles_total =
// clients * cyclesPerClient;
// rejection_reason = "w1: <reason>; w2: <reason>" over the shards with
// rejected batches.
void SumProgress(v1::Run* run);

// The state the run should be in given its shards: FAILED if any shard
// FAILED; a shard that ended early (LOST, DRAINED, or CANCELLED without a
// stop request) counts as done once settled (sealed, its work moved) and
// keeps the run going until then; once stop was requested, CANCELLED when
// every other shard is CANCELLED or DONE; COMPLETED when every other shard
// is DONE; else the current state.
v1::RunState DecideState(const v1::Run& run, bool stop_requested);

void AddEvent(v1::Run* run, const google::protobuf::Timestamp& now, std::string message);

// Moves the run to a terminal state: state, finished_at, an event, and the
// error (FAILED only).
void FinishRun(v1::Run* run, v1::RunState state, const google::protobuf::Timestamp& now,
               const std::string& error);

}  // namespace llmload::orchestrator
