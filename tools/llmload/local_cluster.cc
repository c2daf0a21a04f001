#include "tools/llmload/local_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"
#include "lib/common/wait_status.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/common/grpc_util.h"

extern char** environ;

namespace llmload::cli {
namespace {

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (fd >= 0) {
      ::close(fd);
    }
    return 0;
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool TcpReady(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  if (fd >= 0) {
    ::close(fd);
  }
  return ok;
}

std::string SelfDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

// The last whole lines of a file, at most about `max_bytes` of them.
std::string Tail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) {
    s = s.substr(s.size() - max_bytes);
    if (const size_t eol = s.find('\n'); eol != std::string::npos) {
      s = s.substr(eol + 1);
    }
  }
  return s;
}

}  // namespace

std::string LocalCluster::ChildFailure::Describe() const {
  return absl::StrCat(name, " (pid ", pid, ") ", DescribeWaitStatus(status),
                      while_stopping ? " while stopping" : "");
}

LocalCluster::~LocalCluster() { Stop(); }

std::vector<LocalCluster::ChildFailure> LocalCluster::failures() const {
  absl::MutexLock lock(&mu_);
  return failures_;
}

void LocalCluster::RecordFailureLocked(Child& child, int status, bool while_stopping) {
  ChildFailure failure;
  failure.name = child.name;
  failure.pid = child.pid;
  failure.status = status;
  failure.while_stopping = while_stopping;
  failure.log = child.log;
  child.pid = -1;
  // Said at once, with what the service wrote last (a crash handler's stack
  // trace, a fatal error); the CLI repeats the first line on its way out.
  std::string tail = Tail(child.log, 3000);
  if (!tail.empty() && tail.back() != '\n') {
    tail.push_back('\n');
  }
  std::fprintf(stderr, "llmload: %s; the end of its log (%s):\n%s", failure.Describe().c_str(),
               child.log.c_str(), tail.c_str());
  failures_.push_back(std::move(failure));
}

void LocalCluster::ReapEndedLocked() {
  for (Child& c : children_) {
    int status = 0;
    if (c.pid > 0 && ::waitpid(c.pid, &status, WNOHANG) == c.pid) {
      // Nothing asked it to stop: any end, even status 0, loses its part of
      // the run.
      RecordFailureLocked(c, status, /*while_stopping=*/false);
    }
  }
}

void LocalCluster::WatchChildren() {
  absl::MutexLock lock(&mu_);
  while (!stop_watching_) {
    ReapEndedLocked();
    mu_.AwaitWithTimeout(absl::Condition(&stop_watching_), absl::Milliseconds(100));
  }
}

absl::Status LocalCluster::Spawn(const std::string& name, const std::string& binary,
                                 const std::vector<std::string>& args) {
  const std::string path = absl::StrCat(bin_dir_, "/", binary);
  if (::access(path.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot find ", path,
                                            " (build it, or point --bin-dir at build/bin)"));
  }
  Child child;
  child.name = name;
  child.log = absl::StrCat(state_dir_, "/", name, ".log");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, child.log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addchdir_np(&actions, state_dir_.c_str());
  // Children must not inherit the CLI's blocked signal mask.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<std::string> storage{path};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) {
    argv.push_back(s.data());
  }
  argv.push_back(nullptr);
  const int rc = posix_spawn(&child.pid, path.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("cannot start ", path, ": ", std::strerror(rc)));
  }
  absl::MutexLock lock(&mu_);
  children_.push_back(child);
  return absl::OkStatus();
}

absl::Status LocalCluster::CheckAlive() {
  absl::MutexLock lock(&mu_);
  for (Child& c : children_) {
    int status = 0;
    if (c.pid > 0 && ::waitpid(c.pid, &status, WNOHANG) == c.pid) {
      const std::string how = absl::StrCat(c.name, " (pid ", c.pid, ") ", DescribeWaitStatus(status));
      c.pid = -1;
      return absl::InternalError(absl::StrCat(how, " while starting; last log lines (", c.log,
                                              "):\n", Tail(c.log, 2000)));
    }
  }
  return absl::OkStatus();
}

