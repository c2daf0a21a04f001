#include "services/collector/ingest_pipeline.h"

#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "lib/common/log.h"

namespace llmload::collector {
namespace {

v1::IngestAck AckFor(const v1::SampleBatch& batch) {
  v1::IngestAck ack;
  ack.set_run_id(batch.run_id());
  ack.set_worker_id(batch.worker_id());
  ack.set_sequence(batch.sequence());
  ack.set_epoch(batch.epoch());
  return ack;
}

}  // namespace

IngestPipeline::IngestPipeline(BatchStore* store, RunRegistry* registry,
                               IngestCounters* counters, size_t max_group)
    : store_(store),
      registry_(registry),
      counters_(counters),
      max_group_(max_group == 0 ? 1 : max_group),
      thread_([this] { Loop(); }) {}

IngestPipeline::~IngestPipeline() { Stop(); }

void IngestPipeline::Submit(v1::SampleBatch batch, Callback done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      Item item;
      item.batch = std::move(batch);
      item.done = std::move(done);
      queue_.push_back(std::move(item));
      return;
    }
  }
  done(absl::UnavailableError("the collector is shutting down"));
}

void IngestPipeline::SubmitSeal(v1::SealShardRequest seal, SealCallback done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      Item item;
      item.is_seal = true;
      item.seal = std::move(seal);
      item.seal_done = std::move(done);
      queue_.push_back(std::move(item));
      return;
    }
  }
  done(absl::UnavailableError("the collector is shutting down"));
}

void IngestPipeline::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) {
    thread_.join();
  }
}

void IngestPipeline::Loop() {
  std::vector<Item> group;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](IngestPipeline* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->stopping_ || !p->queue_.empty();
          },
          this));
      if (queue_.empty()) {
        return;  // stopping, and everything queued was processed
      }
      // A seal is processed alone, between the batches queued before and
      // after it.
      if (queue_.front().is_seal) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      } else {
        while (!queue_.empty() && !queue_.front().is_seal && group.size() < max_group_) {
          group.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
    }
    if (group.size() == 1 && group.front().is_seal) {
      ProcessSeal(group.front());
    } else {
      Process(group);
    }
    group.clear();
  }
}

void IngestPipeline::CapRecords(v1::SampleBatch& batch,
                                absl::flat_hash_map<std::string, uint64_t>& room) {
  if (batch.records_size() == 0) {
    return;
  }
  auto it = room.find(batch.run_id());
  if (it == room.end()) {
    it = room.emplace(batch.run_id(), registry_->RecordRoom(batch.run_id())).first;
  }
  const auto n = static_cast<uint64_t>(batch.records_size());
  if (n <= it->second) {
    it->second -= n;
    return;
  }
  // Past the run's cap: the batch is stored without the excess, so a replay
  // finds exactly what was kept.
  const uint64_t excess = n - it->second;
  batch.mutable_records()->DeleteSubrange(static_cast<int>(it->second),
                                          static_cast<int>(excess));
  batch.set_records_dropped(batch.records_dropped() + excess);
  it->second = 0;
}

void IngestPipeline::ProcessSeal(Item& item) {
  if (absl::Status stored = store_->InsertSeal(item.seal); !stored.ok()) {
    LLMLOAD_LOG(kError, "Storing a seal failed; it is not applied.")
        .Kv("run_id", item.seal.run_id())
        .Kv("worker_id", item.seal.worker_id())
        .Kv("error", std::string(stored.message()));
    item.seal_done(absl::UnavailableError("storing the seal failed: " +
                                          std::string(stored.message())));
    return;
  }
  v1::SealedShard sealed = registry_->Seal(item.seal);
  LLMLOAD_LOG(kInfo, "Sealed a shard: its batches are refused from now on.")
      .Kv("run_id", item.seal.run_id())
      .Kv("worker_id", item.seal.worker_id())
      .Kv("epoch", item.seal.epoch())
      .Kv("batches", sealed.batches())
      .Kv("lost", sealed.lost());
  item.seal_done(std::move(sealed));
}

