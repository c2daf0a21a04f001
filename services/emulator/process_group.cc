#include "services/emulator/process_group.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/posix/stream_descriptor.hpp"
#include "boost/asio/signal_set.hpp"
#include "boost/asio/steady_timer.hpp"
#include "lib/common/log.h"
#include "lib/common/wait_status.h"

extern char** environ;

namespace llmload::emulator {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using ReusePort = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

template <typename T>
bool ParseNumber(std::string_view text, T lo, T hi, T* out) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &v) || v < lo || v > hi) {
    return false;
  }
  *out = static_cast<T>(v);
  return true;
}

// Binds (without listening) host:port with SO_REUSEPORT: resolves port 0
// and keeps the port for the group.
absl::StatusOr<uint16_t> Reserve(tcp::acceptor& probe, const net::ip::address& address,
                                 uint16_t port) {
  boost::system::error_code ec;
  auto fail = [&](const char* what) {
    return absl::UnavailableError(absl::StrCat("cannot ", what, " ", address.to_string(), ":",
                                               port, ": ", ec.message()));
  };
  const tcp::endpoint endpoint(address, port);
  if (probe.open(endpoint.protocol(), ec); ec) {
    return fail("open a socket for");
  }
  ::fcntl(probe.native_handle(), F_SETFD, FD_CLOEXEC);
  if (probe.set_option(net::socket_base::reuse_address(true), ec); ec) {
    return fail("set SO_REUSEADDR on");
  }
  if (probe.set_option(ReusePort(true), ec); ec) {
    return fail("set SO_REUSEPORT on");
  }
  if (probe.bind(endpoint, ec); ec) {
    return fail("bind");
  }
  return probe.local_endpoint(ec).port();
}

// A NULL-terminated char* array over strings that outlive it.
std::vector<char*> CArray(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) {
    out.push_back(s.data());
  }
  out.push_back(nullptr);
  return out;
}

// The supervisor's state while the group runs. Single-threaded: everything
// happens in handlers of one io_context on the main thread.
class Supervisor {
 public:
  Supervisor(const GroupOptions& options, std::function<void(const GroupReady&)> on_ready)
      : options_(options),
        on_ready_(std::move(on_ready)),
        signals_(ioc_, SIGINT, SIGTERM, SIGCHLD),
        ready_pipe_(ioc_),
        start_timer_(ioc_),
        kill_timer_(ioc_),
        probe_(ioc_),
        tls_probe_(ioc_) {}

