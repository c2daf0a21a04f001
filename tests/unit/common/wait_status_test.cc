#include "lib/common/wait_status.h"

#include <signal.h>
#include <sys/wait.h>

#include "gtest/gtest.h"

namespace llmload {
namespace {

TEST(WaitStatusTest, NamesTheExitCode) {
  EXPECT_EQ(DescribeWaitStatus(W_EXITCODE(0, 0)), "exited with status 0");
  EXPECT_EQ(DescribeWaitStatus(W_EXITCODE(3, 0)), "exited with status 3");
}

TEST(WaitStatusTest, NamesTheSignalByNumberAndName) {
  EXPECT_EQ(DescribeWaitStatus(W_EXITCODE(0, SIGSEGV)), "was killed by signal 11 (SIGSEGV)");
  EXPECT_EQ(DescribeWaitStatus(W_EXITCODE(0, SIGKILL)), "was killed by signal 9 (SIGKILL)");
  // A core dump does not change the description.
  EXPECT_EQ(DescribeWaitStatus(W_EXITCODE(0, SIGABRT) | WCOREFLAG),
            "was killed by signal 6 (SIGABRT)");
  EXPECT_EQ(DescribeWaitStatus(W_STOPCODE(SIGSTOP)), "was stopped by signal 19 (SIGSTOP)");
}

TEST(WaitStatusTest, SignalWithoutANameGetsItsNumber) {
  EXPECT_EQ(SignalName(SIGTERM), "SIGTERM");
  EXPECT_EQ(SignalName(SIGRTMIN + 3), "signal " + std::to_string(SIGRTMIN + 3));
}

}  // namespace
}  // namespace llmload
