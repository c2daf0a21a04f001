// File: planning.h
//
// Splits a run's load across workers in proportion to their declared
// capacity. Pure: no I/O, no clocks, no randomness; the same input always
// gives the same plan.
//
// Planning a load model has two steps, shared by every model:
//
//   1. SelectWorkers() picks the k workers with the most capacity, where k is
//      bounded by how many units of work can be split (clients for the closed
//      model, connections for the duration model) and by max_workers.
//   2. Apportion() splits an integer total over the chosen workers in
//      proportion to a weight, with per-worker lower and upper bounds, by
//      largest remainder.
//
// PlanClosed() is the closed model (clients x cycles, bounded concurrency).
// The duration model will reuse both steps for connections; the open model
// will use SelectWorkers() and split its rate in proportion to capacity
// (ApportionRate()). Each model returns ShardPlans; fields a model does not
// use stay zero.
//
//   absl::StatusOr<std::vector<ShardPlan>> plan =
//       PlanClosed(/*clients=*/10, /*max_concurrent=*/4,
//                  {{"w1", 100}, {"w2", 50}}, /*max_workers=*/0);
//   // w1: clients [0, 7) concurrency 3; w2: clients [7, 10) concurrency 1
//
// Thread-safe (stateless).

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "llmload/v1/run.pb.h"

