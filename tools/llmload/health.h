// File: health.h
//
// `llmload health`: the readiness probe of containers, compose healthchecks
// and scripts. Asks a gRPC server's standard grpc.health.v1.Health/Check (or,
// with --http, GETs a path of an HTTP server such as the emulator's /health
// or a worker's /metrics) under a deadline and turns the answer into an exit
// status: 0 SERVING (HTTP 2xx), 1 anything else, 2 unreachable or a usage
// error.
//
// The argument parser and the Health message codec are pure and unit-tested;
// RunHealth does the network call. Debian's gRPC ships no generated health
// stubs, so the two tiny messages are encoded by hand and sent through
// grpc::GenericStub.

#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace llmload::cli {

inline constexpr int kHealthServing = 0;
inline constexpr int kHealthNotServing = 1;
inline constexpr int kHealthUnreachable = 2;

struct HealthOptions {
  std::string address = "127.0.0.1:50051";  // --address [LLMLOAD_HEALTH_ADDRESS]
  std::string service;                      // --service [LLMLOAD_HEALTH_SERVICE]; "" = server
  std::string http_path;                    // --http [LLMLOAD_HEALTH_HTTP]: HTTP GET instead
  double timeout_seconds = 3;               // --timeout: deadline of the whole check
  bool quiet = false;                       // --quiet: print nothing
  bool help = false;
};

// Parses the arguments after `health`. `getenv` returns an environment
// variable's value or nullopt.
absl::StatusOr<HealthOptions> ParseHealthArgs(
    const std::vector<std::string>& args,
    const std::function<std::optional<std::string>(const std::string&)>& getenv);

std::string HealthUsageText();

// grpc.health.v1.HealthCheckRequest{service} in protobuf wire format.
std::string EncodeHealthCheckRequest(std::string_view service);
// The `status` (ServingStatus number: 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING,
// 3 SERVICE_UNKNOWN) of a wire-format grpc.health.v1.HealthCheckResponse;
// unknown fields are skipped.
absl::StatusOr<int32_t> DecodeHealthCheckResponse(std::string_view bytes);
std::string ServingStatusName(int32_t status);

// Performs the check and prints one line (unless quiet); returns the exit
// status.
int RunHealth(const HealthOptions& options);
// `llmload health ARGS…`: parses (with the process environment) and runs.
int HealthMain(const std::vector<std::string>& args);

}  // namespace llmload::cli
