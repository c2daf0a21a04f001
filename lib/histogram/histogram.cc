#include "lib/histogram/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace llmload::histogram {
namespace {

constexpr uint8_t kEncodingVersion = 1;

__extension__ using Uint128 = unsigned __int128;

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Reads a varint at `pos`; false on truncation or over-long encoding.
bool GetVarint(std::string_view in, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= in.size()) {
      return false;
    }
    const auto byte = static_cast<uint8_t>(in[pos++]);
    if (shift == 63 && byte > 1) {
      return false;
    }
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      return true;
    }
  }
  return false;
}

bool AddOverflows(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b;
}

}  // namespace

Histogram::Histogram() : counts_(new uint64_t[NumBuckets()]()) {}

Histogram::Histogram(const Histogram& other)
    : counts_(new uint64_t[NumBuckets()]),
      count_(other.count_),
      saturated_(other.saturated_),
      min_(other.min_),
      max_(other.max_),
      sum_(other.sum_) {
  std::memcpy(counts_.get(), other.counts_.get(), NumBuckets() * sizeof(uint64_t));
}

Histogram& Histogram::operator=(const Histogram& other) {
  if (this != &other) {
    if (!counts_) {
      counts_.reset(new uint64_t[NumBuckets()]);
    }
    std::memcpy(counts_.get(), other.counts_.get(), NumBuckets() * sizeof(uint64_t));
    count_ = other.count_;
    saturated_ = other.saturated_;
    min_ = other.min_;
    max_ = other.max_;
    sum_ = other.sum_;
  }
  return *this;
}

size_t Histogram::BucketIndex(uint64_t value) {
  if (value < 2 * kSubBuckets) {
    return static_cast<size_t>(value);
  }
  const int exponent = 63 - std::countl_zero(value);  // >= kSubBucketBits + 1
  const int shift = exponent - kSubBucketBits;
  return static_cast<size_t>(kSubBuckets * static_cast<uint64_t>(shift) + (value >> shift));
}

uint64_t Histogram::BucketLow(size_t index) {
  if (index < 2 * kSubBuckets) {
    return index;
  }
  const uint64_t shift = (index >> kSubBucketBits) - 1;
  const uint64_t mantissa = index & (kSubBuckets - 1);
  return (kSubBuckets + mantissa) << shift;
}

uint64_t Histogram::BucketWidth(size_t index) {
  if (index < 2 * kSubBuckets) {
    return 1;
  }
  return uint64_t{1} << ((index >> kSubBucketBits) - 1);
}

uint64_t Histogram::BucketValue(size_t index) {
  return BucketLow(index) + (BucketWidth(index) - 1) / 2;
}

void Histogram::Record(uint64_t value, uint64_t count) {
  if (count == 0) {
    return;
  }
  if (value > kMaxValue) {
    value = kMaxValue;
    saturated_ += count;
  }
  counts_[BucketIndex(value)] += count;
  if (count_ == 0 || value < min_) {
    min_ = value;
  }
  if (value > max_) {
    max_ = value;
  }
  count_ += count;
  sum_ += value * count;
}

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) {
    return;
  }
  const uint64_t* src = other.counts_.get();
  uint64_t* dst = counts_.get();
  for (size_t i = 0; i < NumBuckets(); ++i) {
    dst[i] += src[i];
  }
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  saturated_ += other.saturated_;
  sum_ += other.sum_;
}

void Histogram::Reset() {
  if (count_ == 0) {
    return;
  }
  std::memset(counts_.get(), 0, NumBuckets() * sizeof(uint64_t));
  count_ = saturated_ = min_ = max_ = sum_ = 0;
}

double Histogram::Mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
}

