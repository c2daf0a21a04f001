// File: auth.h
//
// Bearer tokens on llmload's gRPC links (DESIGN.md, Security).
//
// Three kinds of token, each configured on the servers from an environment
// variable holding the token(s) and/or a file (one token per line, so a
// Kubernetes Secret can be mounted and rotated: the file is read again when
// it changes):
//   - operator: may start and stop runs, and read;
//   - read: may only read (GetRun, ListRuns, WatchRun, ListWorkers, the
//     collector's statistics and records);
//   - join: identifies llmload's own processes: workers attach and ingest
//     with it, the orchestrator seals shards and reads statistics with it.
// With no operator and no read token configured the control RPCs are open;
// with no join token, attaching and ingesting are. Health checks and
// reflection are always open.
//
// Servers check tokens inside each handler (ServerAuth::Check): gRPC 1.51's
// server interceptors cannot fail a call, and its AuthMetadataProcessor does
// not run on insecure ports. Tokens are compared as SHA-256 digests in
// constant time; no token ever reaches a log.
//
// Thread-safe.

#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/client_interceptor.h"

namespace llmload {

// Tokens from an environment variable's value (comma-separated) and a file
// (one per line; blank lines and lines starting with '#' skipped). The file
// is stat()ed at most once per `recheck` and read again when its size or
// modification time changed; a file that cannot be read keeps the last
// tokens read from it (and says so in the log once).
class TokenSource {
 public:
  using Digest = std::array<uint8_t, 32>;

  TokenSource() = default;
  // `name` says which token this is in errors ("--operator_token_file").
  // Fails when the file is named but cannot be read, or holds no token.
  static absl::StatusOr<std::unique_ptr<TokenSource>> Create(
      std::string name, std::string literal, std::string file,
      absl::Duration recheck = absl::Seconds(1));

  bool configured() const { return configured_; }
  // Whether `token` is one of the tokens, compared in constant time (per
  // configured token; the number of tokens is not secret).
  bool Matches(std::string_view token) const ABSL_LOCKS_EXCLUDED(mu_);
  // The first token (a client's), "" when none.
  std::string First() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Loaded {
    std::vector<std::string> tokens;
    std::vector<Digest> digests;
  };
  void MaybeReload() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static absl::StatusOr<std::vector<std::string>> ReadFile(const std::string& path);

  std::string name_;
  std::string file_;
  absl::Duration recheck_;
  bool configured_ = false;
  std::vector<std::string> literal_tokens_;
  mutable absl::Mutex mu_;
  mutable Loaded loaded_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time next_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  mutable int64_t file_size_ ABSL_GUARDED_BY(mu_) = -1;
  mutable int64_t file_mtime_ns_ ABSL_GUARDED_BY(mu_) = -1;
  mutable bool warned_ ABSL_GUARDED_BY(mu_) = false;
};

enum class Access {
  kRead,     // get, list, watch, statistics, records
  kOperate,  // start and stop runs
  kJoin,     // attach as a worker, ingest batches, seal shards
};

class ServerAuth {
 public:
  // Every source may be null (not configured). INVALID_ARGUMENT when read
  // tokens are configured without operator tokens (nobody could start a run).
  static absl::StatusOr<std::shared_ptr<const ServerAuth>> Create(
      std::unique_ptr<TokenSource> operate, std::unique_ptr<TokenSource> read,
      std::unique_ptr<TokenSource> join);
  // No token of any kind: everything open.
  static std::shared_ptr<const ServerAuth> Open();

  // OK, UNAUTHENTICATED (no or unknown bearer token) or PERMISSION_DENIED
  // (a read token where an operator token is needed). Logs a refusal with
  // the method and the peer, never the token.
  grpc::Status Check(const grpc::ServerContextBase& context, Access access,
                     std::string_view method) const;

  bool control_open() const { return operate_ == nullptr && read_ == nullptr; }
  bool join_open() const { return join_ == nullptr; }

 private:
  ServerAuth() = default;
  std::unique_ptr<TokenSource> operate_;
  std::unique_ptr<TokenSource> read_;
  std::unique_ptr<TokenSource> join_;
};

// A client interceptor that sends `authorization: Bearer <token>` on every
// call made through the channel, the token taken from `source` per call (so
// a rotated file is picked up). Sends nothing when the source is empty.
std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> BearerTokenInterceptor(
    std::shared_ptr<const TokenSource> source);

}  // namespace llmload
