// Encode / Decode / MergeEncoded: round trips, and corrupted input is either
// rejected with INVALID_ARGUMENT or DATA_LOSS leaving the target unchanged,
// or decodes to a histogram some recording could have produced. Encodings
// arrive from workers over the network, so the decoder is the trust boundary.

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "lib/histogram/histogram.h"
#include "tests/unit/histogram/consistency.h"
#include "tests/unit/histogram/sample_sets.h"
#include "tests/unit/histogram/same_histogram.h"

namespace llmload::histogram {
namespace {

using testing::IsSelfConsistent;
using testing::SameHistogram;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kMax = Histogram::kMaxValue;

// The wire format written out by hand: a version byte, then varints
// (nonempty, {gap, count}..., min, max, sum, saturated).
std::string Encoding(std::initializer_list<uint64_t> varints, uint8_t version = 1) {
  std::string out(1, static_cast<char>(version));
  for (uint64_t v : varints) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
  }
  return out;
}

Histogram Of(std::initializer_list<uint64_t> values) {
  Histogram h;
  for (uint64_t v : values) {
    h.Record(v);
  }
  return h;
}

// A non-empty merge target, so "unchanged" is not trivially "still empty".
Histogram Target() { return Of({10, 3000, 2'000'000}); }

bool IsCorruptionCode(const absl::Status& s) {
  return absl::IsInvalidArgument(s) || absl::IsDataLoss(s);
}

// Feeds `encoded` to Decode and to MergeEncoded on a non-empty target and
// checks the contract either way. Returns whether it was accepted.
bool CheckDecodeContract(const std::string& encoded) {
  absl::StatusOr<Histogram> decoded = Histogram::Decode(encoded);
  Histogram target = Target();
  const Histogram before = target;
  const absl::Status merged = target.MergeEncoded(encoded);
  if (!decoded.ok()) {
    EXPECT_TRUE(IsCorruptionCode(decoded.status())) << decoded.status();
    EXPECT_FALSE(merged.ok()) << "Decode fails but MergeEncoded succeeds";
    EXPECT_TRUE(SameHistogram(target, before)) << "a failed MergeEncoded changed the target";
    return false;
  }
  EXPECT_TRUE(IsSelfConsistent(*decoded))
      << "accepted an encoding no recording can produce: count=" << decoded->Count()
      << " min=" << decoded->Min() << " max=" << decoded->Max() << " sum=" << decoded->Sum()
      << " saturated=" << decoded->Saturated();
  absl::StatusOr<Histogram> again = Histogram::Decode(decoded->Encode());
  EXPECT_TRUE(again.ok()) << again.status();
  if (again.ok()) {
    EXPECT_TRUE(SameHistogram(*again, *decoded)) << "re-encoding changed the histogram";
  }
  EXPECT_TRUE(merged.ok()) << merged;
  Histogram expected = before;
  expected.Merge(*decoded);
  EXPECT_TRUE(SameHistogram(target, expected)) << "MergeEncoded != Merge(Decode)";
  return true;
}

void ExpectRejected(const std::string& encoded, const char* why) {
  SCOPED_TRACE(why);
  EXPECT_FALSE(CheckDecodeContract(encoded)) << why;
}

// Small valid encodings that cover each field's interesting values.
std::vector<std::pair<std::string, Histogram>> SampleEncodings() {
  std::vector<std::pair<std::string, Histogram>> out;
  out.emplace_back("empty", Histogram());
  out.emplace_back("one exact value", Of({5}));
  out.emplace_back("one value in a wide bucket", Of({5000}));
  out.emplace_back("two values in one bucket", Of({5000, 5003}));
  out.emplace_back("saturated", Of({7, kMax + 1, kU64Max}));
  out.emplace_back("all saturated", Of({kMax + 1, kMax + 1}));
  Histogram big_counts;
  big_counts.Record(123, uint64_t{1} << 40);
  big_counts.Record(1'000'000, 3);
  out.emplace_back("large counts", big_counts);
  Histogram spread;
  std::mt19937_64 rng(11);
  for (int i = 0; i < 40; ++i) {
    spread.Record(static_cast<uint64_t>(std::exp2(34 * testing::Unit(rng))));
  }
  out.emplace_back("40 log-uniform values", spread);
  return out;
}

// --- Round trips ----------------------------------------------------------

TEST(HistogramCodecTest, EncodesEmptyAsVersionAndZero) {
  EXPECT_EQ(Histogram().Encode(), std::string("\x01\x00", 2));
  absl::StatusOr<Histogram> h = Histogram::Decode(std::string("\x01\x00", 2));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(h->Empty());
}

TEST(HistogramCodecTest, HandWrittenEncodingMatchesEncode) {
  // One sample of 5000: bucket index, count 1, min = max = sum = 5000.
  const uint64_t index = Histogram::BucketIndex(5000);
  EXPECT_EQ(Of({5000}).Encode(), Encoding({1, index, 1, 5000, 5000, 5000, 0}));
  // Gaps count from the bucket after the previous one.
  EXPECT_EQ(Of({3, 5}).Encode(), Encoding({2, 3, 1, 1, 1, 3, 5, 8, 0}));
}

TEST(HistogramCodecTest, SampleEncodingsRoundTrip) {
  for (const auto& [name, h] : SampleEncodings()) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(IsSelfConsistent(h)) << "oracle rejects a recorded histogram";
    absl::StatusOr<Histogram> d = Histogram::Decode(h.Encode());
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_TRUE(SameHistogram(*d, h));
  }
}

