#include "lib/common/wait_status.h"

#include <sys/wait.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace llmload {

std::string SignalName(int signal_number) {
  // glibc's table of abbreviations ("SEGV"); nullptr for real-time and
  // unknown numbers.
  const char* abbrev = ::sigabbrev_np(signal_number);
  if (abbrev == nullptr) {
    return absl::StrCat("signal ", signal_number);
  }
  return absl::StrCat("SIG", abbrev);
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) {
    return absl::StrCat("exited with status ", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return absl::StrCat("was killed by signal ", sig, " (", SignalName(sig), ")");
  }
  if (WIFSTOPPED(status)) {
    const int sig = WSTOPSIG(status);
    return absl::StrCat("was stopped by signal ", sig, " (", SignalName(sig), ")");
  }
  return absl::StrCat("ended with wait status ", status);
}

}  // namespace llmload
