// File: process.h
//
// Test harness for integration tests: start the real binaries as child
// processes on loopback ports, wait for them under a deadline, stop them.
//
//   auto port = testing_util::FreePort();
//   auto p = testing_util::ChildProcess::Start(testing_util::BinPath("llmload-emulator"),
//                                         {"--port=" + std::to_string(port)});
//   ASSERT_TRUE(testing_util::WaitForTcp(port, absl::Seconds(10)));

#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace llmload::testing_util {

// A loopback TCP port that was free a moment ago.
int FreePort();
// build/bin/<name>, from the LLMLOAD_BIN_DIR compile definition or the
// environment variable of the same name.
std::string BinPath(const std::string& name);
// A fresh empty directory under the test's temp dir.
std::string MakeTempDir(const std::string& prefix);

// True once 127.0.0.1:port accepts a TCP connection.
::testing::AssertionResult WaitForTcp(int port, absl::Duration timeout);

class ChildProcess {
 public:
  // Starts `path` with `args`; stdout/stderr go to `log_path` (or inherit
  // when empty). `cwd` empty keeps the current directory.
  static std::unique_ptr<ChildProcess> Start(const std::string& path,
                                             const std::vector<std::string>& args,
                                             const std::string& log_path = "",
                                             const std::string& cwd = "",
                                             const std::vector<std::string>& extra_env = {});
  ~ChildProcess();  // SIGKILL if still running

  pid_t pid() const { return pid_; }
  bool Running();
  // Sends SIGTERM and waits; SIGKILL after `grace`. Returns the exit status
  // as from waitpid (or -1).
  int Stop(absl::Duration grace = absl::Seconds(5));
  void Kill();  // SIGKILL and reap
  // Waits for exit; returns the exit code, or -1 on timeout / signal.
  int Wait(absl::Duration timeout);
  const std::string& log_path() const { return log_path_; }
  std::string ReadLog() const;

 private:
  ChildProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  int status_ = -1;
  bool reaped_ = false;
  std::string log_path_;
};

struct ShellResult {
  int exit_code = -1;  // -1 when the command did not exit normally
  std::string output;
};
// Runs a shell command line and captures its standard output (and its
// standard error too when `with_stderr`).
ShellResult RunShell(const std::string& command, bool with_stderr = true);

// Minimal blocking HTTP/1.1 GET against 127.0.0.1:port; returns the body,
// or an empty string on failure. *status receives the status code.
std::string HttpGet(int port, const std::string& target, int* status = nullptr);

}  // namespace llmload::testing_util