  int Run(const std::vector<std::string>& args) {
    absl::StatusOr<net::ip::address> address = ListenAddress(options_.host);
    if (!address.ok()) {
      return Fail(address.status(), 2);
    }
    absl::StatusOr<uint16_t> port = Reserve(probe_, *address, options_.port);
    if (!port.ok()) {
      return Fail(port.status(), 2);
    }
    ready_.port = *port;
    if (options_.tls) {
      absl::StatusOr<uint16_t> tls_port = Reserve(tls_probe_, *address, options_.tls_port);
      if (!tls_port.ok()) {
        return Fail(tls_port.status(), 2);
      }
      ready_.tls_port = *tls_port;
    }
    const absl::Status spawned = Spawn(args);
    if (!spawned.ok()) {
      Fail(spawned, 1);
      StopAll();  // those already started
    }
    WaitSignal();
    ReadReady();
    start_timer_.expires_after(absl::ToChronoNanoseconds(options_.start_timeout));
    start_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec && ready_count_ < options_.processes && !stopping_) {
        LLMLOAD_LOG(kError, "Emulator processes did not all start in time; stopping the group.")
            .Kv("ready", ready_count_)
            .Kv("processes", options_.processes);
        exit_code_ = 1;
        StopAll();
      }
    });
    if (alive_ > 0) {
      ioc_.run();
    }
    return exit_code_;
  }

 private:
  int Fail(const absl::Status& status, int code) {
    std::fprintf(stderr, "llmload-emulator: %s\n", status.ToString().c_str());
    exit_code_ = code;
    return code;
  }

  absl::Status Spawn(const std::vector<std::string>& args) {
    const int n = options_.processes;
    // links[i][j]: process i's end of its link to process j.
    std::vector<std::vector<int>> links(static_cast<size_t>(n),
                                        std::vector<int>(static_cast<size_t>(n), -1));
    std::vector<int> to_close;
    auto close_all = [&] {
      for (int fd : to_close) {
        ::close(fd);
      }
    };
    for (int i = 0; i < n; ++i) {
      for (int j = i + 1; j < n; ++j) {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
          close_all();
          return absl::InternalError(absl::StrCat("socketpair: ", std::strerror(errno)));
        }
        links[static_cast<size_t>(i)][static_cast<size_t>(j)] = sv[0];
        links[static_cast<size_t>(j)][static_cast<size_t>(i)] = sv[1];
        to_close.push_back(sv[0]);
        to_close.push_back(sv[1]);
      }
    }
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) {
      close_all();
      return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
    }
    to_close.push_back(ready[1]);
    ready_pipe_.assign(ready[0]);

    std::array<char, 4096> exe{};
    const ssize_t len = ::readlink("/proc/self/exe", exe.data(), exe.size() - 1);
    if (len <= 0) {
      close_all();
      return absl::InternalError(absl::StrCat("readlink /proc/self/exe: ", std::strerror(errno)));
    }
    std::vector<std::string> argv_strings = args;
    std::vector<char*> argv = CArray(argv_strings);
    const pid_t supervisor = ::getpid();

    for (int i = 0; i < n; ++i) {
      ChildRole role;
      role.member.index = i;
      role.member.count = n;
      role.ready_fd = ready[1];
      role.port = ready_.port;
      role.tls_port = ready_.tls_port;
      for (int j = 0; j < n; ++j) {
        if (j != i) {
          role.member.peer_fds.push_back(links[static_cast<size_t>(i)][static_cast<size_t>(j)]);
        }
      }
      // Everything the child needs is built before fork: after it, only
      // async-signal-safe calls.
      std::vector<std::string> env_strings;
      const std::string prefix = absl::StrCat(kProcessRoleEnv, "=");
      for (char** e = environ; *e != nullptr; ++e) {
        if (std::string_view(*e).substr(0, prefix.size()) != prefix) {
          env_strings.emplace_back(*e);
        }
      }
      env_strings.push_back(prefix + FormatChildRole(role));
      std::vector<char*> envp = CArray(env_strings);
      std::vector<int> keep = role.member.peer_fds;
      keep.push_back(ready[1]);

      sigset_t all;
      sigset_t old;
      sigfillset(&all);
      ::pthread_sigmask(SIG_BLOCK, &all, &old);
      const pid_t pid = ::fork();
      if (pid == 0) {
        // The child: default dispositions for what the supervisor handles,
        // the caller's mask, the inherited links, then the binary again.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != supervisor) {
          ::_exit(1);
        }
        for (int sig : {SIGINT, SIGTERM, SIGCHLD}) {
          ::signal(sig, SIG_DFL);
        }
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
        for (int fd : keep) {
          ::fcntl(fd, F_SETFD, 0);
        }
        ::execve(exe.data(), argv.data(), envp.data());
        ::_exit(127);
      }
      const int fork_errno = errno;
      ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
      if (pid < 0) {
        close_all();
        return absl::InternalError(absl::StrCat("fork: ", std::strerror(fork_errno)));
      }
      pids_.push_back(pid);
      ++alive_;
    }
    // The children hold their ends now.
    close_all();
    ready_.pids = pids_;
    return absl::OkStatus();
  }

  void WaitSignal() {
    signals_.async_wait([this](boost::system::error_code ec, int signo) {
      if (ec) {
        return;
      }
      if (signo == SIGCHLD) {
        Reap();
      } else if (!stopping_) {
        LLMLOAD_LOG(kInfo, "Emulator stopping.").Kv("signal", signo);
        StopAll();
      }
      if (alive_ > 0) {
        WaitSignal();
      }
    });
  }

  void ReadReady() {
    ready_pipe_.async_read_some(
        net::buffer(ready_buf_), [this](boost::system::error_code ec, size_t n) {
          if (ec) {
            return;  // EOF: every process has written or died
          }
          ready_count_ += static_cast<int32_t>(n);
          if (ready_count_ >= options_.processes && !stopping_ && !reported_) {
            reported_ = true;
            start_timer_.cancel();
            on_ready_(ready_);
          }
          ReadReady();
        });
  }

  void Reap() {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) {
        break;
      }
      const auto it = std::find(pids_.begin(), pids_.end(), pid);
      if (it == pids_.end()) {
        continue;
      }
      const auto index = static_cast<int64_t>(it - pids_.begin());
      *it = 0;
      --alive_;
      // While stopping, SIGTERM itself may end a process that had not set
      // up its handler yet: that is the stop asked for.
      const bool clean = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                         (stopping_ && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
      if (!stopping_ && reported_ && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        // A process exits 0 only after SIGINT or SIGTERM: someone stopped
        // it directly, as Ctrl-C does to the whole process group (when the
        // child's signal is handled before ours). Stop the rest the same way.
        LLMLOAD_LOG(kInfo, "Emulator process stopped; stopping the group.")
            .Kv("process", index)
            .Kv("pid", static_cast<int64_t>(pid));
        StopAll();
      } else if (!stopping_) {
        LLMLOAD_LOG(kError, "Emulator process ended unexpectedly; stopping the group.")
            .Kv("process", index)
            .Kv("pid", static_cast<int64_t>(pid))
            .Kv("status", DescribeWaitStatus(status));
        // Before the group is ready a process's own code says why (2: bad
        // config or port); afterwards any end is a failure.
        exit_code_ = !reported_ && WIFEXITED(status) && WEXITSTATUS(status) != 0
                         ? WEXITSTATUS(status)
                         : 1;
        StopAll();
      } else if (!clean) {
        LLMLOAD_LOG(kWarn, "Emulator process did not stop cleanly.")
            .Kv("process", index)
            .Kv("pid", static_cast<int64_t>(pid))
            .Kv("status", DescribeWaitStatus(status));
        if (exit_code_ == 0) {
          exit_code_ = 1;
        }
      }
    }
    if (alive_ == 0) {
      start_timer_.cancel();
      kill_timer_.cancel();
      signals_.cancel();
      boost::system::error_code ignored;
      ready_pipe_.close(ignored);
    }
  }

  void StopAll() {
    if (stopping_) {
      return;
    }
    stopping_ = true;
    for (pid_t pid : pids_) {
      if (pid > 0) {
        ::kill(pid, SIGTERM);
      }
    }
    kill_timer_.expires_after(absl::ToChronoNanoseconds(options_.stop_grace));
    kill_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) {
        return;
      }
      for (size_t i = 0; i < pids_.size(); ++i) {
        if (pids_[i] > 0) {
          LLMLOAD_LOG(kWarn, "Emulator process did not stop in time; killing it.")
              .Kv("process", static_cast<int64_t>(i))
              .Kv("pid", static_cast<int64_t>(pids_[i]));
          ::kill(pids_[i], SIGKILL);
        }
      }
      exit_code_ = std::max(exit_code_, 1);
    });
  }

  const GroupOptions options_;
  std::function<void(const GroupReady&)> on_ready_;
  net::io_context ioc_;
  net::signal_set signals_;
  net::posix::stream_descriptor ready_pipe_;
  std::array<char, 64> ready_buf_{};
  net::steady_timer start_timer_;
  net::steady_timer kill_timer_;
  tcp::acceptor probe_;
  tcp::acceptor tls_probe_;
  GroupReady ready_;
  std::vector<pid_t> pids_;  // 0 once reaped
  int alive_ = 0;
  int32_t ready_count_ = 0;
  bool stopping_ = false;
  bool reported_ = false;
  int exit_code_ = 0;
};

}  // namespace

