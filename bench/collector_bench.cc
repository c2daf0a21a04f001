// collector_bench: can one collector core take a fleet of workers?
//
// Simulates `--workers` workers (1 000 by default) each shipping one
// realistic batch a second (8 latency metrics, `--samples` requests each and
// ten ITL samples per request, every counter) for `--seconds` seconds of
// data (600 by default), on one process:
//
//  1. Ingest CPU per batch on the decode-once path (RunRegistry::Decode,
//     Check, Apply: what the writer thread does). Baseline in the same run:
//     Histogram::MergeEncoded of the same deltas into one dense histogram,
//     the least any exact merge must do.
//  2. The durable write path: the real IngestPipeline over a SQLite store
//     (synchronous=FULL, group commit), each simulated second's batches
//     submitted at once and waited for (every ack is after its commit).
//     CPU is the process's less the driving thread's, so it is what the
//     writer thread (decode, SQLite, merge) spent; headroom = one core ÷
//     the CPU one second of the fleet's batches costs.
//  3. Memory after the run: resident memory added by the run and the
//     registry's sparse state (per-worker sets, 1 s windows).
//  4. /metrics: MetricsExposition::Collect + text serialization of the run
//     with its workers, with the worker label on the classic histograms and
//     without it. Baseline: the five Percentile() calls per histogram the
//     exact quantiles need, alone.
//
// Usage: collector_bench [--workers=1000] [--seconds=600] [--samples=200]
//                        [--group=128] [--quick]   (--quick: --seconds=30)

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "lib/histogram/histogram.h"
#include "lib/metrics/metrics.h"
#include "prometheus/text_serializer.h"
#include "services/collector/ingest_pipeline.h"
#include "services/collector/metrics_exposition.h"
#include "services/collector/run_registry.h"
#include "services/collector/store.h"

namespace {

using llmload::collector::DecodedBatch;
using llmload::collector::IngestCounters;
using llmload::collector::IngestPipeline;
using llmload::collector::MetricsExposition;
using llmload::collector::RunRegistry;
using llmload::collector::SqliteBatchStore;
namespace metrics = llmload::metrics;
namespace v1 = llmload::v1;
using Clock = std::chrono::steady_clock;

constexpr int64_t kEpochUs = 1'700'000'000'000'000;

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

// One worker-second's histograms and counters: `samples` per metric, 8 of
// them (ITL gets 10x: one per token).
v1::SampleBatch MakeTemplate(Gen& gen, int samples) {
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
  b.set_protocol("OPENAI_CHAT");
  set.AppendTo(b);
  return b;
}

// Worker `w`'s batch of second `s` (1-based): a template with its identity.
v1::SampleBatch Stamp(const v1::SampleBatch& tmpl, const std::string& run, int w, int s) {
  v1::SampleBatch b = tmpl;
  b.set_run_id(run);
  b.set_worker_id("worker-" + std::to_string(w));
  b.set_sequence(static_cast<uint64_t>(s));
  b.set_interval_start_us(kEpochUs + static_cast<int64_t>(s - 1) * 1'000'000);
  b.set_interval_end_us(kEpochUs + static_cast<int64_t>(s) * 1'000'000);
  b.set_active_sessions(100);
  b.set_worker_cpu_percent(40);
  b.set_worker_loop_lag_ms(1);
  return b;
}

uint64_t NonEmptyBuckets(const v1::SampleBatch& b) {
  uint64_t n = 0;
  llmload::histogram::SparseDecoded d;
  for (const auto& h : b.histograms()) {
    if (llmload::histogram::Histogram::DecodeSparse(h.encoded(), &d).ok()) {
      n += d.entries.size();
    }
  }
  return n;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double CpuSeconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Resident memory of this process (VmRSS), bytes.
size_t RssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return static_cast<size_t>(std::strtoull(line.c_str() + 6, nullptr, 10)) * 1024;
    }
  }
  return 0;
}

int IntFlag(int argc, char** argv, const char* name, int fallback) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      return std::atoi(argv[i] + prefix.size());
    }
  }
  return fallback;
}

bool HasFlag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) {
      return true;
    }
  }
  return false;
}

