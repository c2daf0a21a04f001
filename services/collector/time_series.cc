#include "services/collector/time_series.h"

#include <algorithm>
#include <utility>

namespace llmload::collector {
namespace {

constexpr int64_t kSecondUs = 1'000'000;

// A dense scratch histogram per thread, so compaction and summaries do not
// allocate ~200 KB each time.
histogram::Histogram& Scratch() {
  thread_local histogram::Histogram scratch;
  scratch.Reset();
  return scratch;
}

}  // namespace

// ---- SparseHistogram ----

void SparseHistogram::AddEncoded(std::string_view encoded, uint64_t count) {
  if (count == 0) {
    return;
  }
  parts_.emplace_back(encoded);
  count_ += count;
  if (parts_.size() >= kMaxParts) {
    Compact();
  }
}

void SparseHistogram::Merge(const SparseHistogram& other) {
  if (other.count_ == 0) {
    return;
  }
  parts_.insert(parts_.end(), other.parts_.begin(), other.parts_.end());
  count_ += other.count_;
  if (parts_.size() >= kMaxParts) {
    Compact();
  }
}

void SparseHistogram::MergeInto(histogram::Histogram& out) const {
  for (const std::string& part : parts_) {
    // Every part was validated on the way in (or produced by Encode).
    (void)out.MergeEncoded(part);
  }
}

std::string SparseHistogram::EncodeMerged() const {
  if (parts_.size() == 1) {
    return parts_.front();
  }
  histogram::Histogram& scratch = Scratch();
  MergeInto(scratch);
  return scratch.Encode();
}

histogram::Histogram SparseHistogram::ToDense() const {
  histogram::Histogram h;
  MergeInto(h);
  return h;
}

void SparseHistogram::Compact() {
  if (parts_.size() <= 1) {
    return;
  }
  histogram::Histogram& scratch = Scratch();
  MergeInto(scratch);
  parts_.clear();
  parts_.push_back(scratch.Encode());
  parts_.shrink_to_fit();
}

size_t SparseHistogram::Bytes() const {
  size_t n = parts_.capacity() * sizeof(std::string);
  for (const std::string& p : parts_) {
    n += p.capacity();
  }
  return n;
}

// ---- SparseMetricSet ----

void SparseMetricSet::AddBatch(const v1::SampleBatch& batch,
                               const std::array<uint64_t, metrics::kNumMetrics>& counts) {
  // A metric may come in several deltas; its count goes with the first.
  std::array<bool, metrics::kNumMetrics> counted{};
  for (const v1::HistogramDelta& d : batch.histograms()) {
    const int m = d.metric();
    if (d.has_turn() || m <= 0 || m >= metrics::kNumMetrics || counts[m] == 0) {
      continue;
    }
    hists_[m].AddEncoded(d.encoded(), counted[m] ? 0 : counts[m]);
    if (!counted[m]) {
      counted[m] = true;
    }
  }
  for (const v1::CounterDelta& d : batch.counters()) {
    const int c = d.counter();
    if (c > 0 && c < metrics::kNumCounters) {
      counters_[c] += d.value();
    }
  }
}

void SparseMetricSet::Merge(const SparseMetricSet& other) {
  for (int m = 1; m < metrics::kNumMetrics; ++m) {
    hists_[m].Merge(other.hists_[m]);
  }
  for (int c = 1; c < metrics::kNumCounters; ++c) {
    counters_[c] += other.counters_[c];
  }
}

void SparseMetricSet::Compact() {
  for (SparseHistogram& h : hists_) {
    h.Compact();
  }
}

size_t SparseMetricSet::Bytes() const {
  size_t n = sizeof(*this);
  for (const SparseHistogram& h : hists_) {
    n += h.Bytes();
  }
  return n;
}

void SparseMetricSet::FillMetrics(
    google::protobuf::RepeatedPtrField<v1::MetricStats>& out) const {
  for (v1::Metric m : metrics::AllMetrics()) {
    if (hists_[m].Empty()) {
      continue;
    }
    histogram::Histogram& scratch = Scratch();
    hists_[m].MergeInto(scratch);
    *out.Add() = metrics::Summarize(m, scratch);
  }
}

void SparseMetricSet::FillHistograms(
    google::protobuf::RepeatedPtrField<v1::HistogramDelta>& out) const {
  for (v1::Metric m : metrics::AllMetrics()) {
    if (hists_[m].Empty()) {
      continue;
    }
    v1::HistogramDelta* d = out.Add();
    d->set_metric(m);
    d->set_encoded(hists_[m].EncodeMerged());
  }
}

// ---- TimeSeries ----

void TimeSeries::WorkerGauge::Merge(const WorkerGauge& other) {
  if (other.sequence > sequence) {
    sequence = other.sequence;
    active_sessions = other.active_sessions;
  }
  max_cpu_percent = std::max(max_cpu_percent, other.max_cpu_percent);
  max_loop_lag_ms = std::max(max_loop_lag_ms, other.max_loop_lag_ms);
}

std::vector<TimeSeries::Tier> TimeSeries::DefaultTiers() {
  constexpr int64_t kMinuteUs = 60 * kSecondUs;
  return {{kSecondUs, 10 * kMinuteUs},
          {10 * kSecondUs, 60 * kMinuteUs},
          {60 * kSecondUs, 24 * 60 * kMinuteUs},
          {600 * kSecondUs, 0}};
}

TimeSeries::TimeSeries(std::vector<Tier> tiers) : tiers_(std::move(tiers)) {
  if (tiers_.empty()) {
    tiers_ = DefaultTiers();
  }
  windows_.resize(tiers_.size());
}

int64_t TimeSeries::AlignDown(int64_t t, int64_t width) {
  const int64_t r = t % width;
  return r < 0 ? t - r - width : t - r;
}

size_t TimeSeries::TierFor(int64_t t) const {
  // Tier k holds `t` while the tier-(k+1) window holding it has not aged out
  // of tier k.
  for (size_t k = 0; k + 1 < tiers_.size(); ++k) {
    const int64_t next_width = tiers_[k + 1].width_us;
    const int64_t coarse_end = AlignDown(t, next_width) + next_width;
    if (newest_us_ - coarse_end < tiers_[k].keep_us) {
      return k;
    }
  }
  return tiers_.size() - 1;
}

void TimeSeries::Add(const v1::SampleBatch& batch,
                     const std::array<uint64_t, metrics::kNumMetrics>& counts) {
  const int64_t start = batch.interval_start_us();
  const int64_t end = batch.interval_end_us();
  if (start <= 0 || end < start) {
    return;
  }
  const bool newer = end > newest_us_;
  newest_us_ = std::max(newest_us_, end);
  const int64_t mid = start + (end - start) / 2;
  const size_t tier = TierFor(mid);
  Window& w = windows_[tier][AlignDown(mid, tiers_[tier].width_us)];
  w.set.AddBatch(batch, counts);
  ++w.batches;
  WorkerGauge gauge;
  gauge.sequence = batch.sequence();
  gauge.active_sessions = batch.active_sessions();
  gauge.max_cpu_percent = batch.worker_cpu_percent();
  gauge.max_loop_lag_ms = batch.worker_loop_lag_ms();
  auto [it, inserted] = w.workers.try_emplace(batch.worker_id(), gauge);
  if (!inserted) {
    it->second.Merge(gauge);
  }
  if (newer) {
    Age();
  }
}

void TimeSeries::Age() {
  for (size_t k = 0; k + 1 < tiers_.size(); ++k) {
    auto& tier = windows_[k];
    while (!tier.empty()) {
      auto it = tier.begin();
      if (TierFor(it->first) == k) {
        break;  // the oldest window stays, so do the younger ones
      }
      const int64_t next_width = tiers_[k + 1].width_us;
      Window& coarse = windows_[k + 1][AlignDown(it->first, next_width)];
      coarse.set.Merge(it->second.set);
      coarse.batches += it->second.batches;
      for (const auto& [worker, gauge] : it->second.workers) {
        auto [c, inserted] = coarse.workers.try_emplace(worker, gauge);
        if (!inserted) {
          c->second.Merge(gauge);
        }
      }
      tier.erase(it);
      coarse.set.Compact();
    }
  }
}

std::vector<v1::WindowStats> TimeSeries::Build(bool histograms) const {
  std::vector<v1::WindowStats> out;
  out.reserve(NumWindows());
  // Coarser tiers hold older data: walk from the last tier to the first.
  for (size_t k = tiers_.size(); k-- > 0;) {
    for (const auto& [start, w] : windows_[k]) {
      v1::WindowStats ws;
      ws.set_start_us(start);
      ws.set_width_seconds(static_cast<double>(tiers_[k].width_us) / kSecondUs);
      ws.set_batches(w.batches);
      w.set.FillMetrics(*ws.mutable_metrics());
      for (v1::Counter c : metrics::AllCounters()) {
        if (const uint64_t v = w.set.Get(c); v != 0) {
          (*ws.mutable_counters())[std::string(metrics::CounterName(c))] = v;
        }
      }
      int64_t sessions = 0;
      for (const auto& [worker, gauge] : w.workers) {
        v1::WorkerWindow* ww = ws.add_workers();
        ww->set_worker_id(worker);
        ww->set_active_sessions(gauge.active_sessions);
        ww->set_cpu_percent(gauge.max_cpu_percent);
        ww->set_loop_lag_ms(gauge.max_loop_lag_ms);
        sessions += gauge.active_sessions;
        ws.set_max_cpu_percent(std::max(ws.max_cpu_percent(), gauge.max_cpu_percent));
        ws.set_max_loop_lag_ms(std::max(ws.max_loop_lag_ms(), gauge.max_loop_lag_ms));
      }
      ws.set_active_sessions(sessions);
      if (histograms) {
        w.set.FillHistograms(*ws.mutable_histograms());
      }
      out.push_back(std::move(ws));
    }
  }
  // A late batch may open a window in a finer tier older than a coarse one;
  // windows never overlap, so ordering by start is total.
  std::stable_sort(out.begin(), out.end(), [](const v1::WindowStats& a, const v1::WindowStats& b) {
    return a.start_us() < b.start_us();
  });
  return out;
}

size_t TimeSeries::NumWindows() const {
  size_t n = 0;
  for (const auto& tier : windows_) {
    n += tier.size();
  }
  return n;
}

size_t TimeSeries::Bytes() const {
  size_t n = sizeof(*this);
  for (const auto& tier : windows_) {
    for (const auto& [start, w] : tier) {
      n += 64 + w.set.Bytes();  // + map node
      for (const auto& [worker, gauge] : w.workers) {
        n += 64 + worker.capacity() + sizeof(gauge);
      }
    }
  }
  return n;
}

}  // namespace llmload::collector
