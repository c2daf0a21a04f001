// `llmload health` against real llmload services on loopback: the probe that
// the container image's HEALTHCHECK, the compose file and scripts use.

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::RunShell;
using testing_util::ShellResult;

ShellResult Health(const std::string& args) {
  return RunShell(absl::StrCat("timeout 30 ", BinPath("llmload"), " health ", args));
}

TEST(HealthTest, AnswersForGrpcAndHttpServicesAndTellsUnreachableApart) {
  const std::string dir = testing_util::MakeTempDir("health");
  const int col = testing_util::FreePort();
  const int met = testing_util::FreePort();
  const int orch = testing_util::FreePort();
  const int emu = testing_util::FreePort();
  auto collector = testing_util::ChildProcess::Start(
      BinPath("llmload-collector"),
      {absl::StrCat("--grpc_address=127.0.0.1:", col),
       absl::StrCat("--metrics_address=127.0.0.1:", met)},
      dir + "/collector.log", dir);
  auto orchestrator = testing_util::ChildProcess::Start(
      BinPath("llmload-orchestrator"),
      {absl::StrCat("--grpc_address=127.0.0.1:", orch), absl::StrCat("--collector=127.0.0.1:", col)},
      dir + "/orchestrator.log", dir);
  auto emulator = testing_util::ChildProcess::Start(
      BinPath("llmload-emulator"), {"--host=127.0.0.1", absl::StrCat("--port=", emu)},
      dir + "/emulator.log", dir);
  ASSERT_TRUE(testing_util::WaitForTcp(col, absl::Seconds(20)));
  ASSERT_TRUE(testing_util::WaitForTcp(orch, absl::Seconds(20)));
  ASSERT_TRUE(testing_util::WaitForTcp(emu, absl::Seconds(20)));

  ShellResult r = Health(absl::StrCat("--address 127.0.0.1:", orch));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("SERVING [address=127.0.0.1:"), std::string::npos) << r.output;
  // The environment sets the address, as in the image's HEALTHCHECK.
  r = RunShell(absl::StrCat("LLMLOAD_HEALTH_ADDRESS=127.0.0.1:", col, " timeout 30 ",
                            BinPath("llmload"), " health --timeout 2"));
  EXPECT_EQ(r.exit_code, 0) << r.output;

  // Each service answers by its full name too (a Kubernetes gRPC probe's
  // `service:`, grpc_health_probe's -service).
  r = Health(absl::StrCat("--address 127.0.0.1:", col, " --service llmload.v1.Collector"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = Health(absl::StrCat("--address 127.0.0.1:", orch, " --service llmload.v1.Orchestrator"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = Health(absl::StrCat("--address 127.0.0.1:", orch, " --service llmload.v1.Collector"));
  EXPECT_EQ(r.exit_code, 1) << r.output;

  // A service the server does not know: reachable, not serving.
  r = Health(absl::StrCat("--address 127.0.0.1:", col, " --service no.such.Service"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("NOT_SERVING"), std::string::npos) << r.output;

  // HTTP servers: the emulator's /health and the collector's /metrics.
  r = Health(absl::StrCat("--address 127.0.0.1:", emu, " --http /health"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("SERVING: HTTP 200"), std::string::npos) << r.output;
  r = Health(absl::StrCat("--address 127.0.0.1:", met, " --http /metrics"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = Health(absl::StrCat("--address 127.0.0.1:", emu, " --http /no/such/path"));
  EXPECT_EQ(r.exit_code, 1) << r.output;

  // Nothing listens: unreachable, well within the deadline.
  const int closed = testing_util::FreePort();
  r = Health(absl::StrCat("--address 127.0.0.1:", closed, " --timeout 2"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("UNREACHABLE"), std::string::npos) << r.output;
  r = Health(absl::StrCat("--address 127.0.0.1:", closed, " --http /health --timeout 2"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  // A gRPC server that stopped is unreachable too.
  orchestrator->Stop();
  r = Health(absl::StrCat("--address 127.0.0.1:", orch, " --timeout 2"));
  EXPECT_EQ(r.exit_code, 2) << r.output;

  // Usage errors exit 2 with the reason; --help exits 0.
  r = Health("--address nohost");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("expected HOST:PORT"), std::string::npos) << r.output;
  r = Health("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("Exit status: 0 SERVING"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace llmload
