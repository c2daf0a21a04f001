#include "services/common/crash_handler.h"

#include <csignal>

#include "absl/debugging/failure_signal_handler.h"
#include "absl/debugging/symbolize.h"

namespace llmload {

void InstallCrashHandler(const char* argv0) {
  // Function names in the trace come from the binary's own symbol table.
  absl::InitializeSymbolizer(argv0);
  // The defaults re-raise the signal after the trace, and give up after a
  // few seconds if writing it hangs.
  absl::InstallFailureSignalHandler(absl::FailureSignalHandlerOptions());
  // Abseil counts SIGTERM as a failure too. For llmload it is the ordinary
  // way to stop: each main takes it (sigwait or an Asio signal_set) once it
  // runs, and before then it should simply end the process, with no trace.
  std::signal(SIGTERM, SIG_DFL);
}

}  // namespace llmload