TEST(HistogramCodecTest, StandardSampleSetsRoundTrip) {
  for (const auto& set : testing::StandardSampleSets()) {
    SCOPED_TRACE(set.name);
    Histogram h;
    for (uint64_t v : set.values) {
      h.Record(v);
    }
    EXPECT_TRUE(IsSelfConsistent(h));
    absl::StatusOr<Histogram> d = Histogram::Decode(h.Encode());
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_TRUE(SameHistogram(*d, h));
  }
}

// Every tiny recording must decode, including those at the edges the decoder's
// consistency checks reason about: single samples, equal min and max, samples
// at both ends of a bucket, saturation. Also validates the oracle itself.
TEST(HistogramCodecTest, RandomSmallRecordingsRoundTrip) {
  std::mt19937_64 rng(12);
  const uint64_t anchors[] = {0, 1, 2047, 2048, 2049, 5000, 1'048'575, 1'048'576, kMax - 600, kMax};
  for (int round = 0; round < 20'000; ++round) {
    Histogram h;
    const int n = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < n; ++i) {
      const uint64_t anchor = anchors[rng() % std::size(anchors)];
      uint64_t v = anchor + rng() % 8;
      if (rng() % 8 == 0) {
        v = kMax + 1 + rng() % 3;  // saturated
      }
      h.Record(v, 1 + (rng() % 4 == 0 ? rng() % 5 : 0));
    }
    ASSERT_TRUE(IsSelfConsistent(h)) << "round " << round;
    absl::StatusOr<Histogram> d = Histogram::Decode(h.Encode());
    ASSERT_TRUE(d.ok()) << "round " << round << ": " << d.status();
    ASSERT_TRUE(SameHistogram(*d, h)) << "round " << round;
  }
}

TEST(HistogramCodecTest, MergeEncodedAddsToExistingCounts) {
  Histogram target = Target();
  const Histogram other = Of({1, 3000, kU64Max});
  ASSERT_TRUE(target.MergeEncoded(other.Encode()).ok());
  Histogram expected = Target();
  expected.Merge(other);
  EXPECT_TRUE(SameHistogram(target, expected));
}

