// File: grpc_util.h
//
// The gRPC edge of the services: Status conversion (absl and gRPC share the
// google.rpc.Code numbering), a server builder with health checking and
// reflection enabled, and duration helpers for protobuf.

#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "services/common/auth.h"
#include "services/common/tls.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/grpcpp.h"

namespace llmload {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// Process-wide: call before building the first server.
void EnableHealthAndReflection();

// Builds and starts a server on `address` ("host:port"; port 0 picks a free
// one) with `credentials` (null: plaintext). Returns the bound port in
// *bound_port.
std::unique_ptr<grpc::Server> StartGrpcServer(
    const std::string& address, const std::vector<grpc::Service*>& services, int* bound_port,
    std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);

// How this process's outgoing links are secured: TLS files (see tls.h) and
// the bearer token sent on every call (null: none). Process-wide, like the
// flags it comes from: set once at start, before the first MakeChannel.
struct ClientLinks {
  TlsFiles tls;
  std::shared_ptr<const TokenSource> token;
};
absl::Status ConfigureClientLinks(ClientLinks links);

// Channel with keepalive settings suited to long-lived streams, secured as
// ConfigureClientLinks said (plaintext and no token by default).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           int max_receive_bytes = 64 * 1024 * 1024);

// A streaming call's reactor that finishes at once with `status` (refused,
// unknown run, shutting down).
template <typename Base>
class FinishedReactor final : public Base {
 public:
  explicit FinishedReactor(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

google::protobuf::Timestamp NowTimestamp();
absl::Duration FromProtoDuration(const google::protobuf::Duration& d);
void ToProtoDuration(absl::Duration d, google::protobuf::Duration* out);

}  // namespace llmload
