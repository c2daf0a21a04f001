// Test helpers: deterministic sample batches, and the reference MetricSet
// that saw the same samples directly.

#pragma once

#include <cstdint>
#include <string>

#include "lib/metrics/metrics.h"
#include "llmload/v1/stats.pb.h"

namespace llmload::collector::batch_util {

// A deterministic stream of latencies (microseconds) spread over several
// orders of magnitude, so merged percentiles differ from any single part's.
class SampleGenerator {
 public:
  explicit SampleGenerator(uint64_t seed) : state_(seed * 2654435761u + 1) {}
  uint64_t Next() {
    state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    const uint64_t r = state_ >> 33;
    const uint64_t scale = uint64_t{1} << (r % 20);  // 1 us .. ~0.5 s
    return 1 + (r / 20) % scale + scale / 2;
  }

 private:
  uint64_t state_;
};

// Records `n` samples of every latency metric and some counters into
// `batch_set` and `reference` alike.
inline void FillSamples(SampleGenerator& gen, int n, metrics::MetricSet& batch_set,
                        metrics::MetricSet& reference) {
  for (v1::Metric m : metrics::AllMetrics()) {
    for (int i = 0; i < n; ++i) {
      const uint64_t v = gen.Next();
      batch_set.RecordUs(m, v);
      reference.RecordUs(m, v);
    }
  }
  const uint64_t ok = static_cast<uint64_t>(n);
  batch_set.Add(v1::REQUESTS_OK, ok);
  reference.Add(v1::REQUESTS_OK, ok);
  batch_set.Add(v1::TOKENS, ok * 17);
  reference.Add(v1::TOKENS, ok * 17);
  batch_set.Add(v1::BYTES_IN, ok * 1000);
  reference.Add(v1::BYTES_IN, ok * 1000);
  batch_set.Add(v1::CYCLES, ok);
  reference.Add(v1::CYCLES, ok);
  batch_set.Add(v1::TIMEOUT, 1);
  reference.Add(v1::TIMEOUT, 1);
}

inline v1::SampleBatch MakeBatch(const std::string& run_id, const std::string& worker_id,
                                 uint64_t sequence, const metrics::MetricSet& set,
                                 bool final = false, int64_t active_sessions = 0) {
  v1::SampleBatch batch;
  batch.set_run_id(run_id);
  batch.set_worker_id(worker_id);
  batch.set_sequence(sequence);
  // One second per sequence number, from a fixed epoch.
  constexpr int64_t kEpochUs = 1'700'000'000'000'000;
  batch.set_interval_start_us(kEpochUs + static_cast<int64_t>(sequence - 1) * 1'000'000);
  batch.set_interval_end_us(kEpochUs + static_cast<int64_t>(sequence) * 1'000'000);
  batch.set_active_sessions(active_sessions);
  batch.set_final(final);
  set.AppendTo(batch);
  return batch;
}

// A batch of `n` fresh samples per metric; the samples also go to `reference`.
inline v1::SampleBatch MakeSampleBatch(SampleGenerator& gen, int n, const std::string& run_id,
                                       const std::string& worker_id, uint64_t sequence,
                                       metrics::MetricSet& reference, bool final = false,
                                       int64_t active_sessions = 0) {
  metrics::MetricSet set;
  FillSamples(gen, n, set, reference);
  return MakeBatch(run_id, worker_id, sequence, set, final, active_sessions);
}

}  // namespace llmload::collector::batch_util
