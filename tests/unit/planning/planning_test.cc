#include "lib/planning/planning.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llmload::planning {
namespace {

using ::testing::HasSubstr;

std::vector<WorkerCapacity> Workers(const std::vector<int32_t>& capacities) {
  std::vector<WorkerCapacity> out;
  for (size_t i = 0; i < capacities.size(); ++i) {
    out.push_back({"w" + std::to_string(i), capacities[i]});
  }
  return out;
}

// Checks every invariant PlanClosed promises; returns a description of the
// first violation.
::testing::AssertionResult PlanIsValid(const std::vector<ShardPlan>& plan, int32_t clients,
                                       int32_t max_concurrent,
                                       const std::vector<WorkerCapacity>& workers,
                                       int32_t max_workers) {
  const int32_t concurrency = max_concurrent == 0 ? clients : std::min(max_concurrent, clients);
  size_t k = std::min<size_t>(workers.size(), std::min(clients, concurrency));
  if (max_workers > 0) {
    k = std::min<size_t>(k, max_workers);
  }
  if (plan.size() != k) {
    return ::testing::AssertionFailure() << "expected " << k << " shards, got " << plan.size();
  }
  std::vector<int> seen(clients, 0);
  int32_t next = 0;
  int64_t concurrency_sum = 0;
  int32_t prev_index = -1;
  for (const ShardPlan& s : plan) {
    if (s.worker_index <= prev_index) {
      return ::testing::AssertionFailure() << "shards not in worker order";
    }
    prev_index = s.worker_index;
    if (s.worker_id != workers[s.worker_index].id) {
      return ::testing::AssertionFailure() << "worker id mismatch at index " << s.worker_index;
    }
    if (s.client_begin != next) {
      return ::testing::AssertionFailure()
             << "range not contiguous: begins at " << s.client_begin << ", expected " << next;
    }
    if (s.client_count < 1) {
      return ::testing::AssertionFailure() << "shard with " << s.client_count << " clients";
    }
    if (s.max_concurrent < 1 || s.max_concurrent > s.client_count) {
      return ::testing::AssertionFailure() << "shard concurrency " << s.max_concurrent
                                           << " outside [1, " << s.client_count << "]";
    }
    for (int32_t c = s.client_begin; c < s.client_begin + s.client_count; ++c) {
      if (c < 0 || c >= clients) {
        return ::testing::AssertionFailure() << "client id " << c << " out of range";
      }
      ++seen[c];
    }
    next = s.client_begin + s.client_count;
    concurrency_sum += s.max_concurrent;
  }
  for (int32_t c = 0; c < clients; ++c) {
    if (seen[c] != 1) {
      return ::testing::AssertionFailure() << "client " << c << " on " << seen[c] << " shards";
    }
  }
  if (concurrency_sum != concurrency) {
    return ::testing::AssertionFailure()
           << "concurrency sums to " << concurrency_sum << ", expected " << concurrency;
  }
  // The chosen workers are the k with the most capacity (ties: input order).
  std::vector<int32_t> order(workers.size());
  for (size_t i = 0; i < order.size(); ++i) {
    order[i] = static_cast<int32_t>(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return workers[a].capacity > workers[b].capacity;
  });
  order.resize(k);
  std::sort(order.begin(), order.end());
  for (size_t i = 0; i < k; ++i) {
    if (plan[i].worker_index != order[i]) {
      return ::testing::AssertionFailure() << "shard " << i << " on worker " << plan[i].worker_index
                                           << ", expected worker " << order[i];
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(PlanClosedTest, ExampleFromHeader) {
  auto plan = PlanClosed(10, 4, {{"w1", 100}, {"w2", 50}}, 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_EQ((*plan)[0].worker_id, "w1");
  EXPECT_EQ((*plan)[0].client_begin, 0);
  EXPECT_EQ((*plan)[0].client_count, 7);
  EXPECT_EQ((*plan)[0].max_concurrent, 3);
  EXPECT_EQ((*plan)[1].worker_id, "w2");
  EXPECT_EQ((*plan)[1].client_begin, 7);
  EXPECT_EQ((*plan)[1].client_count, 3);
  EXPECT_EQ((*plan)[1].max_concurrent, 1);
}

TEST(PlanClosedTest, SingleWorkerTakesEverything) {
  auto plan = PlanClosed(10, 0, Workers({5}), 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 1u);
  EXPECT_EQ((*plan)[0].client_begin, 0);
  EXPECT_EQ((*plan)[0].client_count, 10);
  EXPECT_EQ((*plan)[0].max_concurrent, 10);  // 0 means "as many as clients"
}

TEST(PlanClosedTest, EqualCapacitiesSplitEvenly) {
  auto plan = PlanClosed(12, 6, Workers({10, 10, 10}), 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 3u);
  for (const ShardPlan& s : *plan) {
    EXPECT_EQ(s.client_count, 4);
    EXPECT_EQ(s.max_concurrent, 2);
  }
}

TEST(PlanClosedTest, MaxConcurrentAboveClientsIsCapped) {
  auto plan = PlanClosed(3, 1000, Workers({1, 1}), 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(PlanIsValid(*plan, 3, 1000, Workers({1, 1}), 0));
  EXPECT_EQ((*plan)[0].max_concurrent + (*plan)[1].max_concurrent, 3);
}

TEST(PlanClosedTest, MoreWorkersThanClientsUsesOneWorkerPerClient) {
  const auto workers = Workers({5, 9, 1, 9, 7, 3});
  auto plan = PlanClosed(3, 0, workers, 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(PlanIsValid(*plan, 3, 0, workers, 0));
  ASSERT_EQ(plan->size(), 3u);
  // The three largest: w1 (9), w3 (9), w4 (7).
  EXPECT_EQ((*plan)[0].worker_id, "w1");
  EXPECT_EQ((*plan)[1].worker_id, "w3");
  EXPECT_EQ((*plan)[2].worker_id, "w4");
  for (const ShardPlan& s : *plan) {
    EXPECT_EQ(s.client_count, 1);
    EXPECT_EQ(s.max_concurrent, 1);
  }
}

TEST(PlanClosedTest, ConcurrencyBoundsShardCount) {
  const auto workers = Workers({10, 10, 10, 10});
  auto plan = PlanClosed(100, 2, workers, 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(PlanIsValid(*plan, 100, 2, workers, 0));
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_EQ((*plan)[0].client_count, 50);
  EXPECT_EQ((*plan)[1].client_count, 50);
}

TEST(PlanClosedTest, MaxWorkersLimitsShards) {
  const auto workers = Workers({1, 2, 3, 4, 5});
  auto plan = PlanClosed(100, 0, workers, 2);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(PlanIsValid(*plan, 100, 0, workers, 2));
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_EQ((*plan)[0].worker_id, "w3");
  EXPECT_EQ((*plan)[1].worker_id, "w4");
  EXPECT_EQ((*plan)[0].client_count, 44);  // 100 * 4/9 = 44.4
  EXPECT_EQ((*plan)[1].client_count, 56);  // 100 * 5/9 = 55.6
}

TEST(PlanClosedTest, TiesAreBrokenByInputOrder) {
  const auto workers = Workers({5, 5, 5, 5});
  auto plan = PlanClosed(10, 0, workers, 3);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 3u);
  EXPECT_EQ((*plan)[0].worker_id, "w0");
  EXPECT_EQ((*plan)[1].worker_id, "w1");
  EXPECT_EQ((*plan)[2].worker_id, "w2");
  // 10/3 each: the leftover unit goes to the lowest index.
  EXPECT_EQ((*plan)[0].client_count, 4);
  EXPECT_EQ((*plan)[1].client_count, 3);
  EXPECT_EQ((*plan)[2].client_count, 3);
}

TEST(PlanClosedTest, TinyCapacityStillGetsOneClient) {
  const auto workers = Workers({1, 1000});
  auto plan = PlanClosed(5, 5, workers, 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(PlanIsValid(*plan, 5, 5, workers, 0));
  EXPECT_EQ((*plan)[0].client_count, 1);
  EXPECT_EQ((*plan)[1].client_count, 4);
}

TEST(PlanClosedTest, NoWorkersIsFailedPrecondition) {
  auto plan = PlanClosed(10, 0, {}, 0);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("no workers"));
}

TEST(PlanClosedTest, ZeroOrNegativeCapacityIsInvalid) {
  for (int32_t capacity : {0, -3}) {
    auto plan = PlanClosed(10, 0, {{"a", 4}, {"bad", capacity}}, 0);
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(plan.status().message()), HasSubstr("worker bad"));
    EXPECT_THAT(std::string(plan.status().message()), HasSubstr("capacity"));
  }
}

TEST(PlanClosedTest, EmptyWorkerIdIsInvalid) {
  auto plan = PlanClosed(10, 0, {{"", 4}}, 0);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PlanClosedTest, BadArgumentsAreInvalid) {
  const auto workers = Workers({1});
  EXPECT_EQ(PlanClosed(0, 0, workers, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanClosed(-1, 0, workers, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanClosed(kMaxClients + 1, 0, workers, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanClosed(5, -1, workers, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanClosed(5, 0, workers, -1).status().code(), absl::StatusCode::kInvalidArgument);
  const absl::Status status = PlanClosed(0, 0, workers, 0).status();
  EXPECT_THAT(std::string(status.message()), HasSubstr("clients"));
}

// Randomized properties over many shapes, with fixed seeds.
class PlanClosedPropertyTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(PlanClosedPropertyTest, InvariantsHold) {
  std::mt19937 rng(GetParam());
  for (int iter = 0; iter < 300; ++iter) {
    const int32_t n_workers = std::uniform_int_distribution<int32_t>(1, 12)(rng);
    std::vector<int32_t> caps(n_workers);
    const bool skewed = iter % 3 == 0;
    for (int32_t& c : caps) {
      c = skewed ? std::uniform_int_distribution<int32_t>(1, 10000)(rng)
                 : std::uniform_int_distribution<int32_t>(1, 20)(rng);
    }
    const auto workers = Workers(caps);
    const int32_t clients = iter % 5 == 0 ? std::uniform_int_distribution<int32_t>(1, 8)(rng)
                                          : std::uniform_int_distribution<int32_t>(1, 5000)(rng);
    const int32_t max_concurrent = std::uniform_int_distribution<int32_t>(0, 2 * clients)(rng);
    const int32_t max_workers = std::uniform_int_distribution<int32_t>(0, n_workers + 2)(rng);
    auto plan = PlanClosed(clients, max_concurrent, workers, max_workers);
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(PlanIsValid(*plan, clients, max_concurrent, workers, max_workers))
        << "seed " << GetParam() << " iter " << iter << " clients " << clients
        << " max_concurrent " << max_concurrent << " workers " << n_workers
        << " max_workers " << max_workers;
  }
}

TEST_P(PlanClosedPropertyTest, ClientsProportionalToCapacityWithinOne) {
  std::mt19937 rng(GetParam());
  for (int iter = 0; iter < 300; ++iter) {
    const int32_t n_workers = std::uniform_int_distribution<int32_t>(1, 10)(rng);
    std::vector<int32_t> caps(n_workers);
    for (int32_t& c : caps) {
      c = std::uniform_int_distribution<int32_t>(1, 1000)(rng);
    }
    const auto workers = Workers(caps);
    const int32_t clients = std::uniform_int_distribution<int32_t>(1, 100000)(rng);
    auto plan = PlanClosed(clients, 0, workers, 0);
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(PlanIsValid(*plan, clients, 0, workers, 0));
    double total_capacity = 0;
    for (const ShardPlan& s : *plan) {
      total_capacity += workers[s.worker_index].capacity;
    }
    bool every_share_at_least_one = true;
    for (const ShardPlan& s : *plan) {
      if (clients * workers[s.worker_index].capacity / total_capacity < 1) {
        every_share_at_least_one = false;
      }
    }
    for (const ShardPlan& s : *plan) {
      const double ideal = clients * workers[s.worker_index].capacity / total_capacity;
      if (every_share_at_least_one) {
        EXPECT_LT(std::abs(s.client_count - ideal), 1.0)
            << "worker " << s.worker_id << " ideal " << ideal << " got " << s.client_count;
      } else {
        // The minimum of one client per shard takes precedence; others are
        // never given more than their ideal share rounded up.
        EXPECT_LE(s.client_count, std::max(1.0, std::ceil(ideal)));
      }
    }
    // Concurrency (== clients here) per shard equals the shard's clients.
    for (const ShardPlan& s : *plan) {
      EXPECT_EQ(s.max_concurrent, s.client_count);
    }
  }
}

TEST_P(PlanClosedPropertyTest, ConcurrencyProportionalToClientsWithinOne) {
  std::mt19937 rng(GetParam() + 1000);
  for (int iter = 0; iter < 300; ++iter) {
    const int32_t n_workers = std::uniform_int_distribution<int32_t>(1, 8)(rng);
    std::vector<int32_t> caps(n_workers);
    for (int32_t& c : caps) {
      c = std::uniform_int_distribution<int32_t>(1, 100)(rng);
    }
    const auto workers = Workers(caps);
    const int32_t clients = std::uniform_int_distribution<int32_t>(100, 10000)(rng);
    const int32_t max_concurrent = std::uniform_int_distribution<int32_t>(
        static_cast<int32_t>(clients / 2), clients)(rng);
    auto plan = PlanClosed(clients, max_concurrent, workers, 0);
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(PlanIsValid(*plan, clients, max_concurrent, workers, 0));
    for (const ShardPlan& s : *plan) {
      const double ideal = static_cast<double>(max_concurrent) * s.client_count / clients;
      if (ideal >= 1) {
        EXPECT_LT(std::abs(s.max_concurrent - ideal), 1.0);
      }
    }
  }
}

TEST_P(PlanClosedPropertyTest, IsDeterministic) {
  std::mt19937 rng(GetParam());
  std::vector<int32_t> caps(7);
  for (int32_t& c : caps) {
    c = std::uniform_int_distribution<int32_t>(1, 50)(rng);
  }
  const auto workers = Workers(caps);
  auto a = PlanClosed(997, 101, workers, 0);
  auto b = PlanClosed(997, 101, workers, 0);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].worker_index, (*b)[i].worker_index);
    EXPECT_EQ((*a)[i].client_count, (*b)[i].client_count);
    EXPECT_EQ((*a)[i].max_concurrent, (*b)[i].max_concurrent);
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, PlanClosedPropertyTest, ::testing::Values(1u, 7u, 42u, 2024u));

TEST(PlanClosedTest, LargestRunIsFast) {
  std::vector<int32_t> caps(200);
  for (size_t i = 0; i < caps.size(); ++i) {
    caps[i] = static_cast<int32_t>(1 + i * 13 % 97);
  }
  const auto workers = Workers(caps);
  auto plan = PlanClosed(kMaxClients, kMaxClients / 3, workers, 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(PlanIsValid(*plan, kMaxClients, kMaxClients / 3, workers, 0));
}

TEST(ApportionTest, RespectsBoundsAndSum) {
  auto parts = Apportion(10, {1, 1, 1}, {0, 0, 5}, {10, 10, 6});
  ASSERT_TRUE(parts.ok()) << parts.status();
  EXPECT_EQ((*parts)[0] + (*parts)[1] + (*parts)[2], 10);
  EXPECT_GE((*parts)[2], 5);
  EXPECT_LE((*parts)[2], 6);
}

TEST(ApportionTest, InfeasibleTotalIsInvalid) {
  EXPECT_EQ(Apportion(1, {1, 1}, {1, 1}, {5, 5}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Apportion(11, {1, 1}, {1, 1}, {5, 5}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Apportion(2, {1, 0}, {1, 1}, {5, 5}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ApportionRateTest, SplitsInProportion) {
  auto parts = ApportionRate(30.0, {1, 2});
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_DOUBLE_EQ(parts[0], 10.0);
  EXPECT_DOUBLE_EQ(parts[1], 20.0);
}

// ---- Duration and open models ----

TEST(PlanDurationTest, EveryConnectionOpenAtOnceOnExactlyOneWorker) {
  absl::StatusOr<std::vector<ShardPlan>> plan =
      PlanDuration(10, {{"a", 100}, {"b", 300}}, /*max_workers=*/0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_EQ((*plan)[0].client_count, 3);  // 10 * 100/400 = 2.5 -> 3 (largest remainder, tie low)
  EXPECT_EQ((*plan)[1].client_count, 7);
  for (const ShardPlan& s : *plan) {
    EXPECT_EQ(s.max_concurrent, s.client_count);
  }
  EXPECT_FALSE(PlanDuration(0, {{"a", 1}}, 0).ok());
  // More workers than connections: one connection each on the biggest.
  plan = PlanDuration(2, {{"a", 1}, {"b", 5}, {"c", 9}}, 0);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_EQ((*plan)[0].worker_id, "b");
  EXPECT_EQ((*plan)[1].worker_id, "c");
}

TEST(PlanOpenTest, RateAndInFlightFollowCapacity) {
  absl::StatusOr<std::vector<ShardPlan>> plan =
      PlanOpen(100, 40, {{"a", 100}, {"b", 300}}, /*max_workers=*/0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_DOUBLE_EQ((*plan)[0].rate_per_second, 25);
  EXPECT_DOUBLE_EQ((*plan)[1].rate_per_second, 75);
  EXPECT_DOUBLE_EQ((*plan)[0].rate_share, 0.25);
  EXPECT_EQ((*plan)[0].max_concurrent, 10);
  EXPECT_EQ((*plan)[1].max_concurrent, 30);
  EXPECT_EQ((*plan)[0].client_begin, 0);
  EXPECT_EQ((*plan)[1].client_begin, 10);
  // No cap: each worker's capacity.
  plan = PlanOpen(10, 0, {{"a", 7}, {"b", 9}}, 1);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->size(), 1u);  // maxWorkers
  EXPECT_EQ((*plan)[0].worker_id, "b");
  EXPECT_EQ((*plan)[0].max_concurrent, 9);
  EXPECT_DOUBLE_EQ((*plan)[0].rate_per_second, 10);
  // A cap of 1 uses one worker.
  plan = PlanOpen(10, 1, {{"a", 7}, {"b", 9}}, 0);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->size(), 1u);
  EXPECT_FALSE(PlanOpen(-1, 0, {{"a", 1}}, 0).ok());
  EXPECT_FALSE(PlanOpen(1, -1, {{"a", 1}}, 0).ok());
  EXPECT_EQ(PlanOpen(1, 0, {}, 0).status().code(), absl::StatusCode::kFailedPrecondition);
}

class OpenAndDurationPropertyTest : public ::testing::TestWithParam<int> {};

TEST_P(OpenAndDurationPropertyTest, RandomCapacitiesAndCounts) {
  std::mt19937 rng(static_cast<uint32_t>(GetParam()) * 7919u + 1u);
  std::uniform_int_distribution<int> nworkers(1, 12);
  std::uniform_int_distribution<int32_t> cap(1, 5000);
  std::uniform_int_distribution<int32_t> units(1, 300);
  std::uniform_int_distribution<int32_t> maxw(0, 6);
  for (int round = 0; round < 50; ++round) {
    std::vector<WorkerCapacity> workers;
    const int n = nworkers(rng);
    for (int i = 0; i < n; ++i) {
      workers.push_back({"w" + std::to_string(i), cap(rng)});
    }
    const int32_t max_workers = maxw(rng);
    // Duration: every connection id on exactly one shard, contiguous.
    const int32_t connections = units(rng);
    absl::StatusOr<std::vector<ShardPlan>> d = PlanDuration(connections, workers, max_workers);
    ASSERT_TRUE(d.ok()) << d.status();
    int32_t next = 0;
    for (const ShardPlan& s : *d) {
      EXPECT_EQ(s.client_begin, next);
      EXPECT_GE(s.client_count, 1);
      EXPECT_EQ(s.max_concurrent, s.client_count);
      next += s.client_count;
    }
    EXPECT_EQ(next, connections);
    EXPECT_LE(static_cast<int>(d->size()), max_workers > 0 ? max_workers : n);

    // Open: shares sum to 1, in-flight caps sum to the cap, ids disjoint,
    // more capacity never means less rate.
    const double rate = static_cast<double>(units(rng)) / 3.0;
    const int32_t in_flight = units(rng);
    absl::StatusOr<std::vector<ShardPlan>> o = PlanOpen(rate, in_flight, workers, max_workers);
    ASSERT_TRUE(o.ok()) << o.status();
    double share = 0;
    double total_rate = 0;
    int32_t total_in_flight = 0;
    next = 0;
    for (const ShardPlan& s : *o) {
      share += s.rate_share;
      total_rate += s.rate_per_second;
      total_in_flight += s.max_concurrent;
      EXPECT_GE(s.max_concurrent, 1);
      EXPECT_EQ(s.client_begin, next);
      EXPECT_EQ(s.client_count, s.max_concurrent);
      next += s.client_count;
    }
    EXPECT_NEAR(share, 1.0, 1e-9);
    EXPECT_NEAR(total_rate, rate, 1e-9 * rate + 1e-12);
    EXPECT_EQ(total_in_flight, in_flight);
    for (const ShardPlan& a : *o) {
      for (const ShardPlan& b : *o) {
        if (workers[a.worker_index].capacity > workers[b.worker_index].capacity) {
          EXPECT_GE(a.rate_per_second, b.rate_per_second);
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, OpenAndDurationPropertyTest, ::testing::Range(0, 20));

// ---- Moving the work of a shard that ended early ----

v1::ClientSpan Span(int32_t begin, int32_t count, int32_t cycles) {
  v1::ClientSpan s;
  s.set_begin(begin);
  s.set_count(count);
  s.set_cycles(cycles);
  return s;
}

TEST(SpanTest, TakeAppendAndCount) {
  std::vector<v1::ClientSpan> spans = {Span(0, 3, 2), Span(10, 2, 5)};
  EXPECT_EQ(CountClients(spans), 5);
  std::vector<v1::ClientSpan> head = TakeClients(spans, 4);
  ASSERT_EQ(head.size(), 2u);
  EXPECT_EQ(head[1].begin(), 10);
  EXPECT_EQ(head[1].count(), 1);
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].begin(), 11);
  EXPECT_EQ(spans[0].count(), 1);
  std::vector<v1::ClientSpan> built;
  AppendClient(built, 4, 3);
  AppendClient(built, 5, 3);
  AppendClient(built, 6, 1);
  AppendClient(built, 9, 1);
  ASSERT_EQ(built.size(), 3u);
  EXPECT_EQ(built[0].count(), 2);
}

TEST(PlanMoveTest, ClosedSpreadsClientsAndConcurrencyBySpareCapacity) {
  MovedWork work;
  work.model = MoveModel::kClosed;
  work.clients = {Span(10, 6, 3), Span(20, 4, 1)};
  work.max_concurrent = 5;
  int64_t unplaced = -1;
  absl::StatusOr<std::vector<MovedPiece>> p =
      PlanMove(work, {{"a", 30}, {"b", 10}, {"c", 60}}, &unplaced);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(unplaced, 0);
  int64_t clients = 0;
  int64_t cycles = 0;
  int32_t concurrency = 0;
  std::set<int32_t> seen;
  for (const MovedPiece& piece : *p) {
    EXPECT_GE(piece.max_concurrent, 1);
    EXPECT_LE(piece.max_concurrent, piece.client_count);
    EXPECT_EQ(CountClients(piece.clients), piece.client_count);
    clients += piece.client_count;
    concurrency += piece.max_concurrent;
    for (const v1::ClientSpan& s : piece.clients) {
      cycles += static_cast<int64_t>(s.count()) * s.cycles();
      for (int32_t k = 0; k < s.count(); ++k) {
        EXPECT_TRUE(seen.insert(s.begin() + k).second) << "client twice";
      }
    }
  }
  EXPECT_EQ(clients, 10);
  EXPECT_EQ(cycles, 6 * 3 + 4);
  EXPECT_EQ(concurrency, 5);
  // c has the most spare capacity: it takes the biggest piece.
  ASSERT_EQ(p->back().worker_id, "c");
  EXPECT_GE(p->back().client_count, p->front().client_count);
}

TEST(PlanMoveTest, DurationPlacesAtMostTheSpareCapacity) {
  MovedWork work;
  work.model = MoveModel::kDuration;
  work.clients = {Span(0, 50, 0)};
  work.max_concurrent = 50;
  int64_t unplaced = 0;
  absl::StatusOr<std::vector<MovedPiece>> p = PlanMove(work, {{"a", 20}, {"b", 10}}, &unplaced);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(unplaced, 20);
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].client_count, 20);
  EXPECT_EQ((*p)[0].max_concurrent, 20);
  EXPECT_EQ((*p)[1].client_count, 10);
}

TEST(PlanMoveTest, OpenSplitsTheRateShareAndTheInFlightCap) {
  MovedWork work;
  work.model = MoveModel::kOpen;
  work.clients = {Span(100, 40, 0)};
  work.max_concurrent = 40;
  work.rate_share = 0.4;
  int64_t unplaced = 0;
  absl::StatusOr<std::vector<MovedPiece>> p = PlanMove(work, {{"a", 300}, {"b", 100}}, &unplaced);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_NEAR((*p)[0].rate_share, 0.3, 1e-12);
  EXPECT_NEAR((*p)[1].rate_share, 0.1, 1e-12);
  EXPECT_EQ((*p)[0].max_concurrent + (*p)[1].max_concurrent, 40);
  EXPECT_EQ((*p)[0].clients[0].begin(), 100);
  EXPECT_EQ((*p)[1].clients[0].begin(), 100 + (*p)[0].client_count);
}

TEST(PlanMoveTest, Errors) {
  MovedWork work;
  work.clients = {Span(0, 2, 1)};
  work.max_concurrent = 1;
  int64_t unplaced = 0;
  EXPECT_EQ(PlanMove(work, {}, &unplaced).status().code(), absl::StatusCode::kFailedPrecondition);
  work.clients.clear();
  EXPECT_EQ(PlanMove(work, {{"a", 1}}, &unplaced).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace llmload::planning
