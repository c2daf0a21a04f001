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

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
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

// True once 127.0.0.1:port accepts a TCP connection. Gives up early when
// a ChildProcess of this test died (see CheckChildren).
::testing::AssertionResult WaitForTcp(int port, absl::Duration timeout);

// Polls `done` every `poll` until it returns true; fails after `timeout`, or
// as soon as a ChildProcess of this test died. `what` names the condition in
// the failure message.
::testing::AssertionResult WaitUntil(const std::function<bool()>& done, absl::Duration timeout,
                                     std::string_view what,
                                     absl::Duration poll = absl::Milliseconds(20));

// Polls every ChildProcess alive in this test binary (reaping one that has
// ended reports an unexpected end, see ChildProcess). Fails, naming the
// first, while any of them has ended unexpectedly.
::testing::AssertionResult CheckChildren();

// A binary under test, started with posix_spawn. Every ChildProcess is
// checked for an unexpected end: killed by a signal the test did not send
// through Signal(), Stop() or Kill(), or exited non-zero while nobody was in
// Wait() or Stop() for it. That is a test failure, naming the binary, its
// pid and the signal, with the tail of its log, e.g.
//
//   llmload-worker (pid 123) was killed by signal 11 (SIGSEGV); its log
//   (/tmp/stack/worker-0.log) ends: ...
//
// The check runs whenever the harness reaps the child: in Running(),
// Wait(), Stop(), Kill(), the destructor, WaitForTcp(), WaitUntil() and
// CheckChildren(). Thread-safe.
class ChildProcess {
 public:
  // Starts `path` with `args`; stdout/stderr go to `log_path` (or inherit
  // when empty). `cwd` empty keeps the current directory.
  static std::unique_ptr<ChildProcess> Start(const std::string& path,
                                             const std::vector<std::string>& args,
                                             const std::string& log_path = "",
                                             const std::string& cwd = "",
                                             const std::vector<std::string>& extra_env = {});
  ~ChildProcess();  // checks how it ended; SIGKILL if still running

  pid_t pid() const { return pid_; }
  // The binary's file name, e.g. "llmload-worker".
  const std::string& name() const { return name_; }
  bool Running();
  // Sends SIGTERM and waits; SIGKILL after `grace`. Returns the exit status
  // as from waitpid (or -1).
  int Stop(absl::Duration grace = absl::Seconds(5));
  void Kill();  // SIGKILL and reap
  // Sends `signal_number` on the test's behalf: ending by it is expected.
  void Signal(int signal_number);
  // Ending by `signal_number` is expected although the test does not send
  // it (a process a test hook makes crash).
  void AllowSignal(int signal_number);
  // Waits for exit; returns the exit code, or -1 on timeout / signal. The
  // caller takes charge of the exit code (a non-zero one is no failure).
  int Wait(absl::Duration timeout);
  // The status from waitpid once the child has been reaped, else -1.
  int wait_status();
  const std::string& log_path() const { return log_path_; }
  std::string ReadLog() const;

 private:
  ChildProcess(pid_t pid, std::string name, std::string log_path)
      : pid_(pid), name_(std::move(name)), log_path_(std::move(log_path)) {}
  // Reaps the child if it has ended; true while it runs.
  bool PollLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the status and reports an unexpected end.
  void ReapedLocked(int status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  friend ::testing::AssertionResult CheckChildren();

  const pid_t pid_;
  const std::string name_;
  const std::string log_path_;
  absl::Mutex mu_;
  bool reaped_ ABSL_GUARDED_BY(mu_) = false;
  int status_ ABSL_GUARDED_BY(mu_) = -1;
  // Signals sent through this object; bit n-1 stands for signal n.
  uint64_t sent_signals_ ABSL_GUARDED_BY(mu_) = 0;
  // Someone is (or was) in Wait() or Stop(): the exit code is theirs to judge.
  bool exit_awaited_ ABSL_GUARDED_BY(mu_) = false;
  // "llmload-worker (pid 123) was killed by signal 11 (SIGSEGV)" once the
  // child is seen to have ended unexpectedly; empty otherwise.
  std::string unexpected_end_ ABSL_GUARDED_BY(mu_);
};

// The emulator as most tests want it: one process, one loop, no TLS, on a
// free loopback port (set in *port), logging to dir/<log_name>, and
// accepting connections when this returns. Null (with a test failure) if it
// did not start.
std::unique_ptr<ChildProcess> StartEmulator(const std::string& dir, int* port,
                                            const std::string& log_name = "emulator.log");

// Resident set size of a process in KiB (VmRSS of /proc/<pid>/status), or
// -1 when it cannot be read.
int64_t RssKib(pid_t pid);

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
