#include "lib/load/records.h"

#include <algorithm>
#include <cmath>

namespace llmload::load {
namespace {

constexpr int64_t kDefaultMaxRecords = 10000;  // as validation::kDefaultMaxRecords

uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

RequestSampler::RequestSampler(double rate, uint64_t seed) : seed_(seed) {
  if (!(rate > 0)) {
    return;
  }
  if (rate >= 1) {
    all_ = true;
    threshold_ = ~uint64_t{0};
    return;
  }
  // 2^64 * rate, computed without overflow.
  threshold_ = static_cast<uint64_t>(std::ldexp(rate, 64));
  threshold_ = std::max<uint64_t>(threshold_, 1);
}

bool RequestSampler::Keep(int32_t client_id, int64_t request_index) const {
  if (threshold_ == 0) {
    return false;
  }
  if (all_) {
    return true;
  }
  const uint64_t h = Mix(Mix(seed_ ^ Mix(static_cast<uint64_t>(static_cast<uint32_t>(client_id)))) ^
                         static_cast<uint64_t>(request_index));
  return h < threshold_;
}

int64_t RecordCap(const v1::RecordsSpec& spec) {
  return spec.max_records() > 0 ? spec.max_records() : kDefaultMaxRecords;
}

int64_t RecordShare(const v1::RunSpec& spec, int64_t shard_clients, double rate_share) {
  const int64_t cap = RecordCap(spec.records());
  double share = 1;
  const v1::Load& load = spec.load();
  if (load.has_open()) {
    share = rate_share > 0 ? rate_share : 1;
  } else {
    const int64_t total = load.has_closed() ? load.closed().clients()
                                            : (load.has_duration() ? load.duration().connections() : 0);
    if (total > 0 && shard_clients > 0) {
      share = static_cast<double>(shard_clients) / static_cast<double>(total);
    }
  }
  share = std::clamp(share, 0.0, 1.0);
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(static_cast<double>(cap) * share)));
}

}  // namespace llmload::load
