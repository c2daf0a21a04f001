#include "services/emulator/process_group.h"

#include <string>

#include "gtest/gtest.h"

namespace llmload::emulator {
namespace {

TEST(ProcessGroupTest, ChildRoleRoundTrips) {
  ChildRole role;
  role.member.index = 2;
  role.member.count = 3;
  role.member.peer_fds = {6, 9};
  role.ready_fd = 5;
  role.port = 8080;
  role.tls_port = 8443;
  const std::string text = FormatChildRole(role);
  EXPECT_EQ(text, "index=2,count=3,ready_fd=5,peer_fds=6:9,port=8080,tls_port=8443");
  absl::StatusOr<ChildRole> back = ParseChildRole(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->member.index, 2);
  EXPECT_EQ(back->member.count, 3);
  EXPECT_EQ(back->member.peer_fds, (std::vector<int>{6, 9}));
  EXPECT_EQ(back->ready_fd, 5);
  EXPECT_EQ(back->port, 8080);
  EXPECT_EQ(back->tls_port, 8443);
}

TEST(ProcessGroupTest, ChildRoleRefusesAnythingElse) {
  for (const char* text : {
           "",
           "index=0,count=2,ready_fd=5,peer_fds=6,port=8080",                      // no tls_port
           "index=0,count=2,ready_fd=5,peer_fds=6,port=8080,tls_port=0,extra=1",   // unknown key
           "index=0,index=0,count=2,ready_fd=5,peer_fds=6,port=8080,tls_port=0",   // repeated
           "index=2,count=2,ready_fd=5,peer_fds=6,port=8080,tls_port=0",           // index >= count
           "index=0,count=1,ready_fd=5,peer_fds=,port=8080,tls_port=0",            // not a group
           "index=0,count=3,ready_fd=5,peer_fds=6,port=8080,tls_port=0",           // one fd short
           "index=0,count=2,ready_fd=5,peer_fds=6:7,port=8080,tls_port=0",         // one fd over
           "index=0,count=2,ready_fd=1,peer_fds=6,port=8080,tls_port=0",           // stdio
           "index=0,count=2,ready_fd=5,peer_fds=x,port=8080,tls_port=0",
           "index=0,count=2,ready_fd=5,peer_fds=6,port=0,tls_port=0",              // unresolved
           "index=0,count=2,ready_fd=5,peer_fds=6,port=70000,tls_port=0",
           "index=0;count=2",
       }) {
    absl::StatusOr<ChildRole> role = ParseChildRole(text);
    EXPECT_EQ(role.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(role.status().message().find(kProcessRoleEnv), absl::string_view::npos) << text;
  }
}

}  // namespace
}  // namespace llmload::emulator
