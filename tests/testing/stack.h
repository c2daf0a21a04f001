// File: stack.h
//
// A whole llmload deployment for integration tests: the real emulator,
// collector, orchestrator and workers as child processes on free loopback
// ports, sharing one temp directory. Fixtures derive from StackTest and call
// StartStack() in SetUp; TearDown stops everything (printing the services'
// logs when the test failed). A service that crashes (or exits non-zero on
// its own) fails the test, naming it and the signal; the wait helpers below
// stop early when that happens (see ChildProcess in process.h).
//
//   class MyTest : public testing_util::StackTest {
//     void SetUp() override { StartStack(testing_util::StackOptions()); }
//   };

#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "tests/testing/process.h"

namespace llmload::testing_util {

// A spec's "target" (JSON) for `protocol` ("OPENAI_CHAT", ...) on the
// emulator at 127.0.0.1:port: the endpoint `llmload local --protocol` uses,
// model "m".
std::string EmulatorTargetJson(const std::string& protocol, int port);

struct StackOptions {
  int workers = 2;
  int worker_threads = 1;
  std::vector<std::string> emulator_args;      // extra flags
  std::vector<std::string> worker_args;        // extra flags for every worker
  std::vector<std::string> orchestrator_args;  // extra flags
  std::vector<std::string> worker_env;         // extra NAME=value for every worker
};

class StackTest : public ::testing::Test {
 protected:
  // Starts every service and waits until the workers are attached.
  void StartStack(const StackOptions& options);
  // Starts (or restarts) the collector on its port and database.
  void StartCollector();
  // Starts (or restarts) the orchestrator on its port and database.
  void StartOrchestrator();
  // Starts (or restarts) worker `i` (worker-<i>) with the stack's flags and
  // `extra_args`; its log goes to worker-<i>.log (appended on a restart).
  void StartWorker(int i, const std::vector<std::string>& extra_args = {});
  void TearDown() override;

  // Fails early, like every wait here, when a service has died.
  ::testing::AssertionResult WaitForWorkers(int n, absl::Duration timeout);
  // StartRun over gRPC (expects success).
  v1::Run StartRun(const v1::RunSpec& spec);
  // Polls GetRun until the run is COMPLETED, FAILED or CANCELLED; a failure
  // when it is not by `timeout`.
  v1::Run WaitForEnd(const std::string& id, absl::Duration timeout);
  std::string EmulatorUrl() const;

  // Counter and metric look-ups in merged statistics.
  static uint64_t CounterOf(const v1::RunStats& stats, v1::Counter counter);
  static const v1::MetricStats* MetricOf(const v1::RunStats& stats, v1::Metric metric);

  StackOptions options_;
  std::string dir_;
  int emulator_port_ = 0;
  int collector_port_ = 0;
  int metrics_port_ = 0;
  int orchestrator_port_ = 0;
  std::unique_ptr<ChildProcess> emulator_, collector_, orchestrator_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
  std::unique_ptr<v1::Orchestrator::Stub> stub_;
};

}  // namespace llmload::testing_util
