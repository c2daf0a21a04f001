// File: histogram.h
//
// A log-linear histogram of non-negative integer values (llmload records
// latencies in microseconds). Values below 2048 have a bucket each; above,
// every power-of-two octave is split into 1024 equal buckets, so a bucket is
// never wider than 1/1024 of its lower bound and the representative value
// (the bucket midpoint) is within 0.05 % of any value in the bucket.
//
//   [0] [1] ... [2047] | [2048,2050) ... [4094,4096) | [4096,4100) ...
//
// Memory is fixed (NumBuckets() counters), recording is O(1) with no
// allocation, and merging adds counts bucket by bucket, so the merge of the
// histograms of any split of a sample set equals the histogram of the whole,
// every count, min, max and sum included.
//
// Values above kMaxValue (about 2.4 hours in microseconds) are clamped to it
// and counted in Saturated().
//
// Thread-compatible: confine an instance to one thread or guard it.

#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace llmload::histogram {

// A validated sparse encoding, decoded: the non-empty buckets in increasing
// index order and the totals (see Histogram::DecodeSparse).
struct SparseDecoded {
  std::vector<std::pair<uint32_t, uint64_t>> entries;  // (bucket index, count)
  uint64_t count = 0;
  uint64_t min = 0;
  uint64_t max = 0;
  uint64_t sum = 0;
  uint64_t saturated = 0;
};

class Histogram {
 public:
  static constexpr int kSubBucketBits = 10;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;
  static constexpr int kMaxExponent = 33;  // values < 2^33
  static constexpr uint64_t kMaxValue = (uint64_t{1} << kMaxExponent) - 1;
  // Stated worst-case relative error of a reported value.
  static constexpr double kRelativeError = 1.0 / (2.0 * kSubBuckets);

  Histogram();
  Histogram(const Histogram& other);
  Histogram& operator=(const Histogram& other);
  Histogram(Histogram&&) noexcept = default;
  Histogram& operator=(Histogram&&) noexcept = default;

  // 2 * kSubBuckets exact buckets below 2^(kSubBucketBits + 1), then
  // kSubBuckets per octave [2^e, 2^(e+1)) for e up to kMaxExponent - 1; the
  // last bucket ends at kMaxValue.
  static constexpr size_t NumBuckets() {
    return static_cast<size_t>(kSubBuckets * (kMaxExponent - kSubBucketBits - 1) +
                               2 * kSubBuckets);
  }
  static size_t BucketIndex(uint64_t value);
  // Smallest value that maps to bucket `index`.
  static uint64_t BucketLow(size_t index);
  // Number of distinct values that map to bucket `index`.
  static uint64_t BucketWidth(size_t index);
  // The value reported for samples in bucket `index` (its midpoint).
  static uint64_t BucketValue(size_t index);

  void Record(uint64_t value) { Record(value, 1); }
  void Record(uint64_t value, uint64_t count);
  void Merge(const Histogram& other);
  void Reset();

  uint64_t Count() const { return count_; }
  uint64_t Saturated() const { return saturated_; }
  // Exact smallest / largest recorded value; 0 when empty.
  uint64_t Min() const { return count_ == 0 ? 0 : min_; }
  uint64_t Max() const { return max_; }
  uint64_t Sum() const { return sum_; }
  double Mean() const;
  // Nearest-rank percentile, p in [0, 100]: the value of the sample of rank
  // ceil(p/100 * Count()) (rank 1 for p = 0), reported as its bucket's
  // midpoint clamped to [Min(), Max()]. 0 when empty.
  uint64_t Percentile(double p) const;
  uint64_t CountAt(size_t index) const { return counts_[index]; }
  bool Empty() const { return count_ == 0; }

  // Sparse encoding: only non-empty buckets, varint-coded.
  std::string Encode() const;
  // Adds an encoded histogram to this one. Accepts only encodings that some
  // sequence of Record() calls could have produced; on any corruption returns
  // INVALID_ARGUMENT / DATA_LOSS and leaves *this unchanged.
  absl::Status MergeEncoded(std::string_view encoded);
  static absl::StatusOr<Histogram> Decode(std::string_view encoded);
  // Decodes and fully validates an encoding (every check MergeEncoded makes
  // but the overflow of a merge) without a dense array: a batch is decoded
  // once and then merged anywhere with MergeDecoded. On error *out is
  // unspecified.
  static absl::Status DecodeSparse(std::string_view encoded, SparseDecoded* out);
  // Adds a DecodeSparse result. DATA_LOSS and *this unchanged when a total
  // or bucket would overflow.
  absl::Status MergeDecoded(const SparseDecoded& decoded);

  friend bool operator==(const Histogram& a, const Histogram& b);

 private:
  std::unique_ptr<uint64_t[]> counts_;
  uint64_t count_ = 0;
  uint64_t saturated_ = 0;
  uint64_t min_ = 0;
  uint64_t max_ = 0;
  uint64_t sum_ = 0;
};

}  // namespace llmload::histogram