absl::Status LocalCluster::Start() {
  bin_dir_ = options_.bin_dir.empty() ? SelfDir() : options_.bin_dir;
  if (options_.state_dir.empty()) {
    std::string tmpl = "/tmp/llmload-local-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return absl::InternalError("cannot create a state directory under /tmp");
    }
    state_dir_ = tmpl;
  } else {
    state_dir_ = options_.state_dir;
    std::error_code ec;
    std::filesystem::create_directories(state_dir_, ec);
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat("--state-dir: ", ec.message()));
    }
  }
  emulator_port_ = FreeLoopbackPort();
  collector_port_ = FreeLoopbackPort();
  collector_metrics_port_ = FreeLoopbackPort();
  orchestrator_port_ = FreeLoopbackPort();
  if (emulator_port_ == 0 || collector_port_ == 0 || orchestrator_port_ == 0 ||
      collector_metrics_port_ == 0) {
    return absl::UnavailableError("cannot find free loopback ports");
  }
  const std::string collector_addr = absl::StrCat("127.0.0.1:", collector_port_);
  std::vector<std::string> emulator_args = {
      "--host=127.0.0.1", absl::StrCat("--port=", emulator_port_),
      absl::StrCat("--token_delay_seconds=", options_.delay_seconds)};
  if (options_.length_words > 0) {  // 0: the emulator's default length
    emulator_args.push_back(absl::StrCat("--length_words=", options_.length_words));
  }
  if (auto s = Spawn("emulator", "llmload-emulator", emulator_args); !s.ok()) {
    return s;
  }
  if (auto s = Spawn("collector", "llmload-collector",
                     {absl::StrCat("--grpc_address=", collector_addr),
                      absl::StrCat("--metrics_address=127.0.0.1:", collector_metrics_port_),
                      "--db_path=collector.db"});
      !s.ok()) {
    return s;
  }
  std::vector<std::string> orchestrator_args = {
      absl::StrCat("--grpc_address=", orchestrator_address()),
      absl::StrCat("--collector=", collector_addr), "--db_path=orchestrator.db"};
  if (!options_.allow_targets.empty()) {
    orchestrator_args.push_back(absl::StrCat("--allow_targets=", options_.allow_targets));
  }
  if (auto s = Spawn("orchestrator", "llmload-orchestrator", orchestrator_args); !s.ok()) {
    return s;
  }
  for (int i = 0; i < options_.workers; ++i) {
    if (auto s = Spawn(absl::StrCat("worker-", i), "llmload-worker",
                       {absl::StrCat("--orchestrator=", orchestrator_address()),
                        absl::StrCat("--collector=", collector_addr),
                        absl::StrCat("--worker_id=local-worker-", i),
                        // Workers share the machine: no fixed :9103 each.
                        "--metrics_address=",
                        absl::StrCat("--threads=", options_.worker_threads)});
        !s.ok()) {
      return s;
    }
  }
  // Wait for the listeners, then for every worker to attach.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (int port : {emulator_port_, collector_port_, orchestrator_port_}) {
    while (!TcpReady(port)) {
      if (auto s = CheckAlive(); !s.ok()) {
        return s;
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("services did not start listening within 30 s; logs in ", state_dir_));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  auto stub = v1::Orchestrator::NewStub(MakeChannel(orchestrator_address()));
  for (;;) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    v1::ListWorkersResponse resp;
    grpc::Status st = stub->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp);
    if (st.ok() && resp.workers_size() >= options_.workers) {
      watcher_ = std::thread([this] { WatchChildren(); });
      return absl::OkStatus();
    }
    if (auto s = CheckAlive(); !s.ok()) {
      return s;
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "workers did not attach within 30 s (", resp.workers_size(), " of ", options_.workers,
          "); logs in ", state_dir_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void LocalCluster::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_watching_ = true;
  }
  if (watcher_.joinable()) {
    watcher_.join();
  }
  std::vector<Child> children;
  {
    absl::MutexLock lock(&mu_);
    // One that ended since the watcher last looked ended during the run.
    ReapEndedLocked();
    children.swap(children_);
  }
  // Workers first (they flush to the collector), then the services.
  for (auto it = children.rbegin(); it != children.rend(); ++it) {
    if (it->pid > 0) {
      ::kill(it->pid, SIGTERM);
    }
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (auto it = children.rbegin(); it != children.rend(); ++it) {
    if (it->pid <= 0) {
      continue;
    }
    int status = 0;
    bool killed = false;
    for (;;) {
      if (::waitpid(it->pid, &status, WNOHANG) == it->pid) {
        break;
      }
      if (absl::Now() > deadline) {
        LLMLOAD_LOG(kWarn, "A local service did not stop within 10 s; killing it.")
            .Kv("service", it->name)
            .Kv("pid", it->pid);
        ::kill(it->pid, SIGKILL);
        ::waitpid(it->pid, &status, 0);
        killed = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // SIGTERM drains and exits 0; any other end is a crash on the way out.
    const bool clean = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                       (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) ||
                       (killed && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    if (!clean) {
      absl::MutexLock lock(&mu_);
      RecordFailureLocked(*it, status, /*while_stopping=*/true);
    }
    it->pid = -1;
  }
}

}  // namespace llmload::cli
