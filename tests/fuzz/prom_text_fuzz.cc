// Fuzzes the Prometheus text format reader and the selector parser. Never
// crash; every sample a body yields has a known type and labels sorted with
// unique names; and each sample's canonical key, read back as a selector,
// selects that sample (the escapes of SeriesKey and the reader agree).
// The input is also tried as a selector on its own.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "lib/metrics/prom_text.h"

namespace metrics = llmload::metrics;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  (void)metrics::ParseSelector(input);
  absl::StatusOr<std::vector<metrics::PromSample>> samples = metrics::ParseExposition(input);
  if (!samples.ok()) {
    return 0;
  }
  for (const metrics::PromSample& s : *samples) {
    if (s.type != "counter" && s.type != "gauge" && s.type != "histogram" &&
        s.type != "summary" && s.type != "untyped") {
      __builtin_trap();
    }
    for (size_t i = 1; i < s.labels.size(); ++i) {
      if (!(s.labels[i - 1].first < s.labels[i].first)) {
        __builtin_trap();
      }
    }
    absl::StatusOr<metrics::PromSelector> key =
        metrics::ParseSelector(metrics::SeriesKey(s.name, s.labels));
    if (!key.ok() || !metrics::Matches(*key, s) || key->labels != s.labels) {
      __builtin_trap();
    }
  }
  return 0;
}