TEST(HistogramCodecTest, DecodeSparseThenMergeDecodedEqualsMergeEncoded) {
  for (const auto& [name, h] : SampleEncodings()) {
    SCOPED_TRACE(name);
    SparseDecoded decoded;
    ASSERT_TRUE(Histogram::DecodeSparse(h.Encode(), &decoded).ok());
    EXPECT_EQ(decoded.count, h.Count());
    EXPECT_EQ(decoded.sum, h.Sum());
    EXPECT_EQ(decoded.saturated, h.Saturated());
    Histogram via_decoded = Target();
    ASSERT_TRUE(via_decoded.MergeDecoded(decoded).ok());
    Histogram via_encoded = Target();
    ASSERT_TRUE(via_encoded.MergeEncoded(h.Encode()).ok());
    EXPECT_TRUE(SameHistogram(via_decoded, via_encoded));
  }
}

TEST(HistogramCodecTest, MergeDecodedOverflowLeavesTargetUnchanged) {
  Histogram target;
  target.Record(kMax, kU64Max / kMax);  // the sum near 2^64
  const Histogram before = target;
  SparseDecoded decoded;
  ASSERT_TRUE(Histogram::DecodeSparse(Of({kMax, kMax}).Encode(), &decoded).ok());
  const absl::Status s = target.MergeDecoded(decoded);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(SameHistogram(target, before));
}

TEST(HistogramCodecTest, DecodeSparseRejectsWhatMergeEncodedRejects) {
  SparseDecoded decoded;
  EXPECT_EQ(Histogram::DecodeSparse("", &decoded).code(), absl::StatusCode::kInvalidArgument);
  const std::string full = Of({5, 3000, 70000}).Encode();
  for (size_t len = 1; len < full.size(); ++len) {
    EXPECT_FALSE(Histogram::DecodeSparse(full.substr(0, len), &decoded).ok()) << len;
  }
  EXPECT_EQ(Histogram::DecodeSparse(full + "x", &decoded).code(), absl::StatusCode::kDataLoss);
}

// --- Corruption -----------------------------------------------------------

TEST(HistogramCodecTest, RejectsEveryTruncation) {
  for (const auto& [name, h] : SampleEncodings()) {
    SCOPED_TRACE(name);
    const std::string full = h.Encode();
    for (size_t len = 0; len < full.size(); ++len) {
      SCOPED_TRACE(::testing::Message() << "prefix of " << len << " bytes");
      ExpectRejected(full.substr(0, len), "truncated");
    }
  }
}

