#include "services/orchestrator/run_tracker_util.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/metrics/metrics.h"

namespace llmload::orchestrator::tracker_util {

std::string Secs(absl::Duration d) { return absl::FormatDuration(d); }

planning::MoveModel ModelOf(const v1::RunSpec& spec) {
  if (spec.load().has_duration()) {
    return planning::MoveModel::kDuration;
  }
  if (spec.load().has_open()) {
    return planning::MoveModel::kOpen;
  }
  return planning::MoveModel::kClosed;
}

std::vector<v1::ClientSpan> ClientsOf(const v1::RunSpec& spec, const v1::Shard& shard) {
  if (shard.clients_size() > 0) {
    return {shard.clients().begin(), shard.clients().end()};
  }
  v1::ClientSpan span;
  span.set_begin(shard.client_begin());
  span.set_count(shard.client_count());
  span.set_cycles(spec.load().has_closed() ? spec.load().closed().cycles_per_client() : 0);
  return {span};
}

std::string DescribeSpans(const std::vector<v1::ClientSpan>& spans, bool with_cycles) {
  std::vector<std::string> parts;
  int64_t cycles = 0;
  for (const v1::ClientSpan& s : spans) {
    parts.push_back(s.count() == 1 ? absl::StrCat(s.begin())
                                   : absl::StrCat(s.begin(), "-", s.begin() + s.count() - 1));
    cycles += static_cast<int64_t>(s.count()) * s.cycles();
  }
  if (parts.size() > 6) {
    const size_t n = parts.size();
    parts.resize(5);
    parts.push_back(absl::StrCat("... (", n, " ranges)"));
  }
  std::string out = absl::StrCat(planning::CountClients(spans) == 1 ? "client " : "clients ",
                                 absl::StrJoin(parts, ","));
  if (with_cycles) {
    absl::StrAppend(&out, ", ", cycles, cycles == 1 ? " cycle" : " cycles");
  }
  return out;
}

uint64_t SealedCounter(const v1::SealedShard& sealed, v1::Counter c) {
  auto it = sealed.counters().find(std::string(metrics::CounterName(c)));
  return it == sealed.counters().end() ? 0 : it->second;
}

}  // namespace llmload::orchestrator::tracker_util
