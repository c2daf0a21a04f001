// File: tls.h
//
// TLS and mutual TLS for llmload's gRPC links, from PEM files. The files are
// watched: a certificate, key or CA bundle replaced on disk (a rotated
// Kubernetes Secret, cert-manager renewing) is used for new connections
// within `reload`, without a restart.
//
// One set of files per process: a service's certificate serves its port and
// is the client certificate it presents to the services it calls, so it
// should carry both the serverAuth and clientAuth usages (or none).
//
// Thread-compatible data; the credentials returned are thread-safe.

#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace llmload {

struct TlsFiles {
  std::string cert_file;    // PEM certificate chain of this process
  std::string key_file;     // its private key
  std::string ca_file;      // PEM bundle the peers' certificates must chain to
  std::string server_name;  // client: the name to expect in the server's certificate
  absl::Duration reload = absl::Seconds(10);

  // A server serves TLS when it has a certificate, and requires client
  // certificates (mutual TLS) when it has a CA too.
  bool server_enabled() const { return !cert_file.empty(); }
  // A client speaks TLS when it has a CA (or a certificate to present).
  bool client_enabled() const { return !ca_file.empty() || !cert_file.empty(); }
};

// Checks that the named files exist, parse as PEM, and that the key belongs
// to the certificate, so a mistake fails at start with the file's flag name
// rather than as an opaque handshake error later. Errors name the flags
// with `sep` between words: '_' for the services (--tls_cert_file), '-' for
// the CLI (--tls-cert-file).
absl::Status CheckTlsFiles(const TlsFiles& files, char sep);

// Insecure when !server_enabled(); TLS, or mTLS with ca_file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

// Insecure when !client_enabled(). Verifies the server against ca_file (the
// system roots when only a certificate is given) and presents the
// certificate when there is one.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files);

}  // namespace llmload