TEST(HistogramCodecTest, RejectsTruncationOfALargeEncoding) {
  Histogram h;
  for (uint64_t v : testing::StandardSampleSets().back().values) {
    h.Record(v);
  }
  const std::string full = h.Encode();
  ASSERT_GT(full.size(), 10'000u);
  for (size_t len = 0; len < full.size(); len += (len + 64 < full.size() ? 257 : 1)) {
    ASSERT_FALSE(Histogram::Decode(std::string_view(full).substr(0, len)).ok()) << len;
  }
}

TEST(HistogramCodecTest, SingleByteAndBitFlipsAreRejectedOrSelfConsistent) {
  int accepted = 0;
  int rejected = 0;
  for (const auto& [name, h] : SampleEncodings()) {
    SCOPED_TRACE(name);
    const std::string valid = h.Encode();
    for (size_t pos = 0; pos < valid.size(); ++pos) {
      const auto orig = static_cast<uint8_t>(valid[pos]);
      std::vector<uint8_t> replacements = {0x00, 0x01, 0x7f, 0x80, 0xff,
                                           static_cast<uint8_t>(orig + 1),
                                           static_cast<uint8_t>(orig - 1)};
      for (int bit = 0; bit < 8; ++bit) {
        replacements.push_back(static_cast<uint8_t>(orig ^ (1u << bit)));
      }
      for (uint8_t r : replacements) {
        if (r == orig) {
          continue;
        }
        std::string mutated = valid;
        mutated[pos] = static_cast<char>(r);
        SCOPED_TRACE(::testing::Message() << "byte " << pos << " " << int{orig} << " -> "
                                          << int{r});
        (CheckDecodeContract(mutated) ? accepted : rejected)++;
        if (::testing::Test::HasFailure()) {
          return;  // one mutation's report is enough
        }
      }
    }
  }
  EXPECT_GT(rejected, 0);
  RecordProperty("accepted", accepted);
  RecordProperty("rejected", rejected);
}

TEST(HistogramCodecTest, RejectsMalformedFraming) {
  const uint64_t i5000 = Histogram::BucketIndex(5000);
  ExpectRejected("", "empty input");
  ExpectRejected(Encoding({1, i5000, 1, 5000, 5000, 5000, 0}, 0), "version 0");
  ExpectRejected(Encoding({1, i5000, 1, 5000, 5000, 5000, 0}, 2), "version 2");
  ExpectRejected(Encoding({0}, 2), "empty, version 2");
  ExpectRejected(Encoding({1, i5000, 1, 5000, 5000, 5000, 0, 0}), "trailing varint");
  ExpectRejected(Encoding({0, 0}), "empty histogram with a trailing byte");
  ExpectRejected(Encoding({0, 5, 5, 5, 0}), "empty histogram with min/max/sum");
  ExpectRejected(std::string("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11),
                 "varint above 2^64");
  ExpectRejected(std::string("\x01\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 12),
                 "varint longer than 10 bytes");
}

TEST(HistogramCodecTest, RejectsBadBuckets) {
  const uint64_t n = Histogram::NumBuckets();
  const uint64_t i5000 = Histogram::BucketIndex(5000);
  ExpectRejected(Encoding({1, i5000, 0, 5000, 5000, 5000, 0}), "empty bucket listed");
  ExpectRejected(Encoding({2, 5, 1, 0, 0, 5, 6, 11, 0}), "second bucket empty");
  ExpectRejected(Encoding({1, n, 1, 5000, 5000, 5000, 0}), "index == NumBuckets");
  ExpectRejected(Encoding({1, kU64Max, 1, 5000, 5000, 5000, 0}), "index 2^64-1");
  ExpectRejected(Encoding({2, 5, 1, n - 6, 1, 5, kMax, 5 + kMax, 0}),
                 "second index == NumBuckets");
  ExpectRejected(Encoding({2, 5, 1, kU64Max - 5, 1, 5, 5, 10, 0}), "gap wraps around");
  ExpectRejected(Encoding({n + 1}), "more buckets than exist");
  ExpectRejected(Encoding({kU64Max}), "2^64-1 buckets");
  ExpectRejected(Encoding({3, 5, 1, 5, 1}), "fewer buckets than announced");
}

TEST(HistogramCodecTest, RejectsMinMaxSumInconsistentWithBuckets) {
  const uint64_t i5000 = Histogram::BucketIndex(5000);  // [5000, 5003]
  ASSERT_EQ(Histogram::BucketLow(i5000), 5000u);
  ASSERT_EQ(Histogram::BucketWidth(i5000), 4u);
  // Control: the consistent version decodes.
  ASSERT_TRUE(CheckDecodeContract(Encoding({1, i5000, 2, 5000, 5003, 10003, 0})));

  ExpectRejected(Encoding({1, i5000, 2, 5003, 5000, 10003, 0}), "min > max");
  ExpectRejected(Encoding({1, i5000, 2, 4999, 5003, 10002, 0}), "min below first bucket");
  ExpectRejected(Encoding({1, i5000, 2, 5000, 5004, 10004, 0}), "max above last bucket");
  ExpectRejected(Encoding({2, 5, 1, i5000 - 6, 1, 6, 5000, 5006, 0}), "min above first bucket");
  ExpectRejected(Encoding({2, 5, 1, i5000 - 6, 1, 5, 4999, 5004, 0}), "max below last bucket");
  ExpectRejected(Encoding({1, i5000, 2, 5000, 5003, 9999, 0}), "sum below the buckets");
  ExpectRejected(Encoding({1, i5000, 2, 5000, 5003, 10007, 0}), "sum above the buckets");
  const uint64_t last = Histogram::BucketIndex(kMax);
  ExpectRejected(Encoding({1, last, 1, kMax + 1, kMax + 1, kMax + 1, 0}), "max above kMaxValue");
  // Within the buckets' bounds, but not of the exact min and max:
  ExpectRejected(Encoding({1, i5000, 1, 5000, 5000, 5001, 0}), "one sample, sum != min");
  ExpectRejected(Encoding({1, i5000, 1, 5000, 5003, 5003, 0}), "one sample, min != max");
  ExpectRejected(Encoding({1, i5000, 2, 5000, 5000, 10006, 0}), "mean above max");
  ExpectRejected(Encoding({1, i5000, 2, 5003, 5003, 10000, 0}), "mean below min");
  ExpectRejected(Encoding({1, i5000, 3, 5000, 5002, 15007, 0}), "sum needs a value above max");
  ExpectRejected(Encoding({1, i5000, 3, 5001, 5003, 15002, 0}), "sum needs a value below min");
}

TEST(HistogramCodecTest, RejectsInconsistentSaturation) {
  const uint64_t last = Histogram::BucketIndex(kMax);
  const uint64_t i5 = 5;
  // Control: two saturated samples and a 5.
  ASSERT_TRUE(CheckDecodeContract(Of({5, kMax + 1, kMax + 1}).Encode()));
  ASSERT_EQ(Of({5, kMax + 1, kMax + 1}).Encode(),
            Encoding({2, i5, 1, last - i5 - 1, 2, 5, kMax, 5 + 2 * kMax, 2}));

  ExpectRejected(Encoding({1, i5, 1, 5, 5, 5, 2}), "saturated > count");
  ExpectRejected(Encoding({1, i5, 1, 5, 5, 5, 1}), "saturated sample below kMaxValue");
  ExpectRejected(Encoding({2, i5, 1, last - i5 - 1, 1, 5, kMax, 5 + kMax, 2}),
                 "more saturated than in the last bucket");
  ExpectRejected(Encoding({1, last, 2, kMax - 1, kMax, 2 * kMax - 1, 2}),
                 "saturated includes the min below kMaxValue");
  ExpectRejected(Encoding({2, i5, 1, last - i5 - 1, 3, 5, kMax, 5 + 3 * kMax - 2, 3}),
                 "saturated samples below kMaxValue");
}

TEST(HistogramCodecTest, RejectsCountsThatOverflow) {
  ExpectRejected(Encoding({2, 5, kU64Max, 0, 1, 5, 6, 11, 0}), "total count overflows");

  // Merging into a target whose counts would overflow: error, target kept.
  Histogram target;
  target.Record(0, kU64Max - 1);
  const Histogram before = target;
  for (uint64_t v : {uint64_t{0}, uint64_t{7}}) {
    const absl::Status s = target.MergeEncoded(Of({v, v}).Encode());
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_TRUE(SameHistogram(target, before));
  }
  // The sum would overflow while the count does not.
  Histogram heavy;
  heavy.Record(kMax, uint64_t{1} << 31);  // sum = 2^64 - 2^31
  const Histogram heavy_before = heavy;
  const absl::Status s = heavy.MergeEncoded(Of({uint64_t{1} << 32}).Encode());
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(SameHistogram(heavy, heavy_before));
  // Room for exactly one more: accepted.
  Histogram almost;
  almost.Record(0, kU64Max - 1);
  EXPECT_TRUE(almost.MergeEncoded(Of({7}).Encode()).ok());
  EXPECT_EQ(almost.Count(), kU64Max);
}

TEST(HistogramCodecTest, RandomByteStringsNeverCorruptTheTarget) {
  std::mt19937_64 rng(13);
  int accepted = 0;
  for (int round = 0; round < 20'000; ++round) {
    std::string bytes(rng() % 40, '\0');
    for (char& c : bytes) {
      c = static_cast<char>(rng());
    }
    if (!bytes.empty() && round % 2 == 0) {
      bytes[0] = 1;  // get past the version check
      if (bytes.size() > 1) {
        bytes[1] = static_cast<char>(rng() % 4);  // a plausible bucket count
      }
    }
    SCOPED_TRACE(::testing::Message() << "round " << round);
    accepted += CheckDecodeContract(bytes);
    if (::testing::Test::HasFailure()) {
      return;
    }
  }
  RecordProperty("accepted", accepted);
}

}  // namespace
}  // namespace llmload::histogram
