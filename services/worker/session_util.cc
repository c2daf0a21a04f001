#include "services/worker/session_util.h"

#include <algorithm>
#include <random>

#include "absl/time/time.h"

namespace llmload::worker {

std::chrono::milliseconds DurationOr(const google::protobuf::Duration& d, bool has,
                                     std::chrono::milliseconds fallback) {
  if (!has) {
    return fallback;
  }
  const int64_t ms = d.seconds() * 1000 + d.nanos() / 1000000;
  return ms > 0 ? std::chrono::milliseconds(ms) : fallback;
}

std::chrono::milliseconds BackoffDelay(std::chrono::milliseconds base, int attempt, uint64_t salt) {
  std::minstd_rand rng(static_cast<uint32_t>(salt * 2654435761u + static_cast<uint64_t>(attempt)));
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  const auto raw = base * (int64_t{1} << std::clamp(attempt, 0, 10));
  return std::chrono::duration_cast<std::chrono::milliseconds>(raw * jitter(rng));
}

void RecordTokenGaps(metrics::MetricSet& m, const std::vector<uint64_t>& gaps, uint64_t tokens,
                     uint64_t chunks) {
  if (gaps.empty()) {
    return;
  }
  if (tokens <= chunks || chunks == 0) {
    for (uint64_t g : gaps) {
      m.RecordUs(v1::ITL, g);
    }
    return;
  }
  const double per_chunk = static_cast<double>(tokens) / static_cast<double>(chunks);
  const auto reps = static_cast<uint64_t>(per_chunk + 0.5);
  for (uint64_t g : gaps) {
    m.Hist(v1::ITL).Record(static_cast<uint64_t>(static_cast<double>(g) / per_chunk), reps);
  }
}

}  // namespace llmload::worker
