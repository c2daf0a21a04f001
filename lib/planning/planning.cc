#include "lib/planning/planning.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace llmload::planning {
namespace {

// Sum of clamp(lambda * w_i, lower_i, upper_i).
double ClampedSum(double lambda, const std::vector<double>& weights,
                  const std::vector<int64_t>& lower, const std::vector<int64_t>& upper) {
  double sum = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    sum += std::clamp(lambda * weights[i], static_cast<double>(lower[i]),
                      static_cast<double>(upper[i]));
  }
  return sum;
}

}  // namespace

absl::Status CheckWorkers(const std::vector<WorkerCapacity>& workers) {
  if (workers.empty()) {
    return absl::FailedPreconditionError("no workers to plan the run over");
  }
  for (size_t i = 0; i < workers.size(); ++i) {
    const WorkerCapacity& w = workers[i];
    if (w.id.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("worker #", i, " has an empty id"));
    }
    if (w.capacity <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "worker ", w.id, " declares capacity ", w.capacity, "; capacity must be > 0"));
    }
  }
  return absl::OkStatus();
}

std::vector<int32_t> SelectWorkers(const std::vector<WorkerCapacity>& workers, int64_t limit) {
  std::vector<int32_t> order(workers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return workers[a].capacity > workers[b].capacity;
  });
  const size_t k = static_cast<size_t>(std::clamp<int64_t>(limit, 0, order.size()));
  order.resize(k);
  std::sort(order.begin(), order.end());
  return order;
}

absl::StatusOr<std::vector<int64_t>> Apportion(int64_t total, const std::vector<double>& weights,
                                               const std::vector<int64_t>& lower,
                                               const std::vector<int64_t>& upper) {
  const size_t n = weights.size();
  if (n == 0 || lower.size() != n || upper.size() != n) {
    return absl::InvalidArgumentError("apportion: weights and bounds must be non-empty and equal");
  }
  int64_t sum_lower = 0;
  int64_t sum_upper = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!(weights[i] > 0) || !std::isfinite(weights[i])) {
      return absl::InvalidArgumentError(absl::StrCat("apportion: weight #", i, " is not > 0"));
    }
    if (lower[i] > upper[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat("apportion: bounds #", i, " are empty [", lower[i], ", ", upper[i], "]"));
    }
    sum_lower += lower[i];
    sum_upper += upper[i];
  }
  if (total < sum_lower || total > sum_upper) {
    return absl::InvalidArgumentError(absl::StrCat("apportion: total ", total,
                                                   " is outside the bounds' range [", sum_lower,
                                                   ", ", sum_upper, "]"));
  }

  // The ideal (real-valued) split: find lambda with sum clamp(lambda * w) ==
  // total by bisection; the clamped sum is continuous and non-decreasing.
  double lo = 0;
  double hi = 0;
  for (size_t i = 0; i < n; ++i) {
    hi = std::max(hi, static_cast<double>(upper[i]) / weights[i]);
  }
  for (int iter = 0; iter < 200 && lo < hi; ++iter) {
    const double mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) {
      break;
    }
    if (ClampedSum(mid, weights, lower, upper) < static_cast<double>(total)) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  std::vector<double> ideal(n);
  std::vector<int64_t> parts(n);
  int64_t assigned = 0;
  for (size_t i = 0; i < n; ++i) {
    ideal[i] = std::clamp(hi * weights[i], static_cast<double>(lower[i]),
                          static_cast<double>(upper[i]));
    // The epsilon absorbs bisection noise on exact integers (2.9999999 -> 3).
    parts[i] = std::clamp(static_cast<int64_t>(std::floor(ideal[i] + 1e-9)), lower[i], upper[i]);
    assigned += parts[i];
  }

  // Largest remainder, then repair: hand out (or take back) one unit at a
  // time where the part is furthest below (above) its ideal, ties to the
  // lower index. Terminates because sum(lower) <= total <= sum(upper).
  while (assigned < total) {
    size_t best = n;
    for (size_t i = 0; i < n; ++i) {
      if (parts[i] < upper[i] &&
          (best == n || ideal[i] - parts[i] > ideal[best] - parts[best])) {
        best = i;
      }
    }
    ++parts[best];
    ++assigned;
  }
  while (assigned > total) {
    size_t best = n;
    for (size_t i = 0; i < n; ++i) {
      if (parts[i] > lower[i] &&
          (best == n || parts[i] - ideal[i] > parts[best] - ideal[best])) {
        best = i;
      }
    }
    --parts[best];
    --assigned;
  }
  return parts;
}

