// File: security_flags.h
//
// The TLS and token flags every llmload service takes (DESIGN.md,
// Security), and what they configure:
//
//   --tls_cert_file, --tls_key_file  this process's certificate and key:
//                                    served (orchestrator, collector) and
//                                    presented to the services it calls
//   --tls_ca_file                    CA bundle peers must chain to: servers
//                                    then require client certificates
//                                    (mTLS); clients verify servers with it
//   --tls_server_name                clients: name expected in the server's
//                                    certificate (default: the host dialled)
//   --tls_reload_seconds             how often the files are checked
//   --operator_token_file, --read_token_file, --join_token_file
//                                    bearer tokens, one per line (auth.h)
//
// Each flag defaults to its LLMLOAD_* environment variable; the tokens
// themselves may also come from LLMLOAD_OPERATOR_TOKEN, LLMLOAD_READ_TOKEN
// and LLMLOAD_JOIN_TOKEN (never from a flag, which `ps` would show).

#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "services/common/auth.h"
#include "services/common/tls.h"

namespace llmload {

// The TLS files named by the flags, checked (CheckTlsFiles).
absl::StatusOr<TlsFiles> TlsFilesFromFlags();

// The server's token check from the flags and environment.
absl::StatusOr<std::shared_ptr<const ServerAuth>> ServerAuthFromFlags();

// The join token a worker or the orchestrator sends (null when none).
absl::StatusOr<std::shared_ptr<const TokenSource>> JoinTokenFromFlags();

// Logs, once at start, how the process's links are secured (never a token).
void LogSecurity(const TlsFiles& tls, const ServerAuth* auth, const TokenSource* join);

}  // namespace llmload
