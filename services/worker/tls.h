// File: tls.h
//
// The worker's TLS client context for https/wss targets: the system trust
// store by default, `target.caFile` instead when given, and no verification
// only when `target.insecureSkipVerify` says so (for test targets). Host
// names are verified against the certificate and sent as SNI by the drivers
// (SetUpTlsClient).

#pragma once

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "absl/status/statusor.h"
#include "llmload/v1/run.pb.h"

namespace llmload::worker {

absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeClientTlsContext(
    const v1::Target& target);

// SNI and host-name verification for one connection; false if SNI could not
// be set.
bool SetUpTlsClient(boost::asio::ssl::stream<boost::asio::ip::tcp::socket>& stream,
                    const std::string& host, bool verify);

}  // namespace llmload::worker
