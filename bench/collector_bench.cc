// collector_bench: the collector's CPU costs on one core (one thread).
//
//  1. Ingest: RunRegistry::Apply of realistic batches (every latency metric
//     with samples, 16 counters), in batches/s and histogram bucket updates/s
//     (non-empty buckets merged: each is added to the run's dense histogram,
//     the worker's sparse set and a time window). Baseline in the same run:
//     Histogram::MergeEncoded of the same deltas into one dense histogram,
//     the least any exact merge must do. Also the full write path with
//     SQLite (group commit of 128, synchronous=FULL) for context.
//  2. Scrape: MetricsExposition::Collect + text serialization with 100 live
//     runs x 8 metrics. Baseline: the 5 Percentile() calls per histogram the
//     exact quantiles need, alone.
//
// Usage: collector_bench [--quick]

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "lib/histogram/histogram.h"
#include "lib/metrics/metrics.h"
#include "prometheus/text_serializer.h"
#include "services/collector/metrics_exposition.h"
#include "services/collector/run_registry.h"
#include "services/collector/store.h"

namespace {

using llmload::collector::IngestCounters;
using llmload::collector::MetricsExposition;
using llmload::collector::RunRegistry;
using llmload::collector::SqliteBatchStore;
namespace metrics = llmload::metrics;
namespace v1 = llmload::v1;
using Clock = std::chrono::steady_clock;

class Gen {
 public:
  explicit Gen(uint64_t seed) : s_(seed * 2654435761u + 1) {}
  uint64_t Next() {
    s_ = s_ * 6364136223846793005ULL + 1442695040888963407ULL;
    const uint64_t r = s_ >> 33;
    const uint64_t scale = uint64_t{1} << (10 + r % 10);  // ~1 ms .. 0.5 s
    return 1 + (r / 10) % scale + scale / 2;
  }

 private:
  uint64_t s_;
};

// One worker's one-second batch: `samples` per metric, 8 of them (ITL gets
// 10x: one per token).
v1::SampleBatch MakeBatch(Gen& gen, const std::string& run, const std::string& worker,
                          uint64_t seq, int samples) {
  metrics::MetricSet set;
  const v1::Metric kMetrics[] = {v1::CONNECT, v1::SESSION_SETUP, v1::TTFT, v1::ITL,
                                 v1::TPOT,    v1::E2E,           v1::REQUEST, v1::CHUNK_GAP};
  for (v1::Metric m : kMetrics) {
    const int n = m == v1::ITL ? samples * 10 : samples;
    for (int i = 0; i < n; ++i) {
      set.RecordUs(m, gen.Next());
    }
  }
  for (v1::Counter c : metrics::AllCounters()) {
    set.Add(c, static_cast<uint64_t>(samples));
  }
  v1::SampleBatch b;
  b.set_run_id(run);
  b.set_worker_id(worker);
  b.set_sequence(seq);
  const int64_t epoch = 1'700'000'000'000'000;
  b.set_interval_start_us(epoch + static_cast<int64_t>(seq - 1) * 1'000'000);
  b.set_interval_end_us(epoch + static_cast<int64_t>(seq) * 1'000'000);
  b.set_protocol("OPENAI_CHAT");
  b.set_final(false);
  set.AppendTo(b);
  return b;
}

uint64_t NonEmptyBuckets(const v1::SampleBatch& b) {
  uint64_t n = 0;
  for (const auto& d : b.histograms()) {
    auto h = llmload::histogram::Histogram::Decode(d.encoded());
    for (size_t i = 0; i < llmload::histogram::Histogram::NumBuckets(); ++i) {
      n += h->CountAt(i) != 0;
    }
  }
  return n;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int kWorkers = 8;
  const int kSeconds = quick ? 60 : 600;  // a 10-minute run of 8 workers
  const int kSamples = 200;               // requests per worker-second

  // ---- 1. ingest ----
  Gen gen(1);
  std::vector<v1::SampleBatch> batches;
  for (int s = 1; s <= kSeconds; ++s) {
    for (int w = 0; w < kWorkers; ++w) {
      batches.push_back(MakeBatch(gen, "run-1", "worker-" + std::to_string(w),
                                  static_cast<uint64_t>(s), kSamples));
    }
  }
  uint64_t buckets = 0;
  size_t bytes = 0;
  for (size_t i = 0; i < 64; ++i) {
    buckets += NonEmptyBuckets(batches[i]);
    bytes += batches[i].ByteSizeLong();
  }
  const double buckets_per_batch = static_cast<double>(buckets) / 64;

  auto t0 = Clock::now();
  llmload::histogram::Histogram sink;
  for (const auto& b : batches) {
    for (const auto& d : b.histograms()) {
      (void)sink.MergeEncoded(d.encoded());
    }
  }
  auto t1 = Clock::now();
  const double baseline_s = Seconds(t0, t1);

  RunRegistry registry;
  t0 = Clock::now();
  for (const auto& b : batches) {
    if (!registry.Apply(b).ok()) {
      std::fprintf(stderr, "apply failed\n");
      return 1;
    }
  }
  t1 = Clock::now();
  const double apply_s = Seconds(t0, t1);
  const double n = static_cast<double>(batches.size());
  std::printf("ingest: %zu batches (%d workers x %d s), %.0f non-empty buckets and %zu bytes "
              "per batch\n",
              batches.size(), kWorkers, kSeconds, buckets_per_batch, bytes / 64);
  std::printf("  baseline MergeEncoded only : %9.0f batches/s  %6.2f us/batch\n",
              n / baseline_s, 1e6 * baseline_s / n);
  std::printf("  RunRegistry::Apply         : %9.0f batches/s  %6.2f us/batch  %.1f M bucket "
              "updates/s  ratio %.2f\n",
              n / apply_s, 1e6 * apply_s / n, n * buckets_per_batch / apply_s / 1e6,
              apply_s / baseline_s);
  std::printf("  sparse state after the run : %.1f KB (%zu windows kept of %d seconds)\n",
              static_cast<double>(registry.SparseBytes()) / 1024,
              static_cast<size_t>(registry.GetRunStats("run-1", false, true)->windows_size()),
              kSeconds);

  // Full write path: SQLite (group commit 128) then Apply, on one thread.
  {
    const std::string path =
        (std::filesystem::temp_directory_path() / ("collector_bench_" + std::to_string(getpid()) +
                                                   ".db"))
            .string();
    auto store = SqliteBatchStore::Open(path);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", std::string(store.status().message()).c_str());
      return 1;
    }
    RunRegistry reg2;
    const size_t limit = std::min<size_t>(batches.size(), quick ? 480 : 2048);
    t0 = Clock::now();
    for (size_t i = 0; i < limit; i += 128) {
      std::vector<const v1::SampleBatch*> group;
      for (size_t j = i; j < std::min(limit, i + 128); ++j) {
        group.push_back(&batches[j]);
      }
      if (!(*store)->Insert(group).ok()) {
        return 1;
      }
      for (const auto* b : group) {
        (void)reg2.Apply(*b);
      }
    }
    t1 = Clock::now();
    store->reset();
    std::filesystem::remove(path);
    std::filesystem::remove(path + "-wal");
    std::filesystem::remove(path + "-shm");
    std::printf("  SQLite store + Apply       : %9.0f batches/s (group commit 128, "
                "synchronous=FULL)\n",
                static_cast<double>(limit) / Seconds(t0, t1));
  }

