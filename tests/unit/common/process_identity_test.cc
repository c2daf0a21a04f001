#include "services/common/process_identity.h"

#include <sys/wait.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace llmload {
namespace {

// A child that exits at once; the caller reaps it (or not).
pid_t ExitingChild() {
  const pid_t child = fork();
  if (child == 0) {
    _exit(3);
  }
  return child;
}

TEST(ProcessIdentityTest, SelfIsRunning) {
  const ProcessIdentity self = SelfIdentity();
  EXPECT_EQ(self.pid, getpid());
  EXPECT_GT(self.start_ticks, 0u);
  ASSERT_FALSE(self.host.empty());
  EXPECT_EQ(self.host, HostIdentity());
  EXPECT_EQ(ProbeProcess(self, HostIdentity()), ProcessFate::kRunning);
}

TEST(ProcessIdentityTest, ReapedChildHasExited) {
  const pid_t child = ExitingChild();
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ProcessIdentity gone;
  gone.pid = child;
  gone.host = HostIdentity();
  EXPECT_EQ(ProbeProcess(gone, HostIdentity()), ProcessFate::kExited);
}

TEST(ProcessIdentityTest, ZombieHasExited) {
  const pid_t child = ExitingChild();
  ASSERT_GT(child, 0);
  // Not reaped yet: the pid still exists, as a zombie, once the child is done.
  ProcessIdentity zombie;
  zombie.pid = child;
  zombie.host = HostIdentity();
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  EXPECT_EQ(ProbeProcess(zombie, HostIdentity()), ProcessFate::kExited);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
}

TEST(ProcessIdentityTest, ReusedPidHasExited) {
  ProcessIdentity earlier = SelfIdentity();
  earlier.start_ticks += 1;  // a process that had our pid before us
  EXPECT_EQ(ProbeProcess(earlier, HostIdentity()), ProcessFate::kExited);
}

TEST(ProcessIdentityTest, NothingIsKnownAboutAnotherHost) {
  ProcessIdentity self = SelfIdentity();
  EXPECT_EQ(ProbeProcess(self, "another-host 1234 pid:[1]"), ProcessFate::kUnknown);
  self.host.clear();
  EXPECT_EQ(ProbeProcess(self, HostIdentity()), ProcessFate::kUnknown);
  self = SelfIdentity();
  self.pid = 0;
  EXPECT_EQ(ProbeProcess(self, HostIdentity()), ProcessFate::kUnknown);
}

}  // namespace
}  // namespace llmload
