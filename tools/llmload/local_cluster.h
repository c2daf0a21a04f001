// File: local_cluster.h
//
// `llmload local`: the emulator, collector, orchestrator and N workers as
// real child processes on free loopback ports, with their databases and logs
// in one state directory.
//
// Once started, a watcher thread reaps any child that ends before Stop() and
// says so on stderr at once (which one, its pid, how it ended, the end of
// its log); failures() keeps the list for the CLI's exit path.

#pragma once

#include <sys/types.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "tools/llmload/cli_args.h"

namespace llmload::cli {

class LocalCluster {
 public:
  // A child that ended other than by Stop()'s SIGTERM: it crashed, exited
  // on its own, or failed while stopping.
  struct ChildFailure {
    std::string name;  // "worker-1", "collector", …
    pid_t pid = -1;
    int status = 0;  // from waitpid
    bool while_stopping = false;
    std::string log;  // path of its log
    // "worker-1 (pid 4711) was killed by signal 11 (SIGSEGV)"
    std::string Describe() const;
  };

  explicit LocalCluster(const Options& options) : options_(options) {}
  ~LocalCluster();

  // Starts every process and waits until the workers are attached; then
  // watches them until Stop().
  absl::Status Start();
  // SIGTERM to every child (workers first), SIGKILL after a grace period.
  void Stop();
  // Every child that failed so far, in the order they were seen.
  std::vector<ChildFailure> failures() const;

  std::string orchestrator_address() const { return "127.0.0.1:" + std::to_string(orchestrator_port_); }
  std::string emulator_url() const { return "http://127.0.0.1:" + std::to_string(emulator_port_); }
  std::string emulator_address() const { return "127.0.0.1:" + std::to_string(emulator_port_); }
  int collector_metrics_port() const { return collector_metrics_port_; }
  std::string collector_address() const { return "127.0.0.1:" + std::to_string(collector_port_); }
  const std::string& state_dir() const { return state_dir_; }

 private:
  struct Child {
    std::string name;
    pid_t pid = -1;  // -1 once reaped
    std::string log;
  };
  absl::Status Spawn(const std::string& name, const std::string& binary,
                     const std::vector<std::string>& args);
  absl::Status CheckAlive();
  // Reaps the children that have ended; records and reports each.
  void ReapEndedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordFailureLocked(Child& child, int status, bool while_stopping)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WatchChildren();

  Options options_;
  std::string state_dir_;
  std::string bin_dir_;
  int emulator_port_ = 0;
  int collector_port_ = 0;
  int collector_metrics_port_ = 0;
  int orchestrator_port_ = 0;
  mutable absl::Mutex mu_;
  std::vector<Child> children_ ABSL_GUARDED_BY(mu_);
  std::vector<ChildFailure> failures_ ABSL_GUARDED_BY(mu_);
  bool stop_watching_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watcher_;
};

}  // namespace llmload::cli
