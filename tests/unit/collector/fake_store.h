// A BatchStore in memory whose writes can be held back (gate) or failed, so
// tests can observe what happens before and after a batch is durable.

#pragma once

#include <algorithm>
#include <set>
#include <string_view>
#include <utility>
#include <string>
#include <tuple>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/collector/store.h"

namespace llmload::collector {

class FakeStore final : public BatchStore {
 public:
  absl::Status Insert(absl::Span<const v1::SampleBatch* const> batches) override {
    absl::MutexLock lock(&mu_);
    ++insert_calls_;
    mu_.Await(absl::Condition(&gate_open_));
    if (!fail_.ok()) {
      return fail_;
    }
    for (const v1::SampleBatch* b : batches) {
      if (keys_.emplace(b->run_id(), b->worker_id() + "#" + std::to_string(b->epoch()),
                        b->sequence())
              .second) {
        stored_.push_back(*b);
      }
    }
    return absl::OkStatus();
  }

  absl::Status ForEach(
      absl::FunctionRef<absl::Status(const v1::SampleBatch&)> fn) override {
    std::vector<v1::SampleBatch> copy;
    {
      absl::MutexLock lock(&mu_);
      copy = stored_;
    }
    for (const auto& b : copy) {
      if (absl::Status s = fn(b); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> ReadRunPage(
      std::string_view run_id, int64_t after_row, int limit,
      absl::FunctionRef<void(int64_t row, const v1::SampleBatch&)> fn) override {
    std::vector<std::pair<int64_t, v1::SampleBatch>> page;
    {
      absl::MutexLock lock(&mu_);
      for (size_t i = static_cast<size_t>(std::max<int64_t>(after_row, 0));
           i < stored_.size() && static_cast<int>(page.size()) < limit; ++i) {
        if (stored_[i].run_id() == run_id) {
          page.emplace_back(static_cast<int64_t>(i) + 1, stored_[i]);
        }
      }
    }
    int64_t last = after_row;
    for (const auto& [row, b] : page) {
      fn(row, b);
      last = row;
    }
    return last;
  }

  absl::Status InsertSeal(const v1::SealShardRequest& seal) override {
    absl::MutexLock lock(&mu_);
    if (!fail_.ok()) {
      return fail_;
    }
    seals_.push_back(seal);
    return absl::OkStatus();
  }

  absl::Status ForEachSeal(
      absl::FunctionRef<absl::Status(const v1::SealShardRequest&)> fn) override {
    std::vector<v1::SealShardRequest> copy;
    {
      absl::MutexLock lock(&mu_);
      copy = seals_;
    }
    for (const auto& s : copy) {
      if (absl::Status st = fn(s); !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  }

  // Preloads a batch as if stored by an earlier process.
  void Preload(const v1::SampleBatch& b) {
    absl::MutexLock lock(&mu_);
    keys_.emplace(b.run_id(), b.worker_id() + "#" + std::to_string(b.epoch()), b.sequence());
    stored_.push_back(b);
  }
  void CloseGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = false;
  }
  void OpenGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = true;
  }
  void FailWith(absl::Status s) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(s);
  }
  // True once Insert was entered `n` times (it may still be held at the gate).
  bool WaitForInsertCalls(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return insert_calls_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }
  int InsertCalls() {
    absl::MutexLock lock(&mu_);
    return insert_calls_;
  }
  size_t NumStored() {
    absl::MutexLock lock(&mu_);
    return stored_.size();
  }

 private:
  absl::Mutex mu_;
  bool gate_open_ ABSL_GUARDED_BY(mu_) = true;
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
  int insert_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::tuple<std::string, std::string, uint64_t>> keys_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SampleBatch> stored_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SealShardRequest> seals_ ABSL_GUARDED_BY(mu_);
};

}  // namespace llmload::collector
