// Every llmload binary, on a crash, writes a stack trace to its log and
// still dies by the signal: the real binaries, sent SIGSEGV (and SIGABRT)
// from outside.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <ostream>
#include <memory>
#include <regex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::ChildProcess;
using testing_util::FreePort;

// A loopback listener that accepts connections and never says a word: a
// client of it waits in its RPC.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        ::listen(fd_, 8) == 0) {
      socklen_t len = sizeof(addr);
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
      port_ = ntohs(addr.sin_port);
    }
  }
  ~SilentListener() {
    if (accepted_ >= 0) {
      ::close(accepted_);
    }
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int port() const { return port_; }
  // Waits (up to 20 s) for a client to connect.
  bool Accept() {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 20000) != 1) {
      return false;
    }
    accepted_ = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    return accepted_ >= 0;
  }

 private:
  int fd_ = -1;
  int accepted_ = -1;
  int port_ = 0;
};

struct Binary {
  std::string name;
  // Starts it (logging to `log`, working in `dir`) and waits until it runs
  // its main loop.
  std::function<std::unique_ptr<ChildProcess>(const std::string& dir, const std::string& log)>
      start;
};

void PrintTo(const Binary& binary, std::ostream* os) { *os << binary.name; }

std::unique_ptr<ChildProcess> StartWorker(const std::string& dir, const std::string& log) {
  // Nothing to attach to: it keeps trying, which is all this test needs.
  auto p = ChildProcess::Start(
      BinPath("llmload-worker"),
      {absl::StrCat("--orchestrator=127.0.0.1:", FreePort()),
       absl::StrCat("--collector=127.0.0.1:", FreePort()), "--worker_id=crash-w", "--threads=1",
       "--metrics_address="},
      log, dir);
  EXPECT_TRUE(testing_util::WaitUntil(
      [&] { return p->ReadLog().find("Worker started.") != std::string::npos; },
      absl::Seconds(20), "the worker to start"));
  return p;
}

std::unique_ptr<ChildProcess> StartListening(const std::string& binary,
                                             std::vector<std::string> args, int port,
                                             const std::string& dir, const std::string& log) {
  auto p = ChildProcess::Start(BinPath(binary), args, log, dir);
  EXPECT_TRUE(testing_util::WaitForTcp(port, absl::Seconds(20)));
  return p;
}

std::vector<Binary> Binaries() {
  return {
      {"worker", StartWorker},
      {"collector",
       [](const std::string& dir, const std::string& log) {
         const int port = FreePort();
         return StartListening("llmload-collector",
                               {absl::StrCat("--grpc_address=127.0.0.1:", port),
                                "--metrics_address=", "--db_path=collector.db"},
                               port, dir, log);
       }},
      {"orchestrator",
       [](const std::string& dir, const std::string& log) {
         const int port = FreePort();
         return StartListening("llmload-orchestrator",
                               {absl::StrCat("--grpc_address=127.0.0.1:", port),
                                absl::StrCat("--collector=127.0.0.1:", FreePort()),
                                "--db_path=orchestrator.db"},
                               port, dir, log);
       }},
      {"emulator",
       [](const std::string& dir, const std::string& log) {
         const int port = FreePort();
         return StartListening("llmload-emulator",
                               {"--host=127.0.0.1", absl::StrCat("--port=", port), "--threads=1",
                                "--tls_port=0"},
                               port, dir, log);
       }},
  };
}

class CrashHandlerTest : public ::testing::TestWithParam<Binary> {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir("crash");
    ASSERT_FALSE(dir_.empty());
    log_ = dir_ + "/" + GetParam().name + ".log";
  }

  // Sends `signal_number`, expects death by it and returns the log.
  std::string CrashWith(ChildProcess& p, int signal_number) {
    p.Signal(signal_number);
    EXPECT_EQ(p.Wait(absl::Seconds(20)), -1);
    const int status = p.wait_status();
    EXPECT_TRUE(WIFSIGNALED(status)) << "status " << status;
    EXPECT_EQ(WTERMSIG(status), signal_number);
    return p.ReadLog();
  }

  std::string dir_;
  std::string log_;
};

// Abseil's format: "*** SIGSEGV received at time=… ***", then one
// "    @ 0x…" line per frame.
::testing::AssertionResult HasStackTrace(const std::string& log, const std::string& signal) {
  if (log.find("*** " + signal + " received") == std::string::npos) {
    return ::testing::AssertionFailure() << "no \"*** " << signal << " received\" in:\n" << log;
  }
  static const std::regex kFrame(R"(\n\s*@\s+0x[0-9a-f]+)");
  if (!std::regex_search(log, kFrame)) {
    return ::testing::AssertionFailure() << "no stack frame in:\n" << log;
  }
  return ::testing::AssertionSuccess();
}

TEST_P(CrashHandlerTest, SigsegvLogsAStackTraceAndStillKillsTheProcess) {
  std::unique_ptr<ChildProcess> p = GetParam().start(dir_, log_);
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->Running());
  EXPECT_TRUE(HasStackTrace(CrashWith(*p, SIGSEGV), "SIGSEGV"));
}

TEST_P(CrashHandlerTest, SigabrtLogsAStackTraceAndStillKillsTheProcess) {
  std::unique_ptr<ChildProcess> p = GetParam().start(dir_, log_);
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->Running());
  EXPECT_TRUE(HasStackTrace(CrashWith(*p, SIGABRT), "SIGABRT"));
}

// SIGTERM stays the quiet way to stop: no trace, exit 0.
TEST_P(CrashHandlerTest, SigtermIsNoCrash) {
  std::unique_ptr<ChildProcess> p = GetParam().start(dir_, log_);
  ASSERT_NE(p, nullptr);
  const int status = p->Stop(absl::Seconds(20));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_EQ(p->ReadLog().find("*** SIGTERM received"), std::string::npos) << p->ReadLog();
}

INSTANTIATE_TEST_SUITE_P(Services, CrashHandlerTest, ::testing::ValuesIn(Binaries()),
                         [](const ::testing::TestParamInfo<Binary>& info) {
                           return info.param.name;
                         });

// The command-line tool too: `llmload watch` against a server that never
// answers waits in its RPC until it is killed.
TEST(CliCrashHandlerTest, SigsegvLogsAStackTraceAndStillKillsTheProcess) {
  const std::string dir = testing_util::MakeTempDir("crash-cli");
  SilentListener server;
  ASSERT_NE(server.port(), 0);
  auto cli = ChildProcess::Start(
      BinPath("llmload"),
      {"--orchestrator", absl::StrCat("127.0.0.1:", server.port()), "watch", "run-x"},
      dir + "/llmload.log", dir);
  ASSERT_NE(cli, nullptr);
  ASSERT_TRUE(server.Accept());  // the CLI is in its RPC, past main's set-up
  cli->Signal(SIGSEGV);
  EXPECT_EQ(cli->Wait(absl::Seconds(20)), -1);
  const int status = cli->wait_status();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) << "status " << status;
  EXPECT_TRUE(HasStackTrace(cli->ReadLog(), "SIGSEGV"));
}

}  // namespace
}  // namespace llmload