void IngestPipeline::Process(std::vector<Item>& group) {
  enum class Kind { kStore, kDuplicate, kRejected, kDuplicateInGroup, kFenced };
  struct Plan {
    Kind kind;
    v1::IngestAck ack;
  };
  std::vector<Plan> plans;
  plans.reserve(group.size());
  std::vector<const v1::SampleBatch*> to_store;
  // Keys stored by this group: a second copy in the same group is a duplicate
  // (and its ack, like every ack, waits for the commit).
  absl::flat_hash_set<std::tuple<std::string, std::string, uint64_t, uint64_t>> keys;
  // Per-request records this group adds per run, against the run's cap.
  absl::flat_hash_map<std::string, uint64_t> room;
  // Each batch is decoded (and fully validated) once, here; the check before
  // the commit and the merge after it use what was decoded.
  std::vector<std::optional<DecodedBatch>> decoded(group.size());

  for (size_t i = 0; i < group.size(); ++i) {
    const v1::SampleBatch& batch = group[i].batch;
    Plan plan{Kind::kStore, AckFor(batch)};
    absl::StatusOr<ApplyResult> check = absl::UnknownError("not checked");
    if (absl::StatusOr<DecodedBatch> d = RunRegistry::Decode(batch); d.ok()) {
      decoded[i].emplace(*std::move(d));
      // Only this thread applies, so what Check accepts now, Apply accepts
      // after the commit (but for an overflow two batches of one group cause
      // together, handled below).
      check = registry_->Check(*decoded[i]);
    } else {
      check = d.status();
    }
    if (!check.ok()) {
      plan.kind = Kind::kRejected;
      plan.ack.set_error(std::string(check.status().message()));
    } else if (*check == ApplyResult::kDuplicate) {
      plan.kind = Kind::kDuplicate;
    } else if (*check == ApplyResult::kFenced) {
      plan.kind = Kind::kFenced;
    } else if (!keys.emplace(batch.run_id(), batch.worker_id(), batch.epoch(), batch.sequence())
                    .second) {
      plan.kind = Kind::kDuplicateInGroup;
    } else {
      CapRecords(group[i].batch, room);
      to_store.push_back(&batch);
    }
    plans.push_back(std::move(plan));
  }

  const absl::Status stored = to_store.empty() ? absl::OkStatus() : store_->Insert(to_store);
  if (stored.ok() && !to_store.empty()) {
    counters_->commits.fetch_add(1, std::memory_order_relaxed);
  }
  if (!stored.ok()) {
    LLMLOAD_LOG(kError, "Storing batches failed; they are not acked.")
        .Kv("batches", to_store.size())
        .Kv("error", std::string(stored.message()));
  }

  for (size_t i = 0; i < group.size(); ++i) {
    Plan& plan = plans[i];
    const v1::SampleBatch& batch = group[i].batch;
    std::optional<absl::Status> failure;
    switch (plan.kind) {
      case Kind::kRejected:
        counters_->rejected.fetch_add(1, std::memory_order_relaxed);
        LLMLOAD_LOG(kWarn, "Rejected an invalid batch.")
            .Kv("run_id", batch.run_id())
            .Kv("worker_id", batch.worker_id())
            .Kv("sequence", batch.sequence())
            .Kv("error", plan.ack.error());
        break;
      case Kind::kDuplicate:
        counters_->duplicate.fetch_add(1, std::memory_order_relaxed);
        plan.ack.set_duplicate(true);
        break;
      case Kind::kFenced:
        counters_->fenced.fetch_add(1, std::memory_order_relaxed);
        plan.ack.set_fenced(true);
        LLMLOAD_LOG(kDebug, "Refused a batch of a sealed shard.")
            .Kv("run_id", batch.run_id())
            .Kv("worker_id", batch.worker_id())
            .Kv("epoch", batch.epoch())
            .Kv("sequence", batch.sequence());
        break;
      case Kind::kDuplicateInGroup:
        if (stored.ok()) {
          counters_->duplicate.fetch_add(1, std::memory_order_relaxed);
          plan.ack.set_duplicate(true);
        } else {
          failure = absl::UnavailableError("storing the batch failed: " +
                                           std::string(stored.message()));
        }
        break;
      case Kind::kStore:
        if (!stored.ok()) {
          failure = absl::UnavailableError("storing the batch failed: " +
                                           std::string(stored.message()));
          break;
        }
        // kStore only for a batch that decoded; dropping records (CapRecords)
        // left its histograms and counters as decoded.
        if (absl::StatusOr<ApplyResult> r = registry_->Apply(*decoded[i]); !r.ok()) {
          // Stored but not applicable (its totals overflow together with an
          // earlier batch of this group): rejected, as a replay will find.
          counters_->rejected.fetch_add(1, std::memory_order_relaxed);
          plan.ack.set_error(std::string(r.status().message()));
          LLMLOAD_LOG(kError, "A stored batch does not apply; rejected.")
              .Kv("run_id", batch.run_id())
              .Kv("worker_id", batch.worker_id())
              .Kv("sequence", batch.sequence())
              .Kv("error", plan.ack.error());
        } else if (*r == ApplyResult::kDuplicate) {
          counters_->duplicate.fetch_add(1, std::memory_order_relaxed);
          plan.ack.set_duplicate(true);
        } else if (*r == ApplyResult::kFenced) {
          counters_->fenced.fetch_add(1, std::memory_order_relaxed);
          plan.ack.set_fenced(true);
        } else {
          counters_->applied.fetch_add(1, std::memory_order_relaxed);
        }
        break;
    }
    if (failure.has_value()) {
      group[i].done(*std::move(failure));
    } else {
      group[i].done(std::move(plan.ack));
    }
  }
}

}  // namespace llmload::collector