// Waits until `n` callbacks ran.
class Countdown {
 public:
  void Add(int n) {
    absl::MutexLock lock(&mu_);
    left_ += n;
  }
  void Done(bool ok) {
    absl::MutexLock lock(&mu_);
    --left_;
    failed_ += ok ? 0 : 1;
  }
  int Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* left) { return *left == 0; }, &left_));
    return failed_;
  }

 private:
  absl::Mutex mu_;
  int left_ = 0;
  int failed_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const bool quick = HasFlag(argc, argv, "--quick");
  const int workers = IntFlag(argc, argv, "workers", 1000);
  const int seconds = IntFlag(argc, argv, "seconds", quick ? 30 : 600);
  const int samples = IntFlag(argc, argv, "samples", 200);
  const int group = IntFlag(argc, argv, "group", 128);
  if (workers < 1 || seconds < 2 || samples < 1 || group < 1) {
    std::fprintf(stderr, "--workers, --samples, --group must be >= 1, --seconds >= 2\n");
    return 2;
  }
  std::printf("fleet: %d workers x %d s, one batch per worker-second (%d requests, %d ITL "
              "samples, 8 metrics)\n",
              workers, seconds, samples, samples * 10);

  // Distinct templates, so neighbouring workers do not ship identical data.
  Gen gen(1);
  std::vector<v1::SampleBatch> templates;
  for (int i = 0; i < 32; ++i) {
    templates.push_back(MakeTemplate(gen, samples));
  }
  uint64_t buckets = 0;
  size_t bytes = 0;
  for (const auto& t : templates) {
    buckets += NonEmptyBuckets(t);
    bytes += Stamp(t, "run-1", 0, 1).ByteSizeLong();
  }
  const double buckets_per_batch = static_cast<double>(buckets) / templates.size();
  std::printf("  %.0f non-empty buckets and %zu bytes per batch\n", buckets_per_batch,
              bytes / templates.size());
  auto stamp = [&](const std::string& run, int w, int s) {
    return Stamp(templates[static_cast<size_t>(w * 7 + s) % templates.size()], run, w, s);
  };

  // ---- 1. ingest CPU per batch: decode once, check, apply ----
  {
    const int probe_seconds = std::min(seconds, 5);
    std::vector<v1::SampleBatch> batches;
    for (int s = 1; s <= probe_seconds; ++s) {
      for (int w = 0; w < workers; ++w) {
        batches.push_back(stamp("run-probe", w, s));
      }
    }
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
      absl::StatusOr<DecodedBatch> decoded = RunRegistry::Decode(b);
      if (!decoded.ok() || !registry.Check(*decoded).ok() || !registry.Apply(*decoded).ok()) {
        std::fprintf(stderr, "apply failed\n");
        return 1;
      }
    }
    t1 = Clock::now();
    const double apply_s = Seconds(t0, t1);
    const double n = static_cast<double>(batches.size());
    std::printf("ingest (%zu batches, in memory):\n", batches.size());
    std::printf("  baseline MergeEncoded only : %8.0f batches/s  %7.2f us/batch\n",
                n / baseline_s, 1e6 * baseline_s / n);
    std::printf("  Decode + Check + Apply     : %8.0f batches/s  %7.2f us/batch  %.1f M bucket "
                "updates/s  ratio %.2f\n",
                n / apply_s, 1e6 * apply_s / n, n * buckets_per_batch / apply_s / 1e6,
                apply_s / baseline_s);
  }

  // ---- 2. the durable write path, second by second ----
  const std::string path =
      (std::filesystem::temp_directory_path() /
       ("collector_bench_" + std::to_string(getpid()) + ".db"))
          .string();
  auto store = SqliteBatchStore::Open(path);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", std::string(store.status().message()).c_str());
    return 1;
  }
  RunRegistry registry;
  IngestCounters counters;
  const size_t rss_before = RssBytes();
  double ingest_cpu = 0;
  double ingest_wall = 0;
  double worst_wall = 0;
  int failed = 0;
  {
    IngestPipeline pipeline(store->get(), &registry, &counters, static_cast<size_t>(group));
    std::vector<v1::SampleBatch> second;
    second.reserve(static_cast<size_t>(workers));
    for (int s = 1; s <= seconds; ++s) {
      second.clear();
      for (int w = 0; w < workers; ++w) {
        second.push_back(stamp("run-1", w, s));
      }
      Countdown acks;
      acks.Add(workers);
      const double proc0 = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
      const double self0 = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
      const auto t0 = Clock::now();
      for (v1::SampleBatch& b : second) {
        pipeline.Submit(std::move(b), [&acks](absl::StatusOr<v1::IngestAck> ack) {
          acks.Done(ack.ok() && ack->error().empty());
        });
      }
      failed += acks.Wait();
      const double wall = Seconds(t0, Clock::now());
      ingest_wall += wall;
      worst_wall = std::max(worst_wall, wall);
      ingest_cpu += (CpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - proc0) -
                    (CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - self0);
    }
  }
  const size_t rss_after = RssBytes();
  const double total = static_cast<double>(workers) * seconds;
  const double cpu_per_second = ingest_cpu / seconds;  // core-seconds per second of data
  std::error_code ec;
  const auto db_bytes = std::filesystem::file_size(path, ec) +
                        std::filesystem::file_size(path + "-wal", ec);
  std::printf("durable ingest (IngestPipeline + SQLite synchronous=FULL, group <= %d):\n", group);
  std::printf("  %d failed acks, %llu applied, %llu commits (%.1f batches each)\n", failed,
              static_cast<unsigned long long>(counters.applied.load()),
              static_cast<unsigned long long>(counters.commits.load()),
              total / static_cast<double>(std::max<uint64_t>(1, counters.commits.load())));
  std::printf("  writer CPU %.1f us/batch; one second of %d workers costs %.3f core-s: "
              "headroom %.1fx on one core\n",
              1e6 * ingest_cpu / total, workers, cpu_per_second, 1.0 / cpu_per_second);
  std::printf("  wall per second of data: mean %.3f s, worst %.3f s (fsync included); "
              "database %.0f MB\n",
              ingest_wall / seconds, worst_wall, static_cast<double>(db_bytes) / 1e6);
  store->reset();
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");

  // ---- 3. memory ----
  // The per-worker sets are bounded (compacted); the 1 s windows grow with
  // the run until ten minutes, then age into coarser ones.
  size_t worker_bytes = 0;
  size_t window_bytes = 0;
  size_t windows = 0;
  registry.ForEachRun([&](const std::string&, const llmload::collector::RunState& run) {
    window_bytes += run.windows.Bytes();
    windows += run.windows.NumWindows();
    for (const auto& [id, w] : run.workers) {
      worker_bytes += w.metrics.Bytes();
    }
  });
  const double per_window =
      static_cast<double>(window_bytes) / static_cast<double>(std::max<size_t>(1, windows));
  std::printf("memory after %d s: +%.1f MB resident; sparse state: workers %.1f MB, %zu "
              "windows %.1f MB (%.2f MB each)\n",
              seconds, static_cast<double>(rss_after - rss_before) / 1e6,
              static_cast<double>(worker_bytes) / 1e6, windows,
              static_cast<double>(window_bytes) / 1e6, per_window / 1e6);
  if (seconds < 600) {
    std::printf("  extrapolated to 600 s (one more 1 s window a second): sparse state %.0f MB\n",
                (static_cast<double>(worker_bytes) + 600.0 * per_window) / 1e6);
  }

  // ---- 4. /metrics ----
  const int scrapes = 3;
  double checksum = 0;
  auto t0 = Clock::now();
  for (int i = 0; i < scrapes; ++i) {
    registry.ForEachRun([&](const std::string&, const llmload::collector::RunState& run) {
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
  const double quantiles_s = Seconds(t0, Clock::now()) / scrapes;
  std::printf("scrape of 1 run x %d workers (baseline quantiles only %.2f ms%s):\n", workers,
              1e3 * quantiles_s, checksum > 0 ? "" : " (empty)");
  for (const bool worker_label : {true, false}) {
    MetricsExposition::Options options;
    options.worker_label = worker_label;
    MetricsExposition exposition(&registry, &counters, options);
    size_t text_bytes = 0;
    size_t lines = 0;
    t0 = Clock::now();
    for (int i = 0; i < scrapes; ++i) {
      const std::string text = prometheus::TextSerializer().Serialize(exposition.Collect());
      text_bytes = text.size();
      lines = 0;
      for (char c : text) {
        lines += c == '\n';
      }
    }
    const double scrape_s = Seconds(t0, Clock::now()) / scrapes;
    std::printf("  worker label %-3s : %8.1f ms  ratio %6.1f  %zu lines, %.1f MB of text\n",
                worker_label ? "on" : "off", 1e3 * scrape_s, scrape_s / quantiles_s, lines,
                static_cast<double>(text_bytes) / 1e6);
  }
  return failed == 0 ? 0 : 1;
}
