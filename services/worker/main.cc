// llmload-worker: attaches to the orchestrator, runs the sessions of its
// shards against the target and ships samples to the collector.

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "lib/common/env.h"
#include "lib/common/log.h"
#include "services/common/flags.h"
#include "services/common/grpc_util.h"
#include "services/common/security_flags.h"
#include "services/worker/oneshot.h"
#include "services/worker/worker.h"

ABSL_FLAG(std::string, orchestrator, llmload::EnvOr("LLMLOAD_ORCHESTRATOR", "127.0.0.1:50051"),
          "Orchestrator gRPC address to attach to (env LLMLOAD_ORCHESTRATOR).");
ABSL_FLAG(std::string, collector, llmload::EnvOr("LLMLOAD_COLLECTOR", "127.0.0.1:50052"),
          "Collector gRPC address to ship samples to (env LLMLOAD_COLLECTOR).");
ABSL_FLAG(std::string, worker_id, llmload::EnvOr("LLMLOAD_WORKER_ID", ""),
          "Stable worker id (env LLMLOAD_WORKER_ID; default: <hostname>-<pid>).");
ABSL_FLAG(int32_t, capacity, llmload::EnvOr("LLMLOAD_WORKER_CAPACITY", int32_t{9000}),
          "Sessions this worker declares it can hold at once; the orchestrator splits runs "
          "in proportion to it (env LLMLOAD_WORKER_CAPACITY).");
ABSL_FLAG(int32_t, threads, llmload::EnvOr("LLMLOAD_WORKER_THREADS", int32_t{0}),
          "Event-loop threads, one io_context each (env LLMLOAD_WORKER_THREADS; 0: one per "
          "core).");
ABSL_FLAG(int32_t, batch_interval_ms, llmload::EnvOr("LLMLOAD_BATCH_INTERVAL_MS", int32_t{1000}),
          "How often samples are shipped to the collector, in ms (env "
          "LLMLOAD_BATCH_INTERVAL_MS).");
ABSL_FLAG(int32_t, max_unacked_batches,
          llmload::EnvOr("LLMLOAD_MAX_UNACKED_BATCHES", int32_t{3600}),
          "Batches kept for resending while the collector is unreachable; past it the "
          "oldest are dropped and reported (env LLMLOAD_MAX_UNACKED_BATCHES).");
ABSL_FLAG(std::string, metrics_address,
          llmload::EnvOr("LLMLOAD_WORKER_METRICS_ADDRESS", "0.0.0.0:9103"),
          "host:port of the worker's Prometheus /metrics (process health); empty disables it "
          "(env LLMLOAD_WORKER_METRICS_ADDRESS).");
ABSL_FLAG(std::string, oneshot, "",
          "Run this run spec (proto JSON: a RunSpec or {\"spec\": ...}) in this process alone, "
          "without orchestrator or collector, print its statistics and exit (0: every request "
          "succeeded, 1: some failed, 2: bad spec).");
ABSL_FLAG(bool, oneshot_json, false, "With --oneshot: print the statistics as proto JSON.");
ABSL_FLAG(int32_t, drain_seconds, llmload::EnvOr("LLMLOAD_DRAIN_SECONDS", int32_t{10}),
          "On SIGTERM: how long the worker drains: no new requests, those in flight finish, "
          "the last batches are shipped and acked, and the orchestrator is told the worker is "
          "leaving so its unfinished work moves at once (env LLMLOAD_DRAIN_SECONDS).");

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "llmload-worker: %s\n", message.c_str());
  return 2;
}

// Every session holds a socket: take the whole hard limit on open
// descriptors, as any load generator must (the soft default is often 1024).
void RaiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) {
    return;
  }
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    LLMLOAD_LOG(kWarn, "Cannot raise the open-descriptor limit.")
        .Kv("soft", static_cast<uint64_t>(before))
        .Kv("hard", static_cast<uint64_t>(limit.rlim_max));
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals before any thread exists (gRPC starts its own
  // as soon as credentials are made); the main thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  llmload::InitProgram(argc, argv, "worker",
                       "runs load-test shards assigned by the orchestrator.\n"
                       "Usage: llmload-worker [--orchestrator=HOST:PORT] [--collector=HOST:PORT] "
                       "[flags]");
  RaiseDescriptorLimit();
  llmload::worker::WorkerConfig config;
  config.orchestrator = absl::GetFlag(FLAGS_orchestrator);
  config.collector = absl::GetFlag(FLAGS_collector);
  config.worker_id = absl::GetFlag(FLAGS_worker_id);
  if (config.worker_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    config.worker_id = absl::StrCat(host, "-", getpid());
  }
  config.capacity = absl::GetFlag(FLAGS_capacity);
  if (config.capacity < 1) {
    return Fail("--capacity must be at least 1");
  }
  config.threads = absl::GetFlag(FLAGS_threads);
  if (config.threads < 0 || config.threads > 256) {
    return Fail("--threads must be between 0 and 256");
  }
  if (config.threads == 0) {
    config.threads = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  }
  const int32_t interval_ms = absl::GetFlag(FLAGS_batch_interval_ms);
  if (interval_ms < 50 || interval_ms > 60000) {
    return Fail("--batch_interval_ms must be between 50 and 60000");
  }
  config.batch_interval = absl::Milliseconds(interval_ms);
  if (absl::GetFlag(FLAGS_max_unacked_batches) < 1) {
    return Fail("--max_unacked_batches must be at least 1");
  }
  config.max_unacked_batches = static_cast<size_t>(absl::GetFlag(FLAGS_max_unacked_batches));
  config.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  // Links to the orchestrator and the collector: TLS from the --tls_* flags,
  // the join token on every call.
  auto tls = llmload::TlsFilesFromFlags();
  auto join = tls.ok() ? llmload::JoinTokenFromFlags() : tls.status();
  if (!join.ok()) {
    return Fail(std::string(join.status().message()));
  }
  if (absl::Status s = llmload::ConfigureClientLinks({*tls, *join}); !s.ok()) {
    return Fail(std::string(s.message()));
  }


  if (const std::string spec = absl::GetFlag(FLAGS_oneshot); !spec.empty()) {
    std::atomic<bool> interrupted{false};
    std::thread([signals, &interrupted]() mutable {
      int sig = 0;
      if (sigwait(&signals, &sig) == 0) {
        interrupted = true;
      }
    }).detach();
    llmload::worker::OneShotOptions options;
    options.spec_path = spec;
    options.threads = config.threads;
    options.capacity = config.capacity;
    options.json = absl::GetFlag(FLAGS_oneshot_json);
    return llmload::worker::RunOneShot(options, [&interrupted] { return interrupted.load(); });
  }

  llmload::LogSecurity(*tls, nullptr, join->get());
  llmload::worker::Worker worker(config);
  worker.Start();
  int sig = 0;
  sigwait(&signals, &sig);
  LLMLOAD_LOG(kInfo, "Shutting down.").Kv("signal", sig);
  worker.Shutdown(absl::Seconds(absl::GetFlag(FLAGS_drain_seconds)));
  LLMLOAD_LOG(kInfo, "Worker stopped.");
  return 0;
}
