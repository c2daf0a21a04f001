// The llmload command line as users run it: `llmload local`, and the remote
// subcommands against running services.

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::ChildProcess;
using testing_util::RunShell;
using testing_util::ShellResult;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The pid of a child of `parent` with `arg` on its command line (or running
// the binary named `arg`), or -1: how a test finds a service `llmload local`
// started.
pid_t ChildWithArg(pid_t parent, const std::string& arg) {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return -1;
  }
  pid_t found = -1;
  while (dirent* entry = ::readdir(proc)) {
    const pid_t pid = std::atoi(entry->d_name);
    if (pid <= 0) {
      continue;
    }
    const std::string dir = absl::StrCat("/proc/", pid);
    const std::string stat = ReadFile(dir + "/stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) {
      continue;
    }
    // After the name: state, then the parent's pid.
    const std::vector<std::string> fields =
        absl::StrSplit(stat.substr(paren + 2), ' ', absl::SkipEmpty());
    if (fields.size() < 2 || std::atoi(fields[1].c_str()) != parent) {
      continue;
    }
    const std::vector<std::string> argv =
        absl::StrSplit(ReadFile(dir + "/cmdline"), '\0', absl::SkipEmpty());
    for (const std::string& a : argv) {
      if (a == arg || absl::EndsWith(a, "/" + arg)) {
        found = pid;
      }
    }
  }
  ::closedir(proc);
  return found;
}

// `llmload local` as a child process of the test, its output in a file.
class CliProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir("cli-proc");
    ASSERT_FALSE(dir_.empty());
  }

  void TearDown() override {
    if (stopped_worker_ > 0) {
      ::kill(stopped_worker_, SIGCONT);
    }
    // A test that gave up early: let llmload stop its services itself.
    if (cli_ != nullptr && cli_->Running()) {
      cli_->Stop(absl::Seconds(30));
    }
    if (HasFailure() && cli_ != nullptr) {
      std::cerr << "---- llmload output ----\n" << cli_->ReadLog() << "\n";
    }
  }

  void StartLocal(const std::vector<std::string>& flags) {
    std::vector<std::string> args = {"local", "--state-dir", dir_ + "/state",
                                      "--progress-interval", "0.5"};
    args.insert(args.end(), flags.begin(), flags.end());
    cli_ = ChildProcess::Start(BinPath("llmload"), args, dir_ + "/llmload.out", dir_);
    ASSERT_NE(cli_, nullptr);
  }

  ::testing::AssertionResult WaitForOutput(const std::string& text, absl::Duration timeout) {
    return testing_util::WaitUntil(
        [&] { return absl::StrContains(cli_->ReadLog(), text); }, timeout,
        absl::StrCat("\"", text, "\" from llmload"));
  }

  // A service of the local cluster, by an argument or its binary's name.
  pid_t ChildOfCli(const std::string& arg) { return ChildWithArg(cli_->pid(), arg); }

  std::string dir_;
  std::unique_ptr<ChildProcess> cli_;
  pid_t stopped_worker_ = -1;
};

