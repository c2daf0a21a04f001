#include "tests/testing/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/base/const_init.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/common/wait_status.h"
#include "tests/testing/mono_clock.h"

extern char** environ;

namespace llmload::testing_util {
namespace {

int ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Every ChildProcess alive in this binary, for CheckChildren. The lock is
// taken before a child's own.
ABSL_CONST_INIT absl::Mutex g_children_mu(absl::kConstInit);
std::vector<ChildProcess*>* g_children ABSL_GUARDED_BY(g_children_mu) =
    new std::vector<ChildProcess*>();  // leaked: children may outlive static destruction

void Register(ChildProcess* child) {
  absl::MutexLock lock(&g_children_mu);
  g_children->push_back(child);
}

void Unregister(ChildProcess* child) {
  absl::MutexLock lock(&g_children_mu);
  std::erase(*g_children, child);
}

uint64_t SignalBit(int signal_number) {
  return signal_number >= 1 && signal_number <= 64 ? uint64_t{1} << (signal_number - 1) : 0;
}

// The last lines of a log, at most about `max_bytes` of them.
std::string TailOfFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > max_bytes) {
    text = text.substr(text.size() - max_bytes);
    if (const size_t eol = text.find('\n'); eol != std::string::npos) {
      text = text.substr(eol + 1);
    }
  }
  return text;
}

}  // namespace

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return 0;
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::unique_ptr<ChildProcess> StartEmulator(const std::string& dir, int* port,
                                            const std::string& log_name) {
  *port = FreePort();
  auto emulator = ChildProcess::Start(
      BinPath("llmload-emulator"),
      {"--host=127.0.0.1", absl::StrCat("--port=", *port), "--threads=1", "--tls_port=0"},
      dir + "/" + log_name, dir);
  if (emulator == nullptr) {
    ADD_FAILURE() << "llmload-emulator did not start";
    return nullptr;
  }
  if (::testing::AssertionResult up = WaitForTcp(*port, absl::Seconds(20)); !up) {
    ADD_FAILURE() << up.message();
    return nullptr;
  }
  return emulator;
}

std::string BinPath(const std::string& name) {
  if (const char* dir = std::getenv("LLMLOAD_BIN_DIR"); dir != nullptr && *dir != '\0') {
    return std::string(dir) + "/" + name;
  }
#ifdef LLMLOAD_BIN_DIR
  return std::string(LLMLOAD_BIN_DIR) + "/" + name;
#else
  return "build/bin/" + name;
#endif
}

std::string MakeTempDir(const std::string& prefix) {
  std::string base = ::testing::TempDir();
  if (base.empty()) {
    base = "/tmp/";
  }
  std::string tmpl = base + "/" + prefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* dir = ::mkdtemp(buf.data());
  return dir != nullptr ? std::string(dir) : std::string();
}

::testing::AssertionResult CheckChildren() {
  absl::MutexLock registry_lock(&g_children_mu);
  for (ChildProcess* child : *g_children) {
    absl::MutexLock lock(&child->mu_);
    child->PollLocked();
    if (!child->unexpected_end_.empty()) {
      return ::testing::AssertionFailure() << child->unexpected_end_;
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult WaitUntil(const std::function<bool()>& done, absl::Duration timeout,
                                     std::string_view what, absl::Duration poll) {
  const absl::Time deadline = testing_util::MonoNow() + timeout;
  for (;;) {
    if (done()) {
      return ::testing::AssertionSuccess();
    }
    // A dead service will not make the condition come true: say so now
    // rather than at the deadline.
    if (::testing::AssertionResult alive = CheckChildren(); !alive) {
      return ::testing::AssertionFailure()
             << "stopped waiting for " << what << ": " << alive.message();
    }
    if (testing_util::MonoNow() >= deadline) {
      return ::testing::AssertionFailure()
             << "gave up waiting for " << what << " after " << absl::FormatDuration(timeout);
    }
    absl::SleepFor(poll);
  }
}

::testing::AssertionResult WaitForTcp(int port, absl::Duration timeout) {
  return WaitUntil(
      [port] {
        const int fd = ConnectLoopback(port);
        if (fd >= 0) {
          ::close(fd);
        }
        return fd >= 0;
      },
      timeout, absl::StrCat("a listener on 127.0.0.1:", port));
}

std::unique_ptr<ChildProcess> ChildProcess::Start(const std::string& path,
                                                  const std::vector<std::string>& args,
                                                  const std::string& log_path,
                                                  const std::string& cwd,
                                                  const std::vector<std::string>& extra_env) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  }
  if (!cwd.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  }
  std::vector<std::string> storage;
  storage.push_back(path);
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) {
    argv.push_back(s.data());
  }
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    env_storage.emplace_back(*e);
  }
  env_storage.insert(env_storage.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& s : env_storage) {
    envp.push_back(s.data());
  }
  envp.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << path << ": " << std::strerror(rc);
    return nullptr;
  }
  std::unique_ptr<ChildProcess> child(
      new ChildProcess(pid, std::filesystem::path(path).filename().string(), log_path));
  Register(child.get());
  return child;
}