  // ---- 2. scrape: 100 runs x 8 metrics ----
  RunRegistry runs;
  Gen gen2(2);
  const int kRuns = 100;
  for (int r = 0; r < kRuns; ++r) {
    for (int w = 0; w < 4; ++w) {
      for (uint64_t s = 1; s <= 3; ++s) {
        (void)runs.Apply(MakeBatch(gen2, "run-" + std::to_string(r), "w" + std::to_string(w), s,
                                   kSamples));
      }
    }
  }
  IngestCounters counters;
  MetricsExposition exposition(&runs, &counters);
  const int kScrapes = quick ? 5 : 20;
  size_t text_bytes = 0;
  size_t series = 0;
  t0 = Clock::now();
  for (int i = 0; i < kScrapes; ++i) {
    const auto families = exposition.Collect();
    const std::string text = prometheus::TextSerializer().Serialize(families);
    text_bytes = text.size();
    series = 0;
    for (char c : text) {
      series += c == '\n';
    }
  }
  t1 = Clock::now();
  const double scrape_s = Seconds(t0, t1) / kScrapes;
  // Baseline: the exact quantiles alone.
  double checksum = 0;
  t0 = Clock::now();
  for (int i = 0; i < kScrapes; ++i) {
    runs.ForEachRun([&](const std::string&, const llmload::collector::RunState& run) {
      for (v1::Metric m : metrics::AllMetrics()) {
        const auto& h = run.merged->Hist(m);
        if (h.Empty()) {
          continue;
        }
        for (double p : {50.0, 90.0, 95.0, 99.0, 99.9}) {
          checksum += static_cast<double>(h.Percentile(p));
        }
      }
    });
  }
  t1 = Clock::now();
  const double quantiles_s = Seconds(t0, t1) / kScrapes;
  std::printf("scrape: %d runs x 8 metrics, %zu lines, %.0f KB of text\n", kRuns, series,
              static_cast<double>(text_bytes) / 1024);
  std::printf("  baseline quantiles only    : %7.2f ms\n", 1e3 * quantiles_s);
  std::printf("  Collect + serialize        : %7.2f ms  ratio %.2f  (checksum %.0f)\n",
              1e3 * scrape_s, scrape_s / quantiles_s, checksum > 0 ? 1.0 : 0.0);
  return 0;
}
