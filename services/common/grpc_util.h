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
// one). Returns the bound port in *bound_port.
std::unique_ptr<grpc::Server> StartGrpcServer(const std::string& address,
                                              const std::vector<grpc::Service*>& services,
                                              int* bound_port);

// Channel with keepalive settings suited to long-lived streams.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target);

google::protobuf::Timestamp NowTimestamp();
absl::Duration FromProtoDuration(const google::protobuf::Duration& d);
void ToProtoDuration(absl::Duration d, google::protobuf::Duration* out);

}  // namespace llmload