ChildProcess::~ChildProcess() {
  Unregister(this);
  Kill();
}

bool ChildProcess::PollLocked() {
  if (reaped_) {
    return false;
  }
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    ReapedLocked(status);
    return false;
  }
  if (r < 0 && errno == ECHILD) {
    // Reaped behind the harness's back: how it ended is unknown.
    reaped_ = true;
    return false;
  }
  return true;
}

void ChildProcess::ReapedLocked(int status) {
  reaped_ = true;
  status_ = status;
  const bool unexpected_signal =
      WIFSIGNALED(status) && (sent_signals_ & SignalBit(WTERMSIG(status))) == 0;
  const bool unexpected_exit = WIFEXITED(status) && WEXITSTATUS(status) != 0 && !exit_awaited_;
  if (!unexpected_signal && !unexpected_exit) {
    return;
  }
  unexpected_end_ = absl::StrCat(name_, " (pid ", pid_, ") ", DescribeWaitStatus(status));
  if (log_path_.empty()) {
    ADD_FAILURE() << unexpected_end_ << "; its output went to the test's own stdout and stderr";
  } else {
    ADD_FAILURE() << unexpected_end_ << "; its log (" << log_path_ << ") ends:\n"
                  << TailOfFile(log_path_, 4000);
  }
}

bool ChildProcess::Running() {
  absl::MutexLock lock(&mu_);
  return PollLocked();
}

int ChildProcess::wait_status() {
  absl::MutexLock lock(&mu_);
  PollLocked();
  return status_;
}

int ChildProcess::Wait(absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    exit_awaited_ = true;
  }
  const absl::Time deadline = testing_util::MonoNow() + timeout;
  while (Running()) {
    if (testing_util::MonoNow() >= deadline) {
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  absl::MutexLock lock(&mu_);
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
}

void ChildProcess::Signal(int signal_number) {
  absl::MutexLock lock(&mu_);
  if (PollLocked()) {
    sent_signals_ |= SignalBit(signal_number);
    ::kill(pid_, signal_number);
  }
}

void ChildProcess::AllowSignal(int signal_number) {
  absl::MutexLock lock(&mu_);
  sent_signals_ |= SignalBit(signal_number);
}

int64_t RssKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtoll(line.c_str() + 6, nullptr, 10);
    }
  }
  return -1;
}

int ChildProcess::Stop(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (!PollLocked()) {
      return status_;
    }
    // The caller gets the status: how it exited after SIGTERM is theirs to
    // judge. A crash by any other signal is still reported.
    exit_awaited_ = true;
    sent_signals_ |= SignalBit(SIGTERM);
    ::kill(pid_, SIGTERM);
  }
  if (Wait(grace) == -1 && Running()) {
    Kill();
  }
  absl::MutexLock lock(&mu_);
  return status_;
}

void ChildProcess::Kill() {
  absl::MutexLock lock(&mu_);
  if (PollLocked()) {
    sent_signals_ |= SignalBit(SIGKILL);
    ::kill(pid_, SIGKILL);
    int status = 0;
    if (::waitpid(pid_, &status, 0) == pid_) {
      ReapedLocked(status);
    } else {
      reaped_ = true;
    }
  }
}

std::string ChildProcess::ReadLog() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ShellResult RunShell(const std::string& command, bool with_stderr) {
  ShellResult r;
  FILE* pipe = ::popen((with_stderr ? command + " 2>&1" : command).c_str(), "r");
  if (pipe == nullptr) {
    return r;
  }
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) {
    r.output.append(buf, n);
  }
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string HttpGet(int port, const std::string& target, int* status) {
  if (status != nullptr) {
    *status = 0;
  }
  int fd = ConnectLoopback(port);
  if (fd < 0) {
    return "";
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) < 0) {
    ::close(fd);
    return "";
  }
  std::string resp;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      break;
    }
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t head_end = resp.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    return "";
  }
  if (status != nullptr && resp.size() > 12) {
    *status = std::atoi(resp.substr(9, 3).c_str());
  }
  std::string body = resp.substr(head_end + 4);
  // De-chunk if needed.
  if (resp.substr(0, head_end).find("ransfer-Encoding: chunked") != std::string::npos ||
      resp.substr(0, head_end).find("ransfer-encoding: chunked") != std::string::npos) {
    std::string out;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t eol = body.find("\r\n", pos);
      if (eol == std::string::npos) {
        break;
      }
      size_t len = std::strtoul(body.substr(pos, eol - pos).c_str(), nullptr, 16);
      if (len == 0) {
        break;
      }
      out += body.substr(eol + 2, len);
      pos = eol + 2 + len + 2;
    }
    return out;
  }
  return body;
}

}  // namespace llmload::testing_util
