// The integration-test harness itself (tests/testing): a binary under test
// that crashes, or exits non-zero on its own, fails the test that started
// it, naming the binary, its pid and the signal, with the end of its log;
// the wait helpers stop early instead of running into their timeout.

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/stack.h"
#include "tests/testing/mono_clock.h"

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::ChildProcess;

// Runs `body` and returns the messages of the test failures it reported,
// keeping them from failing this test.
template <typename Body>
std::vector<std::string> FailuresOf(Body&& body) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ALL_THREADS, &results);
    body();
  }
  std::vector<std::string> messages;
  for (int i = 0; i < results.size(); ++i) {
    messages.push_back(results.GetTestPartResult(i).message());
  }
  return messages;
}

// True once `pid` has ended but is not reaped yet (a zombie): it is dead and
// the harness has not looked at it.
bool IsZombie(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string stat = ss.str();
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

::testing::AssertionResult WaitForZombie(pid_t pid) {
  const absl::Time deadline = testing_util::MonoNow() + absl::Seconds(20);
  while (testing_util::MonoNow() < deadline) {
    if (IsZombie(pid)) {
      return ::testing::AssertionSuccess();
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return ::testing::AssertionFailure() << "pid " << pid << " did not end";
}

class HarnessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir("harness");
    ASSERT_FALSE(dir_.empty());
  }

  std::unique_ptr<ChildProcess> StartEmulator(int* port) {
    auto emulator = testing_util::StartEmulator(dir_, port);
    EXPECT_NE(emulator, nullptr);
    // The port accepts before the emulator has logged that it listens; the
    // tests below look for that line in the log a crash leaves.
    if (emulator != nullptr) {
      EXPECT_TRUE(testing_util::WaitUntil(
          [&] { return emulator->ReadLog().find("Emulator listening.") != std::string::npos; },
          absl::Seconds(20), "the emulator's \"listening\" log line"));
    }
    return emulator;
  }

  std::string dir_;
};

TEST_F(HarnessTest, AChildKilledBySigsegvFailsTheTestWithTheSignalAndItsLog) {
  int port = 0;
  std::unique_ptr<ChildProcess> emulator = StartEmulator(&port);
  ASSERT_NE(emulator, nullptr);
  const pid_t pid = emulator->pid();
  // What a crash looks like from outside; the harness did not send it.
  ASSERT_EQ(::kill(pid, SIGSEGV), 0);
  ASSERT_TRUE(WaitForZombie(pid));

  // Checked at teardown: here, when the test's ChildProcess goes away.
  const std::vector<std::string> failures = FailuresOf([&] { emulator.reset(); });
  ASSERT_EQ(failures.size(), 1u);
  const std::string& message = failures[0];
  EXPECT_NE(message.find(absl::StrCat("llmload-emulator (pid ", pid,
                                      ") was killed by signal 11 (SIGSEGV)")),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("its log (" + dir_ + "/emulator.log) ends:"), std::string::npos)
      << message;
  EXPECT_NE(message.find("Emulator listening."), std::string::npos) << message;
}

TEST_F(HarnessTest, WaitHelpersStopEarlyWhenAChildDies) {
  int port = 0;
  std::unique_ptr<ChildProcess> emulator = StartEmulator(&port);
  ASSERT_NE(emulator, nullptr);
  const pid_t pid = emulator->pid();
  ASSERT_EQ(::kill(pid, SIGSEGV), 0);
  ASSERT_TRUE(WaitForZombie(pid));

  // Nothing will ever listen there; the wait must not take its 60 s.
  const int nobody = testing_util::FreePort();
  const absl::Time start = testing_util::MonoNow();
  ::testing::AssertionResult waited = ::testing::AssertionSuccess();
  const std::vector<std::string> failures =
      FailuresOf([&] { waited = testing_util::WaitForTcp(nobody, absl::Seconds(60)); });
  EXPECT_LT(testing_util::MonoNow() - start, absl::Seconds(10));
  EXPECT_FALSE(waited);
  const std::string crash =
      absl::StrCat("llmload-emulator (pid ", pid, ") was killed by signal 11 (SIGSEGV)");
  EXPECT_NE(std::string(waited.message()).find(crash), std::string::npos) << waited.message();
  // The crash itself was reported once, with the log.
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_NE(failures[0].find(crash), std::string::npos) << failures[0];
  EXPECT_NE(failures[0].find("Emulator listening."), std::string::npos) << failures[0];

  // Later waits stop early too, and the teardown does not report it again.
  EXPECT_TRUE(FailuresOf([&] {
                EXPECT_FALSE(testing_util::WaitForTcp(nobody, absl::Seconds(60)));
                emulator.reset();
              }).empty());
  EXPECT_LT(testing_util::MonoNow() - start, absl::Seconds(10));
}

TEST_F(HarnessTest, AChildThatExitsNonZeroOnItsOwnFailsTheTest) {
  auto worker = ChildProcess::Start(BinPath("llmload-worker"), {"--threads=999"},
                                    dir_ + "/worker.log", dir_);
  ASSERT_NE(worker, nullptr);
  const pid_t pid = worker->pid();
  ASSERT_TRUE(WaitForZombie(pid));
  const std::vector<std::string> failures = FailuresOf([&] { worker.reset(); });
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_NE(failures[0].find(absl::StrCat("llmload-worker (pid ", pid, ") exited with status 2")),
            std::string::npos)
      << failures[0];
  EXPECT_NE(failures[0].find("--threads must be between"), std::string::npos) << failures[0];
}

TEST_F(HarnessTest, EndsTheTestAskedForAreNoFailure) {
  const std::vector<std::string> failures = FailuresOf([&] {
    int port = 0;
    // Stopped with SIGTERM.
    std::unique_ptr<ChildProcess> emulator = StartEmulator(&port);
    ASSERT_NE(emulator, nullptr);
    const int status = emulator->Stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    // Killed.
    emulator = StartEmulator(&port);
    ASSERT_NE(emulator, nullptr);
    emulator->Kill();
    // A signal sent through the harness, then waited for.
    emulator = StartEmulator(&port);
    ASSERT_NE(emulator, nullptr);
    emulator->Signal(SIGKILL);
    EXPECT_EQ(emulator->Wait(absl::Seconds(20)), -1);
    const int killed = emulator->wait_status();
    EXPECT_TRUE(WIFSIGNALED(killed) && WTERMSIG(killed) == SIGKILL) << killed;
    emulator.reset();
    // A non-zero exit the test waits for is the test's to judge.
    auto worker = ChildProcess::Start(BinPath("llmload-worker"), {"--threads=999"},
                                      dir_ + "/worker.log", dir_);
    ASSERT_NE(worker, nullptr);
    EXPECT_EQ(worker->Wait(absl::Seconds(20)), 2);
  });
  EXPECT_TRUE(failures.empty()) << failures.front();
}

// The whole-stack fixture: a worker that crashes mid-run is named at once,
// not found later as a "stream closed" or a run that never ends.
class HarnessStackTest : public testing_util::StackTest {
 protected:
  void SetUp() override {
    testing_util::StackOptions options;
    options.workers = 1;
    StartStack(options);
  }
};

TEST_F(HarnessStackTest, AWorkerCrashMidRunStopsWaitForEndWithTheSignal) {
  v1::RunSpec spec;
  spec.set_name("harness-crash");
  spec.mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
  spec.mutable_target()->set_url(EmulatorUrl());
  spec.mutable_load()->mutable_duration()->set_connections(2);
  spec.mutable_load()->mutable_duration()->mutable_duration()->set_seconds(120);
  spec.mutable_emulation()->set_length_words(5);
  const v1::Run run = StartRun(spec);
  ASSERT_FALSE(run.id().empty());
  absl::SleepFor(absl::Milliseconds(500));
  const pid_t pid = workers_[0]->pid();
  ASSERT_EQ(::kill(pid, SIGSEGV), 0);

  const absl::Time start = testing_util::MonoNow();
  const std::vector<std::string> failures =
      FailuresOf([&] { WaitForEnd(run.id(), absl::Seconds(120)); });
  // Well before the orchestrator gives the worker up (10 s) and fails the run.
  EXPECT_LT(testing_util::MonoNow() - start, absl::Seconds(5));
  const std::string crash =
      absl::StrCat("llmload-worker (pid ", pid, ") was killed by signal 11 (SIGSEGV)");
  // One failure from the harness (with the worker's log), one from the wait
  // that gave up because of it.
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_NE(failures[0].find(crash), std::string::npos) << failures[0];
  EXPECT_NE(failures[0].find("worker-0.log) ends:"), std::string::npos) << failures[0];
  EXPECT_NE(failures[1].find("stopped waiting for the end of run " + run.id() + ": " + crash),
            std::string::npos)
      << failures[1];
}

}  // namespace
}  // namespace llmload
