#include "services/common/security_flags.h"

#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "lib/common/env.h"
#include "lib/common/log.h"

ABSL_FLAG(std::string, tls_cert_file, llmload::EnvOr("LLMLOAD_TLS_CERT_FILE", ""),
          "PEM certificate of this process: served, and presented to the services it calls "
          "(env LLMLOAD_TLS_CERT_FILE).");
ABSL_FLAG(std::string, tls_key_file, llmload::EnvOr("LLMLOAD_TLS_KEY_FILE", ""),
          "PEM private key of --tls_cert_file (env LLMLOAD_TLS_KEY_FILE).");
ABSL_FLAG(std::string, tls_ca_file, llmload::EnvOr("LLMLOAD_TLS_CA_FILE", ""),
          "PEM CA bundle: a server then requires client certificates from it (mutual TLS); a "
          "client verifies servers with it (env LLMLOAD_TLS_CA_FILE).");
ABSL_FLAG(std::string, tls_server_name, llmload::EnvOr("LLMLOAD_TLS_SERVER_NAME", ""),
          "Clients: the name expected in the server's certificate; default the host dialled "
          "(env LLMLOAD_TLS_SERVER_NAME).");
ABSL_FLAG(double, tls_reload_seconds, llmload::EnvOr("LLMLOAD_TLS_RELOAD_SECONDS", 10.0),
          "How often the TLS files are checked for replacement (env "
          "LLMLOAD_TLS_RELOAD_SECONDS).");
ABSL_FLAG(std::string, operator_token_file, llmload::EnvOr("LLMLOAD_OPERATOR_TOKEN_FILE", ""),
          "Servers: file of operator tokens (start, stop, read), one per line, re-read when it "
          "changes; also env LLMLOAD_OPERATOR_TOKEN (env LLMLOAD_OPERATOR_TOKEN_FILE).");
ABSL_FLAG(std::string, read_token_file, llmload::EnvOr("LLMLOAD_READ_TOKEN_FILE", ""),
          "Servers: file of read-only tokens; also env LLMLOAD_READ_TOKEN (env "
          "LLMLOAD_READ_TOKEN_FILE).");
ABSL_FLAG(std::string, join_token_file, llmload::EnvOr("LLMLOAD_JOIN_TOKEN_FILE", ""),
          "File of the join token workers attach and ingest with (servers check it, workers "
          "and the orchestrator send it); also env LLMLOAD_JOIN_TOKEN (env "
          "LLMLOAD_JOIN_TOKEN_FILE).");

namespace llmload {
namespace {

std::string EnvLiteral(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

absl::StatusOr<std::unique_ptr<TokenSource>> Source(const char* flag, const char* env,
                                                    const std::string& file) {
  return TokenSource::Create(flag, EnvLiteral(env), file);
}

}  // namespace

absl::StatusOr<TlsFiles> TlsFilesFromFlags() {
  TlsFiles tls;
  tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
  tls.ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  tls.server_name = absl::GetFlag(FLAGS_tls_server_name);
  const double reload = absl::GetFlag(FLAGS_tls_reload_seconds);
  if (!(reload >= 1 && reload <= 86400)) {
    return absl::InvalidArgumentError("--tls_reload_seconds: must be in [1, 86400]");
  }
  tls.reload = absl::Seconds(reload);
  if (absl::Status s = CheckTlsFiles(tls, '_'); !s.ok()) {
    return s;
  }
  return tls;
}

absl::StatusOr<std::shared_ptr<const ServerAuth>> ServerAuthFromFlags() {
  auto operate = Source("--operator_token_file", "LLMLOAD_OPERATOR_TOKEN",
                        absl::GetFlag(FLAGS_operator_token_file));
  if (!operate.ok()) {
    return operate.status();
  }
  auto read =
      Source("--read_token_file", "LLMLOAD_READ_TOKEN", absl::GetFlag(FLAGS_read_token_file));
  if (!read.ok()) {
    return read.status();
  }
  auto join =
      Source("--join_token_file", "LLMLOAD_JOIN_TOKEN", absl::GetFlag(FLAGS_join_token_file));
  if (!join.ok()) {
    return join.status();
  }
  return ServerAuth::Create(*std::move(operate), *std::move(read), *std::move(join));
}

absl::StatusOr<std::shared_ptr<const TokenSource>> JoinTokenFromFlags() {
  auto join =
      Source("--join_token_file", "LLMLOAD_JOIN_TOKEN", absl::GetFlag(FLAGS_join_token_file));
  if (!join.ok()) {
    return join.status();
  }
  if (!(*join)->configured()) {
    return std::shared_ptr<const TokenSource>();
  }
  return std::shared_ptr<const TokenSource>(*std::move(join));
}

void LogSecurity(const TlsFiles& tls, const ServerAuth* auth, const TokenSource* join) {
  const char* server = !tls.server_enabled() ? "off" : (tls.ca_file.empty() ? "tls" : "mtls");
  const char* control = auth == nullptr ? "n/a" : (auth->control_open() ? "open" : "token");
  const char* joining = auth == nullptr ? "n/a" : (auth->join_open() ? "open" : "token");
  LLMLOAD_LOG(kInfo, "Link security.")
      .Kv("tls_server", server)
      .Kv("tls_client", tls.client_enabled() ? "on" : "off")
      .Kv("control_rpcs", control)
      .Kv("join", joining)
      .Kv("sends_join_token", join != nullptr ? "yes" : "no");
}

}  // namespace llmload