std::vector<double> ApportionRate(double total, const std::vector<double>& weights) {
  const double sum = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<double> out(weights.size(), 0.0);
  if (sum <= 0) {
    return out;
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    out[i] = total * weights[i] / sum;
  }
  return out;
}

absl::StatusOr<std::vector<ShardPlan>> PlanClosed(int32_t clients, int32_t max_concurrent,
                                                  const std::vector<WorkerCapacity>& workers,
                                                  int32_t max_workers) {
  if (clients < 1 || clients > kMaxClients) {
    return absl::InvalidArgumentError(
        absl::StrCat("clients must be between 1 and ", kMaxClients, ", got ", clients));
  }
  if (max_concurrent < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_concurrent must be >= 0 (0: as many as clients), got ", max_concurrent));
  }
  if (max_workers < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_workers must be >= 0 (0: no limit), got ", max_workers));
  }
  if (absl::Status s = CheckWorkers(workers); !s.ok()) {
    return s;
  }

  const int32_t concurrency = max_concurrent == 0 ? clients : std::min(max_concurrent, clients);
  int64_t limit = std::min(clients, concurrency);
  if (max_workers > 0) {
    limit = std::min<int64_t>(limit, max_workers);
  }
  const std::vector<int32_t> chosen = SelectWorkers(workers, limit);
  const size_t k = chosen.size();

  // Clients in proportion to capacity, at least one each.
  std::vector<double> capacity(k);
  for (size_t i = 0; i < k; ++i) {
    capacity[i] = static_cast<double>(workers[chosen[i]].capacity);
  }
  absl::StatusOr<std::vector<int64_t>> client_counts =
      Apportion(clients, capacity, std::vector<int64_t>(k, 1), std::vector<int64_t>(k, clients));
  if (!client_counts.ok()) {
    return client_counts.status();
  }

  // Concurrency in proportion to each shard's clients, 1..clients each.
  std::vector<double> shard_clients(k);
  for (size_t i = 0; i < k; ++i) {
    shard_clients[i] = static_cast<double>((*client_counts)[i]);
  }
  absl::StatusOr<std::vector<int64_t>> concurrency_split =
      Apportion(concurrency, shard_clients, std::vector<int64_t>(k, 1), *client_counts);
  if (!concurrency_split.ok()) {
    return concurrency_split.status();
  }

  std::vector<ShardPlan> plan(k);
  int32_t next_client = 0;
  for (size_t i = 0; i < k; ++i) {
    ShardPlan& shard = plan[i];
    shard.worker_index = chosen[i];
    shard.worker_id = workers[chosen[i]].id;
    shard.client_begin = next_client;
    shard.client_count = static_cast<int32_t>((*client_counts)[i]);
    shard.max_concurrent = static_cast<int32_t>((*concurrency_split)[i]);
    next_client += shard.client_count;
  }
  return plan;
}

absl::StatusOr<std::vector<ShardPlan>> PlanDuration(int32_t connections,
                                                    const std::vector<WorkerCapacity>& workers,
                                                    int32_t max_workers) {
  if (connections < 1 || connections > kMaxClients) {
    return absl::InvalidArgumentError(
        absl::StrCat("connections must be between 1 and ", kMaxClients, ", got ", connections));
  }
  return PlanClosed(connections, connections, workers, max_workers);
}