// A service that dies mid-run is named, with its pid and how it died, as
// soon as it dies and again on the way out; the exit status says the run
// cannot be trusted.
TEST_F(CliProcessTest, LocalSaysWhichWorkerDiedAndFails) {
  ASSERT_NO_FATAL_FAILURE(StartLocal({"--clients", "4", "--cycles", "30", "--length", "20",
                                      "--delay", "0.01", "--max-concurrent", "4", "--workers",
                                      "2"}));
  ASSERT_TRUE(WaitForOutput("Run started.", absl::Seconds(60)));
  absl::SleepFor(absl::Seconds(1));
  const pid_t worker = ChildOfCli("--worker_id=local-worker-1");
  ASSERT_GT(worker, 0) << cli_->ReadLog();
  ASSERT_EQ(::kill(worker, SIGSEGV), 0);

  const std::string died =
      absl::StrCat("worker-1 (pid ", worker, ") was killed by signal 11 (SIGSEGV)");
  // Said while the run goes on, with the end of the worker's log.
  EXPECT_TRUE(WaitForOutput(died + "; the end of its log", absl::Seconds(10)));
  EXPECT_EQ(cli_->Wait(absl::Seconds(180)), 1) << cli_->ReadLog();
  const std::string out = cli_->ReadLog();
  // The crash handler's trace, relayed from the worker's log.
  EXPECT_NE(out.find("*** SIGSEGV received"), std::string::npos) << out;
  // Said again after the report.
  const size_t report = out.find("LOAD TEST RESULTS");
  ASSERT_NE(report, std::string::npos) << out;
  EXPECT_NE(out.find(absl::StrCat("llmload: ", died, "; its log: ", dir_,
                                  "/state/worker-1.log"),
                     report),
            std::string::npos)
      << out;
  // Only that one: the others stopped cleanly.
  EXPECT_EQ(out.find("while stopping"), std::string::npos) << out;
  // The logs are kept for a look.
  EXPECT_EQ(::access((dir_ + "/state/worker-1.log").c_str(), R_OK), 0);
}

// The run itself may complete without the dead service (here the target:
// the sessions count connect failures and finish), yet the exit status
// still fails.
TEST_F(CliProcessTest, LocalFailsWhenAServiceDiedEvenIfTheRunCompleted) {
  ASSERT_NO_FATAL_FAILURE(StartLocal({"--clients", "4", "--cycles", "30", "--length", "20",
                                      "--delay", "0.01", "--max-concurrent", "4", "--workers",
                                      "2"}));
  ASSERT_TRUE(WaitForOutput("Run started.", absl::Seconds(60)));
  absl::SleepFor(absl::Seconds(1));
  const pid_t emulator = ChildOfCli("llmload-emulator");
  ASSERT_GT(emulator, 0) << cli_->ReadLog();
  ASSERT_EQ(::kill(emulator, SIGSEGV), 0);

  EXPECT_EQ(cli_->Wait(absl::Seconds(180)), 1) << cli_->ReadLog();
  const std::string out = cli_->ReadLog();
  const size_t report = out.find("state=COMPLETED");
  ASSERT_NE(report, std::string::npos) << out;
  EXPECT_NE(out.find(absl::StrCat("llmload: emulator (pid ", emulator,
                                  ") was killed by signal 11 (SIGSEGV); its log: ", dir_,
                                  "/state/emulator.log"),
                     report),
            std::string::npos)
      << out;
}

// Ctrl-C while a run is followed stops the run and keeps what it measured.
TEST_F(CliProcessTest, InterruptStopsTheRun) {
  ASSERT_NO_FATAL_FAILURE(StartLocal({"--clients", "2", "--cycles", "1000", "--length", "20",
                                      "--delay", "0.01", "--workers", "1"}));
  ASSERT_TRUE(WaitForOutput("Run started.", absl::Seconds(60)));
  absl::SleepFor(absl::Seconds(1));
  cli_->Signal(SIGINT);
  EXPECT_EQ(cli_->Wait(absl::Seconds(60)), 1) << cli_->ReadLog();
  const std::string out = cli_->ReadLog();
  EXPECT_NE(out.find("Interrupted: stopping run run-"), std::string::npos) << out;
  EXPECT_NE(out.find("state=CANCELLED"), std::string::npos) << out;
  EXPECT_NE(out.find("LOAD TEST RESULTS"), std::string::npos) << out;
}

