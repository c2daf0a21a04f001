#include "services/common/process_identity.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace llmload {
namespace {

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

struct StatFields {
  char state = '?';
  uint64_t start_ticks = 0;
};

// /proc/<pid>/stat is "pid (comm) state ppid ..."; comm may itself hold
// spaces and parentheses, so the fields are counted after the last ')'.
std::optional<StatFields> ReadStat(int32_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  if (!in) {
    return std::nullopt;
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t comm_end = text.rfind(')');
  if (comm_end == std::string::npos) {
    return std::nullopt;
  }
  std::istringstream fields(text.substr(comm_end + 1));
  StatFields out;
  fields >> out.state;  // field 3
  std::string skipped;
  for (int field = 4; field < 22; ++field) {
    fields >> skipped;
  }
  fields >> out.start_ticks;  // field 22
  if (!fields) {
    return std::nullopt;
  }
  return out;
}

}  // namespace

std::string HostIdentity() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) {
    return "";
  }
  const std::string boot_id = ReadFirstLine("/proc/sys/kernel/random/boot_id");
  char pid_ns[128] = {};
  const ssize_t ns_len = readlink("/proc/self/ns/pid", pid_ns, sizeof(pid_ns) - 1);
  if (boot_id.empty() || ns_len <= 0) {
    return "";
  }
  return absl::StrCat(name, " ", boot_id, " ", std::string(pid_ns, static_cast<size_t>(ns_len)));
}

ProcessIdentity SelfIdentity() {
  ProcessIdentity self;
  self.pid = static_cast<int32_t>(getpid());
  if (std::optional<StatFields> stat = ReadStat(self.pid); stat.has_value()) {
    self.start_ticks = stat->start_ticks;
  }
  self.host = HostIdentity();
  return self;
}

ProcessFate ProbeProcess(const ProcessIdentity& process, const std::string& local_host) {
  // A pid from another host or pid namespace says nothing here.
  if (process.pid <= 0 || process.host.empty() || process.host != local_host) {
    return ProcessFate::kUnknown;
  }
  if (std::optional<StatFields> stat = ReadStat(process.pid); stat.has_value()) {
    if (stat->state == 'Z' || stat->state == 'X') {
      return ProcessFate::kExited;  // dead; only its parent has yet to reap it
    }
    if (process.start_ticks != 0 && stat->start_ticks != process.start_ticks) {
      return ProcessFate::kExited;  // the pid now belongs to a newer process
    }
    return ProcessFate::kRunning;
  }
  // No stat to read (the process is gone, or /proc is not mounted): ask the
  // kernel. EPERM means the process exists under another user.
  if (kill(process.pid, 0) == 0 || errno == EPERM) {
    return ProcessFate::kRunning;
  }
  return errno == ESRCH ? ProcessFate::kExited : ProcessFate::kUnknown;
}

}  // namespace llmload