absl::StatusOr<std::vector<ShardPlan>> PlanOpen(double rate_per_second, int32_t max_in_flight,
                                                const std::vector<WorkerCapacity>& workers,
                                                int32_t max_workers) {
  if (!(rate_per_second >= 0) || !std::isfinite(rate_per_second)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rate_per_second must be >= 0, got ", rate_per_second));
  }
  if (max_in_flight < 0 || max_in_flight > kMaxClients) {
    return absl::InvalidArgumentError(absl::StrCat("max_in_flight must be between 0 and ",
                                                   kMaxClients, ", got ", max_in_flight));
  }
  if (max_workers < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_workers must be >= 0 (0: no limit), got ", max_workers));
  }
  if (absl::Status s = CheckWorkers(workers); !s.ok()) {
    return s;
  }
  int64_t limit = static_cast<int64_t>(workers.size());
  if (max_workers > 0) {
    limit = std::min<int64_t>(limit, max_workers);
  }
  if (max_in_flight > 0) {
    limit = std::min<int64_t>(limit, max_in_flight);
  }
  const std::vector<int32_t> chosen = SelectWorkers(workers, limit);
  const size_t k = chosen.size();
  std::vector<double> capacity(k);
  double capacity_sum = 0;
  for (size_t i = 0; i < k; ++i) {
    capacity[i] = static_cast<double>(workers[chosen[i]].capacity);
    capacity_sum += capacity[i];
  }
  std::vector<int64_t> in_flight(k);
  if (max_in_flight > 0) {
    absl::StatusOr<std::vector<int64_t>> split = Apportion(
        max_in_flight, capacity, std::vector<int64_t>(k, 1), std::vector<int64_t>(k, max_in_flight));
    if (!split.ok()) {
      return split.status();
    }
    in_flight = *std::move(split);
  } else {
    for (size_t i = 0; i < k; ++i) {
      in_flight[i] = workers[chosen[i]].capacity;
    }
  }
  std::vector<ShardPlan> plan(k);
  int64_t next_client = 0;
  for (size_t i = 0; i < k; ++i) {
    if (next_client + in_flight[i] > kMaxClients) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the in-flight caps of the workers exceed ", kMaxClients,
          " sessions; set maxInFlight"));
    }
    ShardPlan& shard = plan[i];
    shard.worker_index = chosen[i];
    shard.worker_id = workers[chosen[i]].id;
    shard.client_begin = static_cast<int32_t>(next_client);
    shard.client_count = static_cast<int32_t>(in_flight[i]);
    shard.max_concurrent = shard.client_count;
    shard.rate_share = capacity[i] / capacity_sum;
    shard.rate_per_second = rate_per_second * shard.rate_share;
    next_client += in_flight[i];
  }
  return plan;
}

absl::StatusOr<std::vector<ShardPlan>> PlanForSpec(const v1::RunSpec& spec,
                                                   const std::vector<WorkerCapacity>& workers) {
  const v1::Load& load = spec.load();
  if (load.has_duration()) {
    return PlanDuration(load.duration().connections(), workers, spec.max_workers());
  }
  if (load.has_open()) {
    return PlanOpen(load.open().rate_per_second(), load.open().max_in_flight(), workers,
                    spec.max_workers());
  }
  return PlanClosed(load.closed().clients(), load.closed().max_concurrent(), workers,
                    spec.max_workers());
}

int64_t CountClients(const std::vector<v1::ClientSpan>& spans) {
  int64_t n = 0;
  for (const v1::ClientSpan& s : spans) {
    n += std::max(0, s.count());
  }
  return n;
}

std::vector<v1::ClientSpan> TakeClients(std::vector<v1::ClientSpan>& spans, int64_t n) {
  std::vector<v1::ClientSpan> out;
  size_t used = 0;
  while (n > 0 && used < spans.size()) {
    v1::ClientSpan& s = spans[used];
    if (s.count() <= n) {
      n -= s.count();
      out.push_back(s);
      ++used;
      continue;
    }
    v1::ClientSpan head = s;
    head.set_count(static_cast<int32_t>(n));
    out.push_back(head);
    s.set_begin(s.begin() + static_cast<int32_t>(n));
    s.set_count(s.count() - static_cast<int32_t>(n));
    n = 0;
  }
  spans.erase(spans.begin(), spans.begin() + static_cast<std::ptrdiff_t>(used));
  return out;
}

void AppendClient(std::vector<v1::ClientSpan>& spans, int32_t client, int32_t cycles) {
  if (!spans.empty()) {
    v1::ClientSpan& last = spans.back();
    if (last.cycles() == cycles && last.begin() + last.count() == client) {
      last.set_count(last.count() + 1);
      return;
    }
  }
  v1::ClientSpan s;
  s.set_begin(client);
  s.set_count(1);
  s.set_cycles(cycles);
  spans.push_back(s);
}