uint64_t Histogram::Percentile(double p) const {
  if (count_ == 0) {
    return 0;
  }
  p = std::clamp(p, 0.0, 100.0);
  // p is a decimal the caller wrote (99.9) that a double only approximates,
  // and ceil(p / 100 * n) lands one rank too high whenever the product comes
  // out a hair above an integer (99.9 / 100 * 1000 = 999.0000000000001 ranks
  // the max, not the 999th sample). Resolve p to 1e-7 percentage points, which
  // holds every decimal with up to 7 fractional digits exactly, and rank in
  // integer arithmetic.
  constexpr uint64_t kWhole = 1'000'000'000;  // 100 %
  const auto scaled = static_cast<uint64_t>(std::llround(p * (kWhole / 100)));
  auto rank = static_cast<uint64_t>((static_cast<Uint128>(scaled) * count_ + kWhole - 1) / kWhole);
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = BucketIndex(min_); i < NumBuckets(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      return std::clamp(BucketValue(i), min_, max_);
    }
  }
  return max_;
}

std::string Histogram::Encode() const {
  std::string out;
  out.push_back(static_cast<char>(kEncodingVersion));
  if (count_ == 0) {
    PutVarint(out, 0);
    return out;
  }
  const size_t first = BucketIndex(min_);
  const size_t last = BucketIndex(max_);
  size_t nonempty = 0;
  for (size_t i = first; i <= last; ++i) {
    nonempty += counts_[i] != 0;
  }
  PutVarint(out, nonempty);
  size_t next = 0;
  for (size_t i = first; i <= last; ++i) {
    if (counts_[i] != 0) {
      PutVarint(out, i - next);  // gap since the bucket after the previous one
      PutVarint(out, counts_[i]);
      next = i + 1;
    }
  }
  PutVarint(out, min_);
  PutVarint(out, max_);
  PutVarint(out, sum_);
  PutVarint(out, saturated_);
  return out;
}

absl::Status Histogram::DecodeSparse(std::string_view in, SparseDecoded* out) {
  out->entries.clear();
  out->count = out->min = out->max = out->sum = out->saturated = 0;
  if (in.empty()) {
    return absl::InvalidArgumentError("histogram encoding is empty");
  }
  if (static_cast<uint8_t>(in[0]) != kEncodingVersion) {
    return absl::InvalidArgumentError("histogram encoding has an unknown version");
  }
  size_t pos = 1;
  uint64_t nonempty = 0;
  if (!GetVarint(in, pos, nonempty)) {
    return absl::DataLossError("histogram encoding is truncated");
  }
  if (nonempty > NumBuckets()) {
    return absl::DataLossError("histogram encoding has more buckets than exist");
  }
  std::vector<std::pair<uint32_t, uint64_t>>& entries = out->entries;
  entries.reserve(nonempty);
  uint64_t next = 0;
  uint64_t total = 0;
  for (uint64_t k = 0; k < nonempty; ++k) {
    uint64_t gap = 0;
    uint64_t count = 0;
    if (!GetVarint(in, pos, gap) || !GetVarint(in, pos, count)) {
      return absl::DataLossError("histogram encoding is truncated");
    }
    if (gap >= NumBuckets() || next + gap >= NumBuckets()) {
      return absl::DataLossError("histogram bucket index out of range");
    }
    if (count == 0) {
      return absl::DataLossError("histogram encoding lists an empty bucket");
    }
    if (AddOverflows(total, count)) {
      return absl::DataLossError("histogram count overflows");
    }
    const auto index = static_cast<uint32_t>(next + gap);
    entries.emplace_back(index, count);
    total += count;
    next = index + 1;
  }
  uint64_t min = 0;
  uint64_t max = 0;
  uint64_t sum = 0;
  uint64_t saturated = 0;
  if (nonempty > 0 && (!GetVarint(in, pos, min) || !GetVarint(in, pos, max) ||
                       !GetVarint(in, pos, sum) || !GetVarint(in, pos, saturated))) {
    return absl::DataLossError("histogram encoding is truncated");
  }
  if (pos != in.size()) {
    return absl::DataLossError("histogram encoding has trailing bytes");
  }
  if (nonempty == 0) {
    return absl::OkStatus();
  }
  if (min > max || max > kMaxValue || BucketIndex(min) != entries.front().first ||
      BucketIndex(max) != entries.back().first) {
    return absl::DataLossError("histogram min/max disagree with its buckets");
  }
  // Saturated samples were recorded as kMaxValue.
  if (saturated > total || (saturated > 0 && max != kMaxValue)) {
    return absl::DataLossError("histogram saturated count disagrees with its max");
  }
  // The sum must be one that samples with these bucket counts, this exact
  // min and max and this many saturated samples can add up to; bucket bounds
  // alone would accept e.g. a mean above the max.
  Uint128 lo = 0;
  Uint128 hi = 0;
  if (min == max) {
    lo = hi = static_cast<Uint128>(min) * total;
  } else {
    // One sample is min, max(saturated, 1) samples are max, and every other
    // sample lies in its bucket and within [min, max].
    const size_t first = entries.front().first;
    const size_t last = entries.back().first;
    const uint64_t at_max = std::max<uint64_t>(saturated, 1);
    if (at_max > entries.back().second - (first == last ? 1 : 0)) {
      return absl::DataLossError("histogram min/max/saturated disagree with its bucket counts");
    }
    lo = hi = min + static_cast<Uint128>(max) * at_max;
    for (const auto& [index, count] : entries) {
      const uint64_t rest = count - (index == first ? 1 : 0) - (index == last ? at_max : 0);
      lo += static_cast<Uint128>(std::max(BucketLow(index), min)) * rest;
      hi += static_cast<Uint128>(std::min(BucketLow(index) + BucketWidth(index) - 1, max)) * rest;
    }
  }
  if (sum < lo || sum > hi) {
    return absl::DataLossError("histogram sum disagrees with its buckets, min and max");
  }
  out->count = total;
  out->min = min;
  out->max = max;
  out->sum = sum;
  out->saturated = saturated;
  return absl::OkStatus();
}

