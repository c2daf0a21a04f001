// File: local_cluster.h
//
// `llmload local`: the emulator, collector, orchestrator and N workers as
// real child processes on free loopback ports, with their databases and logs
// in one state directory.

#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/llmload/cli_args.h"

namespace llmload::cli {

class LocalCluster {
 public:
  explicit LocalCluster(const Options& options) : options_(options) {}
  ~LocalCluster();

  // Starts every process and waits until the workers are attached.
  absl::Status Start();
  // SIGTERM to every child (workers first), SIGKILL after a grace period.
  void Stop();

  std::string orchestrator_address() const { return "127.0.0.1:" + std::to_string(orchestrator_port_); }
  std::string emulator_url() const { return "http://127.0.0.1:" + std::to_string(emulator_port_); }
  int collector_metrics_port() const { return collector_metrics_port_; }
  const std::string& state_dir() const { return state_dir_; }

 private:
  struct Child {
    std::string name;
    pid_t pid = -1;
    std::string log;
  };
  absl::Status Spawn(const std::string& name, const std::string& binary,
                     const std::vector<std::string>& args);
  absl::Status CheckAlive();

  Options options_;
  std::string state_dir_;
  std::string bin_dir_;
  int emulator_port_ = 0;
  int collector_port_ = 0;
  int collector_metrics_port_ = 0;
  int orchestrator_port_ = 0;
  std::vector<Child> children_;
};

}  // namespace llmload::cli
