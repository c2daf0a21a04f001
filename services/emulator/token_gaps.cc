#include "services/emulator/token_gaps.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace llmload::emulator {

std::string TokenGapsJson(const histogram::Histogram& gaps) {
  std::string out = absl::StrCat(
      "{\"count\":", gaps.Count(), ",\"min_us\":", gaps.Min(), ",\"max_us\":", gaps.Max(),
      ",\"sum_us\":", gaps.Sum(), ",\"p50_us\":", gaps.Percentile(50),
      ",\"p99_us\":", gaps.Percentile(99), ",\"buckets\":[");
  bool first = true;
  if (!gaps.Empty()) {
    for (size_t i = 0; i < histogram::Histogram::NumBuckets(); ++i) {
      const uint64_t n = gaps.CountAt(i);
      if (n == 0) {
        continue;
      }
      absl::StrAppend(&out, first ? "" : ",", "[", histogram::Histogram::BucketValue(i), ",", n,
                      "]");
      first = false;
    }
  }
  out += "]}";
  return out;
}

}  // namespace llmload::emulator
