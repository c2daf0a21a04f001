// File: process_identity.h
//
// Enough about a process for another process to check later whether it is
// still there: its pid, its start time, and a host identity under which that
// pid means something (host name, kernel boot id and pid namespace). A
// worker sends its identity in its hello; when its stream ends, an
// orchestrator with the same host identity can probe the pid.
//
// Only the parent of a process learns how it ended (waitpid); anyone else
// sees that it is gone, never its exit code or the signal that ended it. So
// a probe answers "running", "exited" or "cannot tell", nothing more.
//
// Linux: reads /proc. Where that is missing the host identity is empty and
// every probe answers kUnknown. Thread-safe.

#pragma once

#include <cstdint>
#include <string>

namespace llmload {

struct ProcessIdentity {
  int32_t pid = 0;
  // Start time in clock ticks after boot (/proc/<pid>/stat field 22); tells
  // a process apart from a later one that reuses its pid. 0: unknown.
  uint64_t start_ticks = 0;
  // "<hostname> <boot id> <pid namespace>"; empty when unknown.
  std::string host;
};

// The identity of the host this process runs on, as in ProcessIdentity.
std::string HostIdentity();

// This process's identity.
ProcessIdentity SelfIdentity();

enum class ProcessFate {
  kUnknown,  // another host (or pid namespace), or nothing could be read
  kRunning,  // the process exists (it may be stopped or hung)
  kExited,   // no such process any more (or only its zombie is left)
};

// Probes `process` from a process whose host identity is `local_host`.
ProcessFate ProbeProcess(const ProcessIdentity& process, const std::string& local_host);

}  // namespace llmload
