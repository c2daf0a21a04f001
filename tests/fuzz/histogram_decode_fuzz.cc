// Fuzz target: histogram encodings as they arrive from workers
// (Histogram::Decode / MergeEncoded, lib/histogram).
//
// Properties checked on every input:
// - nothing crashes, hangs or trips ASan/UBSan;
// - Decode and MergeEncoded agree: MergeEncoded into a non-empty histogram
//   fails iff Decode fails (or the sum of both would overflow), and then
//   leaves its target unchanged; otherwise it equals Merge(Decode(input));
// - an accepted histogram is self-consistent: a histogram recorded with
//   Record() alone equals it (tests/unit/histogram/consistency.h);
// - encoding a decoded histogram and decoding that gives an equal histogram;
// - Mean() and every percentile of an accepted histogram lie in [Min, Max],
//   and percentiles are monotone in p.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string_view>

#include "absl/status/statusor.h"
#include "lib/histogram/histogram.h"
#include "tests/unit/histogram/consistency.h"

namespace {

using llmload::histogram::Histogram;

void Check(bool ok, const char* property) {
  if (!ok) {
    std::fprintf(stderr, "histogram_decode_fuzz: property violated: %s\n", property);
    std::abort();
  }
}

// A non-empty merge target with an exact value, a bucketed one and a
// saturated one.
const Histogram& Base() {
  static const Histogram base = [] {
    Histogram h;
    h.Record(3);
    h.Record(5000);
    h.Record(Histogram::kMaxValue + 1);
    return h;
  }();
  return base;
}

bool AddOverflows(uint64_t a, uint64_t b) { return a > std::numeric_limits<uint64_t>::max() - b; }

void CheckReaders(const Histogram& h) {
  if (h.Empty()) {
    Check(h.Percentile(50) == 0 && h.Mean() == 0, "empty histogram reports non-zero values");
    return;
  }
  const auto lo = static_cast<double>(h.Min());
  const auto hi = static_cast<double>(h.Max());
  Check(h.Mean() >= lo * (1 - 1e-12) && h.Mean() <= hi * (1 + 1e-12), "mean outside [min, max]");
  uint64_t prev = 0;
  for (double p : {0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    const uint64_t v = h.Percentile(p);
    Check(v >= h.Min() && v <= h.Max(), "percentile outside [min, max]");
    Check(v >= prev, "percentiles not monotone");
    prev = v;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<Histogram> decoded = Histogram::Decode(input);
  // Reused across inputs: a histogram is ~200 KB, and allocating a fresh one
  // per input makes the fuzzer spend its time in mmap under ASan.
  static Histogram target;
  target = Base();
  const absl::Status merged = target.MergeEncoded(input);

  if (!decoded.ok()) {
    Check(!merged.ok(), "MergeEncoded accepts what Decode rejects");
    Check(target == Base(), "a failed MergeEncoded changed its target");
    return 0;
  }
  Check(llmload::histogram::testing::IsSelfConsistent(*decoded),
        "accepted a histogram no recording can produce");
  const absl::StatusOr<Histogram> again = Histogram::Decode(decoded->Encode());
  Check(again.ok(), "the re-encoding of a decoded histogram is rejected");
  Check(*again == *decoded, "encode then decode changed the histogram");
  CheckReaders(*decoded);

  if (merged.ok()) {
    static Histogram expected;
    expected = Base();
    expected.Merge(*decoded);
    Check(target == expected, "MergeEncoded differs from Merge(Decode)");
    CheckReaders(target);
  } else {
    Check(target == Base(), "a failed MergeEncoded changed its target");
    Check(AddOverflows(Base().Count(), decoded->Count()) ||
              AddOverflows(Base().Sum(), decoded->Sum()),
          "MergeEncoded rejects what Decode accepts without an overflow");
  }
  return 0;
}