absl::StatusOr<std::vector<MovedPiece>> PlanMove(const MovedWork& work,
                                                 const std::vector<WorkerCapacity>& spare,
                                                 int64_t* unplaced) {
  *unplaced = 0;
  if (absl::Status s = CheckWorkers(spare); !s.ok()) {
    return s;
  }
  const int64_t clients = CountClients(work.clients);
  if (clients <= 0) {
    return absl::InvalidArgumentError("nothing to move: no client has work left");
  }
  if (work.max_concurrent <= 0) {
    return absl::InvalidArgumentError("the moved work has no concurrency");
  }
  // How many workers take a piece: each needs at least one client and one
  // session of concurrency.
  int64_t limit = clients;
  if (work.model != MoveModel::kDuration) {
    limit = std::min<int64_t>(limit, work.max_concurrent);
  }
  const std::vector<int32_t> chosen = SelectWorkers(spare, limit);
  const size_t k = chosen.size();
  std::vector<double> weight(k);
  std::vector<int64_t> cap(k);
  int64_t chosen_spare = 0;
  for (size_t i = 0; i < k; ++i) {
    cap[i] = spare[chosen[i]].capacity;
    weight[i] = static_cast<double>(cap[i]);
    chosen_spare += cap[i];
  }
  std::vector<MovedPiece> pieces(k);
  for (size_t i = 0; i < k; ++i) {
    pieces[i].worker_index = chosen[i];
    pieces[i].worker_id = spare[chosen[i]].id;
  }
  std::vector<v1::ClientSpan> rest = work.clients;
  switch (work.model) {
    case MoveModel::kClosed: {
      absl::StatusOr<std::vector<int64_t>> counts =
          Apportion(clients, weight, std::vector<int64_t>(k, 1), std::vector<int64_t>(k, clients));
      if (!counts.ok()) {
        return counts.status();
      }
      std::vector<double> count_weight(k);
      std::vector<int64_t> upper(k);
      int64_t upper_sum = 0;
      for (size_t i = 0; i < k; ++i) {
        count_weight[i] = static_cast<double>((*counts)[i]);
        upper[i] = std::min((*counts)[i], cap[i]);
        upper_sum += upper[i];
      }
      const int64_t concurrency =
          std::min<int64_t>({work.max_concurrent, chosen_spare, clients, upper_sum});
      absl::StatusOr<std::vector<int64_t>> conc =
          Apportion(concurrency, count_weight, std::vector<int64_t>(k, 1), upper);
      if (!conc.ok()) {
        return conc.status();
      }
      for (size_t i = 0; i < k; ++i) {
        pieces[i].clients = TakeClients(rest, (*counts)[i]);
        pieces[i].client_count = static_cast<int32_t>((*counts)[i]);
        pieces[i].max_concurrent = static_cast<int32_t>((*conc)[i]);
      }
      break;
    }
    case MoveModel::kDuration: {
      const int64_t placed = std::min(clients, chosen_spare);
      absl::StatusOr<std::vector<int64_t>> counts =
          Apportion(placed, weight, std::vector<int64_t>(k, 1), cap);
      if (!counts.ok()) {
        return counts.status();
      }
      for (size_t i = 0; i < k; ++i) {
        pieces[i].clients = TakeClients(rest, (*counts)[i]);
        pieces[i].client_count = static_cast<int32_t>((*counts)[i]);
        pieces[i].max_concurrent = pieces[i].client_count;
      }
      *unplaced = clients - placed;
      break;
    }
    case MoveModel::kOpen: {
      // The in-flight cap moves with its ids; the rate in proportion to
      // the spare capacity of the workers that take it.
      const int64_t slots = std::min<int64_t>({work.max_concurrent, clients, chosen_spare});
      absl::StatusOr<std::vector<int64_t>> caps =
          Apportion(slots, weight, std::vector<int64_t>(k, 1), cap);
      if (!caps.ok()) {
        return caps.status();
      }
      const std::vector<double> shares = ApportionRate(work.rate_share, weight);
      for (size_t i = 0; i < k; ++i) {
        pieces[i].clients = TakeClients(rest, (*caps)[i]);
        pieces[i].client_count = static_cast<int32_t>((*caps)[i]);
        pieces[i].max_concurrent = pieces[i].client_count;
        pieces[i].rate_share = shares[i];
      }
      *unplaced = std::min<int64_t>(work.max_concurrent, clients) - slots;
      break;
    }
  }
  return pieces;
}

}  // namespace llmload::planning
