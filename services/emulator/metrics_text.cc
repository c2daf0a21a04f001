#include "services/emulator/metrics_text.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "lib/histogram/histogram.h"

namespace llmload::emulator {
namespace {

// Upper bounds of the token-gap buckets, in microseconds.
constexpr std::array<uint64_t, 14> kGapBoundsUs = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000};

absl::string_view Name(Protocol p) {
  const std::string_view n = ProtocolName(p);
  return absl::string_view(n.data(), n.size());
}

void Family(std::string* out, absl::string_view name, absl::string_view type,
            absl::string_view help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

// Seconds from microseconds, printed exactly enough to round-trip.
std::string SecondsOf(uint64_t us) {
  return absl::StrCat(us / 1000000, ".", absl::StrFormat("%06d", us % 1000000));
}

}  // namespace

std::string MetricsText(const Behaviour& behaviour, int32_t process, ConnectionCounts connections) {
  std::string out;
  const std::string proc = absl::StrCat("process=\"", process, "\"");
  struct PerProtocol {
    absl::string_view name;
    absl::string_view help;
    uint64_t (Behaviour::*count)(Protocol) const;
  };
  const PerProtocol counters[] = {
      {"llmload_emulator_requests_total", "Requests planned, by protocol.",
       &Behaviour::RequestCount},
      {"llmload_emulator_abandoned_total",
       "Streamed responses whose client left before their end, by protocol.",
       &Behaviour::AbandonedCount},
      {"llmload_emulator_tokens_sent_total", "Tokens handed to a connection, by protocol.",
       &Behaviour::TokensSentCount},
  };
  for (const PerProtocol& c : counters) {
    Family(&out, c.name, "counter", c.help);
    for (size_t p = 0; p < kProtocolCount; ++p) {
      const auto protocol = static_cast<Protocol>(p);
      absl::StrAppend(&out, c.name, "{", proc, ",protocol=\"", Name(protocol), "\"} ",
                      (behaviour.*c.count)(protocol), "\n");
    }
  }
  Family(&out, "llmload_emulator_connections_accepted_total", "counter",
         "TCP connections accepted.");
  absl::StrAppend(&out, "llmload_emulator_connections_accepted_total{", proc, "} ",
                  connections.accepted, "\n");
  Family(&out, "llmload_emulator_open_connections", "gauge", "TCP connections open now.");
  absl::StrAppend(&out, "llmload_emulator_open_connections{", proc, "} ", connections.open, "\n");

  Family(&out, "llmload_emulator_token_gap_seconds", "histogram",
         "Gaps left between consecutive tokens of a response, by protocol.");
  for (size_t p = 0; p < kProtocolCount; ++p) {
    const histogram::Histogram gaps = behaviour.token_gaps().Snapshot(p);
    const std::string labels =
        absl::StrCat(proc, ",protocol=\"", Name(static_cast<Protocol>(p)), "\"");
    std::array<uint64_t, kGapBoundsUs.size()> below{};
    if (!gaps.Empty()) {
      for (size_t i = 0; i < histogram::Histogram::NumBuckets(); ++i) {
        const uint64_t n = gaps.CountAt(i);
        if (n == 0) {
          continue;
        }
        const uint64_t high =
            histogram::Histogram::BucketLow(i) + histogram::Histogram::BucketWidth(i) - 1;
        for (size_t b = 0; b < kGapBoundsUs.size(); ++b) {
          if (high <= kGapBoundsUs[b]) {
            below[b] += n;
          }
        }
      }
    }
    for (size_t b = 0; b < kGapBoundsUs.size(); ++b) {
      absl::StrAppend(&out, "llmload_emulator_token_gap_seconds_bucket{", labels, ",le=\"",
                      static_cast<double>(kGapBoundsUs[b]) / 1e6, "\"} ", below[b], "\n");
    }
    absl::StrAppend(&out, "llmload_emulator_token_gap_seconds_bucket{", labels,
                    ",le=\"+Inf\"} ", gaps.Count(), "\n");
    absl::StrAppend(&out, "llmload_emulator_token_gap_seconds_sum{", labels, "} ",
                    SecondsOf(gaps.Sum()), "\n");
    absl::StrAppend(&out, "llmload_emulator_token_gap_seconds_count{", labels, "} ", gaps.Count(),
                    "\n");
  }
  return out;
}

}  // namespace llmload::emulator