std::string FormatChildRole(const ChildRole& role) {
  return absl::StrCat("index=", role.member.index, ",count=", role.member.count,
                      ",ready_fd=", role.ready_fd,
                      ",peer_fds=", absl::StrJoin(role.member.peer_fds, ":"),
                      ",port=", role.port, ",tls_port=", role.tls_port);
}

absl::StatusOr<ChildRole> ParseChildRole(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        kProcessRoleEnv, ": ", absl::string_view(why.data(), why.size()), " in \"",
        absl::string_view(text.data(), text.size()), "\""));
  };
  absl::flat_hash_map<std::string, std::string> fields;
  for (absl::string_view part : absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
    const size_t eq = part.find('=');
    if (eq == absl::string_view::npos) {
      return bad("expected key=value");
    }
    if (!fields.emplace(std::string(part.substr(0, eq)), std::string(part.substr(eq + 1))).second) {
      return bad(absl::StrCat("repeated ", part.substr(0, eq)));
    }
  }
  for (const char* key : {"index", "count", "ready_fd", "peer_fds", "port", "tls_port"}) {
    if (!fields.contains(key)) {
      return bad(absl::StrCat("missing ", key));
    }
  }
  if (fields.size() != 6) {
    return bad("unknown key");
  }
  ChildRole role;
  if (!ParseNumber<int32_t>(fields["count"], 2, kMaxProcesses, &role.member.count)) {
    return bad("count must be in [2, 256]");
  }
  if (!ParseNumber<int32_t>(fields["index"], 0, role.member.count - 1, &role.member.index)) {
    return bad("index must be below count");
  }
  if (!ParseNumber<int>(fields["ready_fd"], 3, 1 << 30, &role.ready_fd)) {
    return bad("bad ready_fd");
  }
  if (!ParseNumber<uint16_t>(fields["port"], 1, 65535, &role.port) ||
      !ParseNumber<uint16_t>(fields["tls_port"], 0, 65535, &role.tls_port)) {
    return bad("bad port");
  }
  if (!fields["peer_fds"].empty()) {
    for (absl::string_view fd_text : absl::StrSplit(fields["peer_fds"], ':')) {
      int fd = 0;
      if (!ParseNumber<int>(std::string_view(fd_text.data(), fd_text.size()), 3, 1 << 30, &fd)) {
        return bad("bad peer fd");
      }
      role.member.peer_fds.push_back(fd);
    }
  }
  if (role.member.peer_fds.size() != static_cast<size_t>(role.member.count - 1)) {
    return bad("one peer fd per sibling expected");
  }
  return role;
}

void SignalReady(int ready_fd) {
  const char byte = 'R';
  while (::write(ready_fd, &byte, 1) < 0 && errno == EINTR) {
  }
  ::close(ready_fd);
}

int RunProcessGroup(const GroupOptions& options, const std::vector<std::string>& args,
                    const std::function<void(const GroupReady&)>& on_ready) {
  Supervisor supervisor(options, on_ready);
  return supervisor.Run(args);
}

}  // namespace llmload::emulator