absl::Status Histogram::MergeDecoded(const SparseDecoded& d) {
  if (d.count == 0) {
    return absl::OkStatus();
  }
  if (AddOverflows(count_, d.count) || AddOverflows(sum_, d.sum)) {
    return absl::DataLossError("merging the histogram would overflow");
  }
  for (const auto& [index, count] : d.entries) {
    if (AddOverflows(counts_[index], count)) {
      return absl::DataLossError("merging the histogram would overflow a bucket");
    }
  }
  // Checked: apply.
  for (const auto& [index, count] : d.entries) {
    counts_[index] += count;
  }
  min_ = count_ == 0 ? d.min : std::min(min_, d.min);
  max_ = std::max(max_, d.max);
  count_ += d.count;
  sum_ += d.sum;
  saturated_ += d.saturated;
  return absl::OkStatus();
}

absl::Status Histogram::MergeEncoded(std::string_view in) {
  // One scratch per thread: decoding allocates nothing once it has grown.
  thread_local SparseDecoded decoded;
  if (absl::Status s = DecodeSparse(in, &decoded); !s.ok()) {
    return s;
  }
  return MergeDecoded(decoded);
}

absl::StatusOr<Histogram> Histogram::Decode(std::string_view encoded) {
  Histogram h;
  if (absl::Status s = h.MergeEncoded(encoded); !s.ok()) {
    return s;
  }
  return h;
}

bool operator==(const Histogram& a, const Histogram& b) {
  return a.count_ == b.count_ && a.saturated_ == b.saturated_ && a.Min() == b.Min() &&
         a.max_ == b.max_ && a.sum_ == b.sum_ &&
         std::memcmp(a.counts_.get(), b.counts_.get(),
                     Histogram::NumBuckets() * sizeof(uint64_t)) == 0;
}

}  // namespace llmload::histogram