namespace llmload::planning {

// A worker as the planner sees it.
struct WorkerCapacity {
  std::string id;
  int32_t capacity = 0;  // sessions the worker can hold at once; must be > 0
};

// The part of a run one worker executes.
struct ShardPlan {
  int32_t worker_index = 0;  // index into the `workers` argument
  std::string worker_id;
  // Closed and duration models: contiguous client id range
  // [client_begin, client_begin + client_count).
  int32_t client_begin = 0;
  int32_t client_count = 0;
  // Sessions the shard may hold open at once.
  int32_t max_concurrent = 0;
  // Open model: arrivals per second this shard generates, and its fraction
  // of the run's arrivals (rate_per_second / total rate; scales ramp stages).
  double rate_per_second = 0;
  double rate_share = 0;
};

inline constexpr int32_t kMaxClients = 1000000;

// Closed model: `clients` sessions (ids 0..clients-1), at most
// `max_concurrent` open at once (0: as many as clients), over at most
// `max_workers` workers (0: no limit).
//
// Guarantees on success:
//   - k = min(#workers, clients, effective concurrency, max_workers if > 0)
//     shards, on the k workers with the most capacity (ties: input order),
//     ordered by worker index;
//   - every client id in [0, clients) is on exactly one shard; ranges are
//     contiguous and ascending; each shard has >= 1 client, and the counts
//     are proportional to capacity (largest remainder);
//   - each shard's max_concurrent is in [1, client_count] and they sum to
//     min(max_concurrent, clients).
//
// Errors: INVALID_ARGUMENT for clients outside 1..kMaxClients, negative
// max_concurrent or max_workers, or a worker with capacity <= 0 or an empty
// id; FAILED_PRECONDITION when there are no workers.
absl::StatusOr<std::vector<ShardPlan>> PlanClosed(int32_t clients, int32_t max_concurrent,
                                                  const std::vector<WorkerCapacity>& workers,
                                                  int32_t max_workers);

// Duration model: `connections` sessions cycling for the run's duration.
// The same split as PlanClosed with every connection open at once:
// client_count == max_concurrent on every shard.
absl::StatusOr<std::vector<ShardPlan>> PlanDuration(int32_t connections,
                                                    const std::vector<WorkerCapacity>& workers,
                                                    int32_t max_workers);

// Open model: `rate_per_second` arrivals (> 0, or 0 when ramp stages set
// the rate) with at most `max_in_flight` requests in flight over the run
// (0: each worker's capacity), over at most `max_workers` workers.
//
// Guarantees on success:
//   - k = min(#workers, max_workers if > 0, max_in_flight if > 0) shards on
//     the workers with the most capacity, ordered by worker index;
//   - rate_share is proportional to capacity and the shares sum to 1;
//     rate_per_second = rate_share * rate_per_second;
//   - max_in_flight: >= 1 each, proportional to capacity, summing to
//     max_in_flight (or each worker's capacity when 0);
//   - client ids: shard i owns [client_begin, client_begin + client_count)
//     with client_count == its max_concurrent; ranges are disjoint and
//     contiguous from 0.
absl::StatusOr<std::vector<ShardPlan>> PlanOpen(double rate_per_second, int32_t max_in_flight,
                                                const std::vector<WorkerCapacity>& workers,
                                                int32_t max_workers);

// ---- Moving the work of a shard that ended early ----
//
// A lost (or drained) worker's unfinished work goes to the workers with
// spare capacity. `clients` are the client ids that still have work, as
// spans; for the closed model each span's `cycles` is what every client in
// it has left, for the duration and open models it is 0. The model decides
// what moves:
//
//   closed:   every client with its cycles; the concurrency `max_concurrent`
//             is spread with the clients (at most each worker's spare);
//   duration: the connections, each worker taking at most its spare
//             (connections beyond the total spare are not placed);
//   open:     the rate share and the in-flight cap `max_concurrent`, both in
//             proportion to spare capacity, with ids from `clients`.
enum class MoveModel { kClosed, kDuration, kOpen };

struct MovedWork {
  MoveModel model = MoveModel::kClosed;
  std::vector<v1::ClientSpan> clients;
  int32_t max_concurrent = 0;
  double rate_share = 0;  // open model
};

struct MovedPiece {
  int32_t worker_index = 0;  // into the `spare` argument
  std::string worker_id;
  std::vector<v1::ClientSpan> clients;
  int32_t client_count = 0;
  int32_t max_concurrent = 0;
  double rate_share = 0;
};

// `spare`: the candidate workers with their spare capacity (sessions they
// can still take; each > 0). Pieces go to the workers with the most spare
// capacity, ordered by worker index. *unplaced receives the clients
// (duration: connections; open: in-flight slots) that did not fit.
// FAILED_PRECONDITION when `spare` is empty; INVALID_ARGUMENT for a work
// item with no client or a non-positive capacity.
absl::StatusOr<std::vector<MovedPiece>> PlanMove(const MovedWork& work,
                                                 const std::vector<WorkerCapacity>& spare,
                                                 int64_t* unplaced);

// Span helpers: the number of clients in `spans`; the first `n` of them
// (removed from `spans`); spans of consecutive ids with equal cycles merged.
int64_t CountClients(const std::vector<v1::ClientSpan>& spans);
std::vector<v1::ClientSpan> TakeClients(std::vector<v1::ClientSpan>& spans, int64_t n);
void AppendClient(std::vector<v1::ClientSpan>& spans, int32_t client, int32_t cycles);

// ---- Building blocks (public so every load model shares them) ----

// Checks that `workers` is non-empty and every capacity is > 0.
absl::Status CheckWorkers(const std::vector<WorkerCapacity>& workers);

// Indices of the min(limit, #workers) workers with the most capacity (ties:
// input order), returned in ascending index order. `limit` must be >= 1.
std::vector<int32_t> SelectWorkers(const std::vector<WorkerCapacity>& workers, int64_t limit);

// Splits `total` into integers n_i with lower[i] <= n_i <= upper[i] and
// sum n_i == total, as close as possible to the proportional ideal
// q_i = clamp(lambda * weights[i], lower[i], upper[i]) with sum q_i == total:
// n_i is floor(q_i) or ceil(q_i), the units left over going to the largest
// fractional parts (ties: lower index).
//
// Requires: equal sizes, weights > 0, lower <= upper, and
// sum(lower) <= total <= sum(upper); INVALID_ARGUMENT otherwise.
absl::StatusOr<std::vector<int64_t>> Apportion(int64_t total, const std::vector<double>& weights,
                                               const std::vector<int64_t>& lower,
                                               const std::vector<int64_t>& upper);

// Splits a real-valued total (e.g. an arrival rate) in exact proportion to
// the weights (all > 0). The parts sum to `total` up to rounding.
std::vector<double> ApportionRate(double total, const std::vector<double>& weights);

// The plan of a whole run spec: dispatches on its load model (closed,
// duration or open) with the spec's maxWorkers.
absl::StatusOr<std::vector<ShardPlan>> PlanForSpec(const v1::RunSpec& spec,
                                                   const std::vector<WorkerCapacity>& workers);

}  // namespace llmload::planning
