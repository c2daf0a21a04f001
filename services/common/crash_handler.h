// File: crash_handler.h
//
// What every llmload binary does when it crashes: on SIGSEGV, SIGABRT,
// SIGBUS, SIGILL, SIGFPE or SIGTRAP it writes the signal and a symbolized
// stack trace of the failing thread to stderr (the service's log), then
// dies by the same signal, so the exit status (and a parent such as
// `llmload local` or the test harness) still names it.
//
// InitProgram (flags.h) installs it for the services; call it once, first
// thing in main, in a binary that does not use InitProgram.

#pragma once

namespace llmload {

void InstallCrashHandler(const char* argv0);

}  // namespace llmload