// The interrupt watcher holds the orchestrator stub; it used to be a
// detached thread that outlived the run and the stub, so a Ctrl-C after the
// run (here: while `llmload local` stops its services) still reached it,
// after --timeout even through a freed stub. Now it ends with the run.
TEST_F(CliProcessTest, AnInterruptAfterTheRunIsNotActedOn) {
  ASSERT_NO_FATAL_FAILURE(StartLocal({"--clients", "2", "--cycles", "1000", "--length", "20",
                                      "--delay", "0.01", "--workers", "2", "--timeout", "3"}));
  ASSERT_TRUE(WaitForOutput("Run started.", absl::Seconds(60)));
  // A stopped worker holds the shutdown of the services for their 10 s
  // grace: the window in which the late interrupt comes.
  stopped_worker_ = ChildOfCli("--worker_id=local-worker-0");
  ASSERT_GT(stopped_worker_, 0) << cli_->ReadLog();
  ASSERT_EQ(::kill(stopped_worker_, SIGSTOP), 0);
  ASSERT_TRUE(WaitForOutput("gave up waiting for run", absl::Seconds(30)));
  cli_->Signal(SIGINT);
  EXPECT_EQ(cli_->Wait(absl::Seconds(60)), 1) << cli_->ReadLog();
  const std::string out = cli_->ReadLog();
  EXPECT_EQ(out.find("Interrupted: stopping run"), std::string::npos) << out;
}

