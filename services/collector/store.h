// File: store.h
//
// Durable storage of ingested sample batches (and of shard seals). The collector stores every
// batch it accepts before it acks it, and replays every stored batch into
// memory on start-up, so a collector killed right after an ack still reports
// the batch when it comes back.
//
// BatchStore is the seam the ingest pipeline writes through (tests substitute
// a fake that can hold a write back); SqliteBatchStore is the real one:
//
//   auto store = SqliteBatchStore::Open("collector.db");
//   if (!store.ok()) return store.status();
//   absl::Status s = (*store)->Insert({&batch});   // durable once OK
//
// The SQLite file runs in WAL mode with synchronous=FULL, so a committed
// transaction survives a process kill and a power cut. It is opened with an
// exclusive lock: a second collector on the same file fails at start-up
// instead of acking batches the first one never sees.
//
// Thread-safe: the ingest pipeline's writer thread inserts while the
// GetRunRecords streams read pages of one run's batches; one mutex serializes
// them (the connection is opened without SQLite's own mutex).

#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "llmload/v1/collector.pb.h"
#include "llmload/v1/stats.pb.h"

struct sqlite3;
struct sqlite3_stmt;

namespace llmload::collector {

class BatchStore {
 public:
  virtual ~BatchStore() = default;

  // Stores `batches` in one transaction: all of them or none. Returns OK only
  // once they are durable. A batch whose (run_id, worker_id, epoch,
  // sequence) is already stored is left as it was.
  virtual absl::Status Insert(absl::Span<const v1::SampleBatch* const> batches) = 0;

  // Calls `fn` for every stored batch, in the order they were stored. Stops
  // at, and returns, the first error of `fn`.
  virtual absl::Status ForEach(
      absl::FunctionRef<absl::Status(const v1::SampleBatch&)> fn) = 0;

  // One page of a run's stored batches: those of `run_id` stored after the
  // row `after_row` (0: from the start), at most `limit` of them, in the
  // order they were stored; `fn` gets each with its row. Returns the row of
  // the last batch read, or `after_row` when there was none.
  virtual absl::StatusOr<int64_t> ReadRunPage(
      std::string_view run_id, int64_t after_row, int limit,
      absl::FunctionRef<void(int64_t row, const v1::SampleBatch&)> fn) = 0;
  // Stores a seal (RunRegistry::Seal) durably; storing it again is a no-op.
  virtual absl::Status InsertSeal(const v1::SealShardRequest& seal) = 0;
  // Calls `fn` for every stored seal, in the order they were stored. A seal
  // applies after every batch stored before it, and batches stored after
  // it belong to other streams, so replaying the batches first and then the
  // seals rebuilds the same state.
  virtual absl::Status ForEachSeal(
      absl::FunctionRef<absl::Status(const v1::SealShardRequest&)> fn) = 0;
};

class SqliteBatchStore final : public BatchStore {
 public:
  // Opens or creates the database at `path`. FAILED_PRECONDITION when another
  // process holds it, DATA_LOSS when it is not a collector database.
  static absl::StatusOr<std::unique_ptr<SqliteBatchStore>> Open(const std::string& path);
  ~SqliteBatchStore() override;
  SqliteBatchStore(const SqliteBatchStore&) = delete;
  SqliteBatchStore& operator=(const SqliteBatchStore&) = delete;

  // BatchStore
  absl::Status Insert(absl::Span<const v1::SampleBatch* const> batches) override;
  absl::Status ForEach(absl::FunctionRef<absl::Status(const v1::SampleBatch&)> fn) override;
  absl::StatusOr<int64_t> ReadRunPage(
      std::string_view run_id, int64_t after_row, int limit,
      absl::FunctionRef<void(int64_t row, const v1::SampleBatch&)> fn) override;
  absl::Status InsertSeal(const v1::SealShardRequest& seal) override;
  absl::Status ForEachSeal(
      absl::FunctionRef<absl::Status(const v1::SealShardRequest&)> fn) override;

  // Number of stored batches.
  absl::StatusOr<int64_t> Count();
  const std::string& path() const { return path_; }

 private:
  SqliteBatchStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  absl::Status Init();
  // Schema 1 had no epoch in a batch's key.
  absl::Status MigrateFrom1() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Error(int rc, const char* what) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  std::string path_;
  sqlite3_stmt* insert_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace llmload::collector
