// File: process_group.h
//
// `llmload-emulator --processes N`: one port served by N processes, so that
// one target holds more connections than one process's descriptor limit
// (and uses more cores than one process's loops without sharing a lock).
//
// The process started by the user becomes a supervisor that serves nothing:
//   1. it binds the port (and the TLS port) once with SO_REUSEPORT, without
//      listening, which turns --port=0 into a concrete port and keeps it
//      reserved for the group;
//   2. it connects every pair of processes with a Unix socket pair (the
//      run relay, peer_relay.h) and starts N copies of its own binary with
//      the same arguments, each told its place in the environment variable
//      LLMLOAD_EMULATOR_PROCESS (ChildRole below);
//   3. each process binds the same port with SO_REUSEPORT, listens, and
//      writes one byte to the ready pipe; the kernel spreads new connections
//      over the listening processes;
//   4. once all are ready the supervisor reports the ports (on_ready); on
//      SIGINT or SIGTERM it sends SIGTERM to every process and waits for
//      them (SIGKILL after the grace); when one process fails it stops the
//      others and exits non-zero, and when one is stopped (exits 0 after its
//      own SIGINT/SIGTERM, as Ctrl-C sends to the whole process group) it
//      stops the others and exits 0.
// A process whose supervisor dies gets SIGTERM (PR_SET_PDEATHSIG).
//
// Logs: the supervisor logs as "emulator", process i as "emulator[i]".
//
// Thread-safety: RunProcessGroup runs on the main thread before any other
// thread exists (it forks).

#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/emulator/server.h"

namespace llmload::emulator {

// The environment variable that makes an emulator process one of a group.
inline constexpr char kProcessRoleEnv[] = "LLMLOAD_EMULATOR_PROCESS";

// What the supervisor tells one process of the group.
struct ChildRole {
  GroupMember member;
  int ready_fd = -1;  // write one byte once listening, then close
  uint16_t port = 0;
  uint16_t tls_port = 0;
};

// "index=1,count=3,ready_fd=5,peer_fds=6:7,port=8080,tls_port=0".
std::string FormatChildRole(const ChildRole& role);
// The inverse; INVALID_ARGUMENT for anything else (a missing or repeated
// key, a number out of range, count - 1 peer fds not given).
absl::StatusOr<ChildRole> ParseChildRole(std::string_view text);

// Tells the supervisor this process listens (and closes the pipe).
void SignalReady(int ready_fd);

struct GroupOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  bool tls = false;  // also bind tls_port
  uint16_t tls_port = 0;
  int32_t processes = 2;
  absl::Duration start_timeout = absl::Seconds(30);
  absl::Duration stop_grace = absl::Seconds(10);
};

struct GroupReady {
  uint16_t port = 0;
  uint16_t tls_port = 0;  // 0 without TLS
  std::vector<pid_t> pids;
};

// Runs the supervisor until the group has ended; `args` is the command line
// each process is started with (argv, argv[0] first). Returns the exit code:
// 0 after SIGINT/SIGTERM (to the supervisor, or to one of the processes)
// when every process stopped cleanly; the code of a
// process that failed before the group was ready (2 for a bad config or a
// port in use); 1 when a process ended unexpectedly later, or had to be
// killed.
int RunProcessGroup(const GroupOptions& options, const std::vector<std::string>& args,
                    const std::function<void(const GroupReady&)>& on_ready);

}  // namespace llmload::emulator