TEST(CliTest, LocalRunsAWholeTestAndPrintsTheReport) {
  const std::string dir = testing_util::MakeTempDir("cli-local");
  const ShellResult r = RunShell(absl::StrCat(
      "timeout 120 ", BinPath("llmload"), " local --clients 6 --cycles 2 --length 20 --delay 0.002",
      " --max-concurrent 4 --workers 2 --progress-interval 0.2 --state-dir ", dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("LOAD TEST RESULTS"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Test completed. [run_id=run-"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("total_clients=6, total_cycles=12/12"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("THROUGHPUT:\n  [requests_per_sec="), std::string::npos);
  EXPECT_NE(r.output.find("REQUEST LATENCY (ms):\n  [p50="), std::string::npos);
  EXPECT_NE(r.output.find("TOKEN LATENCY (ms):\n  [p50="), std::string::npos);
  EXPECT_NE(r.output.find("CONNECTIONS:\n  [successful=6, failed=0, total_errors=0"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("[ok=12, "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tokens=240]"), std::string::npos) << r.output;
  // Structured progress lines.
  EXPECT_NE(r.output.find("INFO llmload Run started. [run_id="), std::string::npos);
  // The services wrote their logs in the state dir.
  for (const char* log : {"emulator.log", "collector.log", "orchestrator.log", "worker-0.log",
                          "worker-1.log"}) {
    EXPECT_EQ(::access((dir + "/" + log).c_str(), R_OK), 0) << log;
  }
}

TEST(CliTest, BadFlagsExitTwoWithAClearMessage) {
  ShellResult r = RunShell(absl::StrCat(BinPath("llmload"), " local --clients 0"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--clients: must be between 1 and 1000000, got 0 "
                          "[spec.load.closed.clients]"),
            std::string::npos)
      << r.output;
  r = RunShell(absl::StrCat(BinPath("llmload"), " frobnicate"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown command 'frobnicate'"), std::string::npos);
  r = RunShell(absl::StrCat("NUM_CLIENTS=abc ", BinPath("llmload"), " local"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("NUM_CLIENTS"), std::string::npos);
}

TEST(CliTest, RemoteCommandsAgainstRunningServices) {
  const std::string dir = testing_util::MakeTempDir("cli-remote");
  const int emu = testing_util::FreePort();
  const int col = testing_util::FreePort();
  const int met = testing_util::FreePort();
  const int orch = testing_util::FreePort();
  auto emulator = testing_util::ChildProcess::Start(
      BinPath("llmload-emulator"), {"--host=127.0.0.1", absl::StrCat("--port=", emu)},
      dir + "/emulator.log", dir);
  auto collector = testing_util::ChildProcess::Start(
      BinPath("llmload-collector"),
      {absl::StrCat("--grpc_address=127.0.0.1:", col),
       absl::StrCat("--metrics_address=127.0.0.1:", met)},
      dir + "/collector.log", dir);
  auto orchestrator = testing_util::ChildProcess::Start(
      BinPath("llmload-orchestrator"),
      {absl::StrCat("--grpc_address=127.0.0.1:", orch), absl::StrCat("--collector=127.0.0.1:", col)},
      dir + "/orchestrator.log", dir);
  auto worker = testing_util::ChildProcess::Start(
      BinPath("llmload-worker"),
      {absl::StrCat("--orchestrator=127.0.0.1:", orch), absl::StrCat("--collector=127.0.0.1:", col),
       "--worker_id=cli-w", "--threads=1", "--metrics_address="},
      dir + "/worker.log", dir);
  ASSERT_TRUE(testing_util::WaitForTcp(orch, absl::Seconds(20)));
  ASSERT_TRUE(testing_util::WaitForTcp(emu, absl::Seconds(20)));
  const std::string cli = absl::StrCat(BinPath("llmload"), " --orchestrator 127.0.0.1:", orch);

  // Wait for the worker to attach.
  ShellResult workers;
  for (int i = 0; i < 200; ++i) {
    workers = RunShell(cli + " workers");
    if (workers.output.find("cli-w") != std::string::npos) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_NE(workers.output.find("cli-w capacity="), std::string::npos) << workers.output;

  // A spec file in the grpcurl form.
  const std::string spec = dir + "/spec.json";
  FILE* f = std::fopen(spec.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fprintf(f,
               R"({"spec": {"name": "from-file", "target": {"protocol": "CENTRIFUGO_EMULATOR",
                  "url": "http://127.0.0.1:%d"}, "load": {"closed": {"clients": 3,
                  "cyclesPerClient": 2, "maxConcurrent": 3}},
                  "emulation": {"lengthWords": 5, "tokenDelay": "0.001s"}}})",
               emu);
  std::fclose(f);
  ShellResult run = RunShell(cli + " run -f " + spec + " --json");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("\"state\": \"COMPLETED\""), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("\"tokens\": \"30\""), std::string::npos) << run.output;

  // --detach prints the id; get, list and watch find the run.
  ShellResult detached = RunShell(cli + " run --url http://127.0.0.1:" + std::to_string(emu) +
                        " --clients 2 --cycles 1 --length 3 --delay 0.001 --detach --name det");
  ASSERT_EQ(detached.exit_code, 0) << detached.output;
  std::vector<std::string> lines = absl::StrSplit(detached.output, '\n', absl::SkipEmpty());
  ASSERT_FALSE(lines.empty());
  const std::string id = lines.back();
  ASSERT_EQ(id.rfind("run-", 0), 0u) << detached.output;
  ShellResult watched = RunShell(cli + " watch " + id);
  EXPECT_EQ(watched.exit_code, 0) << watched.output;
  EXPECT_NE(watched.output.find("Test completed. [run_id=" + id), std::string::npos);
  ShellResult got = RunShell(cli + " get " + id);
  EXPECT_EQ(got.exit_code, 0);
  EXPECT_NE(got.output.find("state=COMPLETED"), std::string::npos) << got.output;
  ShellResult list = RunShell(cli + " list");
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.output.find(id), std::string::npos) << list.output;
  EXPECT_NE(list.output.find("from-file"), std::string::npos) << list.output;

  // Errors from the server are reported with their code.
  ShellResult missing = RunShell(cli + " get run-does-not-exist");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.output.find("NOT_FOUND"), std::string::npos) << missing.output;
  ShellResult stop_done = RunShell(cli + " stop " + id);
  EXPECT_EQ(stop_done.exit_code, 2);
  EXPECT_NE(stop_done.output.find("FAILED_PRECONDITION"), std::string::npos) << stop_done.output;
}

}  // namespace
}  // namespace llmload
