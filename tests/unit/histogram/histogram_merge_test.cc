// Merging: the merge of the histograms of any split of a sample set equals
// the histogram of the whole (every bucket, count, min, max, sum, saturated
// count), whatever the merge order and whether the parts travel encoded.

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/histogram/histogram.h"
#include "tests/unit/histogram/sample_sets.h"
#include "tests/unit/histogram/same_histogram.h"

namespace llmload::histogram {
namespace {

using testing::SameHistogram;
using testing::StandardSampleSets;

std::vector<Histogram> RecordParts(const std::vector<std::vector<uint64_t>>& parts) {
  std::vector<Histogram> out(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    for (uint64_t v : parts[i]) {
      out[i].Record(v);
    }
  }
  return out;
}

// Merges the parts in every way we support and compares each result with the
// histogram of the whole.
void ExpectEveryMergeEqualsWhole(const std::vector<Histogram>& parts, const Histogram& whole,
                                 std::mt19937_64& rng) {
  Histogram forward;
  for (const Histogram& p : parts) {
    forward.Merge(p);
  }
  EXPECT_TRUE(SameHistogram(forward, whole)) << "left fold";

  std::vector<size_t> order(parts.size());
  for (size_t i = 0; i < order.size(); ++i) {
    order[i] = i;
  }
  std::shuffle(order.begin(), order.end(), rng);
  Histogram shuffled;
  for (size_t i : order) {
    shuffled.Merge(parts[i]);
  }
  EXPECT_TRUE(SameHistogram(shuffled, whole)) << "shuffled fold";

  // Pairwise tree, as a collector merging per-worker merges would.
  std::vector<Histogram> level = parts;
  while (level.size() > 1) {
    std::vector<Histogram> next;
    for (size_t i = 0; i + 1 < level.size(); i += 2) {
      next.push_back(level[i]);
      next.back().Merge(level[i + 1]);
    }
    if (level.size() % 2 == 1) {
      next.push_back(level.back());
    }
    level = std::move(next);
  }
  EXPECT_TRUE(SameHistogram(level.front(), whole)) << "tree";

  // Over the wire: every part encoded, decoded and merged encoded.
  Histogram from_wire;
  for (size_t i : order) {
    const std::string encoded = parts[i].Encode();
    absl::StatusOr<Histogram> decoded = Histogram::Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(SameHistogram(*decoded, parts[i])) << "decode(encode(part " << i << "))";
    const absl::Status s = from_wire.MergeEncoded(encoded);
    ASSERT_TRUE(s.ok()) << s;
  }
  EXPECT_TRUE(SameHistogram(from_wire, whole)) << "MergeEncoded";
  EXPECT_EQ(from_wire.Encode(), whole.Encode()) << "encoding must not depend on merge order";
}

class HistogramMergeTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    values_ = &StandardSampleSets()[GetParam()].values;
    for (uint64_t v : *values_) {
      whole_.Record(v);
    }
  }

  const std::vector<uint64_t>* values_ = nullptr;
  Histogram whole_;
};

// Each sample goes to a random part: every part spans the whole range.
TEST_P(HistogramMergeTest, RandomSplitsMergeToTheWhole) {
  std::mt19937_64 rng(100 + GetParam());
  for (size_t k = 2; k <= 16; ++k) {
    for (int round = 0; round < 2; ++round) {
      SCOPED_TRACE(::testing::Message() << k << " parts, round " << round);
      std::vector<std::vector<uint64_t>> parts(k);
      for (uint64_t v : *values_) {
        parts[rng() % k].push_back(v);
      }
      ExpectEveryMergeEqualsWhole(RecordParts(parts), whole_, rng);
    }
  }
}

// Contiguous runs of the sorted samples at random cuts: parts cover disjoint
// ranges, so min and max come from different parts; equal cuts leave parts
// empty and cuts one apart leave single-sample parts.
TEST_P(HistogramMergeTest, SortedRangeSplitsMergeToTheWhole) {
  std::vector<uint64_t> sorted = *values_;
  std::sort(sorted.begin(), sorted.end());
  std::mt19937_64 rng(200 + GetParam());
  for (size_t k = 2; k <= 16; ++k) {
    for (int round = 0; round < 2; ++round) {
      SCOPED_TRACE(::testing::Message() << k << " parts, round " << round);
      std::vector<size_t> cuts = {0, sorted.size()};
      for (size_t c = 0; c + 1 < k; ++c) {
        // Round 1 clusters cuts near the ends to make tiny and empty parts.
        const size_t at = round == 0 ? rng() % (sorted.size() + 1)
                                     : (c % 2 == 0 ? rng() % 3 : sorted.size() - rng() % 3);
        cuts.push_back(at);
      }
      std::sort(cuts.begin(), cuts.end());
      std::vector<std::vector<uint64_t>> parts;
      for (size_t c = 0; c + 1 < cuts.size(); ++c) {
        parts.emplace_back(sorted.begin() + static_cast<std::ptrdiff_t>(cuts[c]),
                           sorted.begin() + static_cast<std::ptrdiff_t>(cuts[c + 1]));
      }
      ExpectEveryMergeEqualsWhole(RecordParts(parts), whole_, rng);
    }
  }
}

// Splitting into the largest and smallest part sizes: one sample per part for
// the first 16 samples, the rest in one part.
TEST_P(HistogramMergeTest, SingleSamplePartsMergeToTheWhole) {
  std::mt19937_64 rng(300 + GetParam());
  std::vector<std::vector<uint64_t>> parts;
  for (size_t i = 0; i < 16; ++i) {
    parts.push_back({(*values_)[i]});
  }
  parts.emplace_back(values_->begin() + 16, values_->end());
  parts.emplace_back();  // an empty part
  ExpectEveryMergeEqualsWhole(RecordParts(parts), whole_, rng);
}

INSTANTIATE_TEST_SUITE_P(SampleSets, HistogramMergeTest,
                         ::testing::Range<size_t>(0, StandardSampleSets().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return StandardSampleSets()[info.param].name;
                         });

}  // namespace
}  // namespace llmload::histogram
