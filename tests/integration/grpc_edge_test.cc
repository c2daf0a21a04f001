// Bytes a gRPC client can send that are not what a method expects, against
// the real orchestrator and collector: malformed protobuf is the client's
// error (INVALID_ARGUMENT), a message over the servers' receive limit is
// refused (RESOURCE_EXHAUSTED), and neither harms the service.

#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/mono_clock.h"
#include "tests/testing/process.h"

namespace llmload {
namespace {

using testing_util::BinPath;

grpc::Status CallRaw(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& bytes) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status result;
  absl::Notification done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status status) {
                   result = std::move(status);
                   done.Notify();
                 });
  done.WaitForNotification();
  return result;
}

class GrpcEdgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir("grpc_edge");
    collector_port_ = testing_util::FreePort();
    orchestrator_port_ = testing_util::FreePort();
    collector_ = testing_util::ChildProcess::Start(
        BinPath("llmload-collector"),
        {absl::StrCat("--grpc_address=127.0.0.1:", collector_port_), "--metrics_address="},
        dir_ + "/collector.log", dir_);
    orchestrator_ = testing_util::ChildProcess::Start(
        BinPath("llmload-orchestrator"),
        {absl::StrCat("--grpc_address=127.0.0.1:", orchestrator_port_),
         absl::StrCat("--collector=127.0.0.1:", collector_port_)},
        dir_ + "/orchestrator.log", dir_);
    ASSERT_TRUE(testing_util::WaitForTcp(collector_port_, absl::Seconds(20)));
    ASSERT_TRUE(testing_util::WaitForTcp(orchestrator_port_, absl::Seconds(20)));
  }

  std::shared_ptr<grpc::Channel> Channel(int port, int max_send = -1) {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(max_send);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials(), args);
  }

  std::string dir_;
  int collector_port_ = 0;
  int orchestrator_port_ = 0;
  std::unique_ptr<testing_util::ChildProcess> collector_;
  std::unique_ptr<testing_util::ChildProcess> orchestrator_;
};

TEST_F(GrpcEdgeTest, MalformedRequestsAreTheClientsErrorAndHarmNothing) {
  // A length-delimited field whose length runs past the end, a truncated
  // varint, and a group end tag with no start: none parses.
  const std::string malformed[] = {std::string("\x0a\xff\x01", 3), std::string("\x08\xff", 2),
                                   std::string("\x0c", 1)};
  struct Target {
    int port;
    const char* method;
  };
  const Target targets[] = {
      {orchestrator_port_, "/llmload.v1.Orchestrator/StartRun"},
      {orchestrator_port_, "/llmload.v1.Orchestrator/GetRun"},
      {collector_port_, "/llmload.v1.Collector/GetRunStats"},
  };
  for (const Target& t : targets) {
    auto channel = Channel(t.port);
    for (const std::string& bytes : malformed) {
      grpc::Status st = CallRaw(channel, t.method, bytes);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << t.method << ": " << st.error_message();
      EXPECT_NE(st.error_message().find("malformed request"), std::string::npos)
          << st.error_message();
    }
  }
  // Well-formed bytes still get the service's own answer (an unknown run).
  grpc::Status st =
      CallRaw(Channel(orchestrator_port_), "/llmload.v1.Orchestrator/GetRun", "\x0a\x03xyz");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  EXPECT_TRUE(collector_->Running());
  EXPECT_TRUE(orchestrator_->Running());
}

TEST_F(GrpcEdgeTest, OversizedMessagesAreRefusedAndHarmNothing) {
  // Over the servers' 64 MiB receive limit: a RunSpec name of 65 MiB.
  std::string huge = "\x0a";  // StartRunRequest.spec ...
  const std::string name(65u << 20, 'x');
  std::string spec = "\x0a";  // ... RunSpec.name
  auto varint = [](uint64_t v) {
    std::string out;
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
    return out;
  };
  spec += varint(name.size()) + name;
  huge += varint(spec.size()) + spec;
  // Both at once: a refused oversized call takes gRPC about ten seconds to
  // end, whatever the server.
  grpc::Status orchestrator_status;
  std::thread other([&] {
    orchestrator_status =
        CallRaw(Channel(orchestrator_port_), "/llmload.v1.Orchestrator/StartRun", huge);
  });
  grpc::Status collector_status =
      CallRaw(Channel(collector_port_), "/llmload.v1.Collector/GetRunStats", huge);
  other.join();
  EXPECT_EQ(orchestrator_status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << orchestrator_status.error_message();
  EXPECT_EQ(collector_status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << collector_status.error_message();
  EXPECT_TRUE(collector_->Running());
  EXPECT_TRUE(orchestrator_->Running());
  grpc::Status st =
      CallRaw(Channel(orchestrator_port_), "/llmload.v1.Orchestrator/ListRuns", std::string());
  EXPECT_TRUE(st.ok()) << st.error_message();
}

}  // namespace
}  // namespace llmload
