// File: wait_status.h
//
// How a child process ended, in words, from the status waitpid(2) filled in:
//
//   DescribeWaitStatus(status)  // "was killed by signal 11 (SIGSEGV)"
//
// Used wherever llmload reports on processes it started: `llmload local` for
// its services, and the integration-test harness for the binaries under test.

#pragma once

#include <string>

namespace llmload {

// "exited with status 3", "was killed by signal 11 (SIGSEGV)", "was stopped
// by signal 19 (SIGSTOP)"; meant to follow a subject ("worker-1 (pid 42) …").
std::string DescribeWaitStatus(int status);

// "SIGSEGV" for 11; "signal 64" for a number without a name.
std::string SignalName(int signal_number);

}  // namespace llmload
