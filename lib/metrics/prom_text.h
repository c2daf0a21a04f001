// File: prom_text.h
//
// A reader of the Prometheus text exposition format (version 0.0.4) and the
// series selectors of RunSpec.targetMetrics, for scraping a target's own
// metrics during a run.
//
// ParseExposition takes a whole scrape body and returns its samples, each
// with the type its family declared in a `# TYPE` line (histogram and
// summary families own their `_bucket`, `_sum`, `_count` lines). It accepts
// comments, `# HELP` and `# TYPE` lines, `name{label="value",...} value
// [timestamp]`, the label escapes \\ \" \n, and the values NaN, +Inf, -Inf.
// Anything else is an INVALID_ARGUMENT naming the line; nothing crashes.
//
// A selector is `name` or `name{label="value",...}`: a sample matches when
// its name equals the selector's and each listed label is present with
// exactly that value. Equality is the only matcher.
//
//   absl::StatusOr<std::vector<PromSample>> s = ParseExposition(body);
//   absl::StatusOr<PromSelector> sel = ParseSelector("up{job=\"x\"}");
//   if (sel.ok() && s.ok()) for (auto& x : *s) if (Matches(*sel, x)) ...
//
// Pure: no I/O. Thread-compatible.

#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace llmload::metrics {

// Labels sorted by name, names unique.
using PromLabels = std::vector<std::pair<std::string, std::string>>;

struct PromSample {
  std::string name;
  PromLabels labels;
  double value = 0;
  // counter, gauge, histogram, summary or untyped.
  std::string type = "untyped";
};

struct PromSelector {
  std::string name;
  PromLabels labels;  // sorted by name
};

// Largest body ParseExposition reads, and most samples it returns.
inline constexpr size_t kMaxExpositionBytes = 16 << 20;
inline constexpr size_t kMaxExpositionSamples = 1 << 20;

absl::StatusOr<std::vector<PromSample>> ParseExposition(absl::string_view text);

absl::StatusOr<PromSelector> ParseSelector(absl::string_view text);

bool Matches(const PromSelector& selector, const PromSample& sample);

// `name{a="1",b="x\"y"}` with escapes restored: a series' canonical key.
std::string SeriesKey(absl::string_view name, const PromLabels& labels);

}  // namespace llmload::metrics
