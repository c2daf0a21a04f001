#include "services/collector/store.h"

#include <sqlite3.h>

#include <chrono>
#include <string_view>
#include <utility>

namespace llmload::collector {
namespace {

constexpr int kSchemaVersion = 2;
constexpr int kBusyTimeoutMs = 1000;

// Statement handle that finalizes itself.
class Stmt {
 public:
  Stmt() = default;
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt** out() { return &stmt_; }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kFailedPrecondition;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

bool IsBusy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteBatchStore>> SqliteBatchStore::Open(
    const std::string& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                     SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "opening " + path + ": " +
                      (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return absl::Status(CodeFor(rc), msg);
  }
  std::unique_ptr<SqliteBatchStore> store(new SqliteBatchStore(db, path));
  if (absl::Status s = store->Init(); !s.ok()) {
    return s;
  }
  return store;
}

SqliteBatchStore::~SqliteBatchStore() {
  absl::MutexLock lock(&mu_);
  sqlite3_finalize(insert_);
  // Checkpoints the WAL into the main file when this is the last connection.
  sqlite3_close_v2(db_);
}

absl::Status SqliteBatchStore::Error(int rc, const char* what) const {
  std::string msg = std::string(what) + " (" + path_ + "): " + sqlite3_errmsg(db_);
  if (IsBusy(rc)) {
    msg += " (is another collector using this database?)";
  }
  return absl::Status(CodeFor(rc), msg);
}

absl::Status SqliteBatchStore::Exec(const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = std::string(sql) + " (" + path_ + "): " + (err != nullptr ? err : "");
    sqlite3_free(err);
    if (IsBusy(rc)) {
      msg += " (is another collector using this database?)";
    }
    return absl::Status(CodeFor(rc), msg);
  }
  return absl::OkStatus();
}

absl::Status SqliteBatchStore::Init() {
  absl::MutexLock lock(&mu_);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  sqlite3_extended_result_codes(db_, 1);
  // The exclusive locking mode must be set before entering WAL so the WAL
  // index lives in process memory and the file lock is held until close.
  if (absl::Status s = Exec("PRAGMA locking_mode=EXCLUSIVE"); !s.ok()) {
    return s;
  }
  {
    Stmt stmt;
    if (int rc = sqlite3_prepare_v2(db_, "PRAGMA journal_mode=WAL", -1, stmt.out(), nullptr);
        rc != SQLITE_OK) {
      return Error(rc, "PRAGMA journal_mode=WAL");
    }
    const int rc = sqlite3_step(stmt.get());
    if (rc != SQLITE_ROW) {
      return Error(rc, "PRAGMA journal_mode=WAL");
    }
    const auto* mode = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
    if (mode == nullptr || std::string_view(mode) != "wal") {
      return absl::FailedPreconditionError("database " + path_ + " cannot use WAL mode");
    }
  }
  if (absl::Status s = Exec("PRAGMA synchronous=FULL"); !s.ok()) {
    return s;
  }
  // Takes the write lock now (and keeps it: exclusive locking mode).
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) {
    return s;
  }
  int version = 0;
  {
    Stmt stmt;
    if (int rc = sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, stmt.out(), nullptr);
        rc != SQLITE_OK) {
      (void)Exec("ROLLBACK");
      return Error(rc, "PRAGMA user_version");
    }
    if (sqlite3_step(stmt.get()) == SQLITE_ROW) {
      version = sqlite3_column_int(stmt.get(), 0);
    }
  }
  if (version > kSchemaVersion) {
    (void)Exec("ROLLBACK");
    return absl::FailedPreconditionError("database " + path_ + " has schema version " +
                                         std::to_string(version) +
                                         ", newer than this collector understands");
  }
  absl::Status s = version == 1 ? MigrateFrom1() : absl::OkStatus();
  if (s.ok()) {
    s = Exec(
        "CREATE TABLE IF NOT EXISTS batches ("
        "  id INTEGER PRIMARY KEY,"
        "  run_id TEXT NOT NULL,"
        "  worker_id TEXT NOT NULL,"
        "  epoch INTEGER NOT NULL DEFAULT 0,"
        "  sequence INTEGER NOT NULL,"
        "  stored_at_us INTEGER NOT NULL,"
        "  batch BLOB NOT NULL,"
        "  UNIQUE (run_id, worker_id, epoch, sequence))");
  }
  if (s.ok()) {
    s = Exec(
        "CREATE TABLE IF NOT EXISTS seals ("
        "  id INTEGER PRIMARY KEY,"
        "  run_id TEXT NOT NULL,"
        "  worker_id TEXT NOT NULL,"
        "  epoch INTEGER NOT NULL,"
        "  sealed_at_us INTEGER NOT NULL,"
        "  UNIQUE (run_id, worker_id, epoch))");
  }
  if (s.ok() && version < kSchemaVersion) {
    s = Exec("PRAGMA user_version=2");
  }
  if (!s.ok()) {
    (void)Exec("ROLLBACK");
    return s;
  }
  if (s = Exec("COMMIT"); !s.ok()) {
    return s;
  }
  if (int rc = sqlite3_prepare_v3(db_,
                                  "INSERT OR IGNORE INTO batches (run_id, worker_id, sequence, "
                                  "stored_at_us, batch, epoch) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                  -1, SQLITE_PREPARE_PERSISTENT, &insert_, nullptr);
      rc != SQLITE_OK) {
    return Error(rc, "preparing insert");
  }
  return absl::OkStatus();
}

absl::Status SqliteBatchStore::Insert(absl::Span<const v1::SampleBatch* const> batches) {
  if (batches.empty()) {
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) {
    return s;
  }
  const int64_t now = NowUnixMicros();
  std::string payload;
  for (const v1::SampleBatch* batch : batches) {
    payload.clear();
    if (!batch->SerializeToString(&payload)) {
      (void)Exec("ROLLBACK");
      return absl::InternalError("serializing a batch failed");
    }
    sqlite3_reset(insert_);
    sqlite3_bind_text(insert_, 1, batch->run_id().data(),
                      static_cast<int>(batch->run_id().size()), SQLITE_STATIC);
    sqlite3_bind_text(insert_, 2, batch->worker_id().data(),
                      static_cast<int>(batch->worker_id().size()), SQLITE_STATIC);
    sqlite3_bind_int64(insert_, 3, static_cast<sqlite3_int64>(batch->sequence()));
    sqlite3_bind_int64(insert_, 4, now);
    sqlite3_bind_blob(insert_, 5, payload.data(), static_cast<int>(payload.size()),
                      SQLITE_STATIC);
    sqlite3_bind_int64(insert_, 6, static_cast<sqlite3_int64>(batch->epoch()));
    const int rc = sqlite3_step(insert_);
    sqlite3_reset(insert_);
    sqlite3_clear_bindings(insert_);
    if (rc != SQLITE_DONE) {
      absl::Status err = Error(rc, "inserting a batch");
      (void)Exec("ROLLBACK");
      return err;
    }
  }
  if (absl::Status s = Exec("COMMIT"); !s.ok()) {
    // A failed COMMIT may leave the transaction open.
    if (sqlite3_get_autocommit(db_) == 0) {
      (void)Exec("ROLLBACK");
    }
    return s;
  }
  return absl::OkStatus();
}

absl::Status SqliteBatchStore::ForEach(
    absl::FunctionRef<absl::Status(const v1::SampleBatch&)> fn) {
  absl::MutexLock lock(&mu_);
  Stmt stmt;
  if (int rc = sqlite3_prepare_v2(db_, "SELECT id, batch FROM batches ORDER BY id", -1,
                                  stmt.out(), nullptr);
      rc != SQLITE_OK) {
    return Error(rc, "reading batches");
  }
  v1::SampleBatch batch;
  while (true) {
    const int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) {
      return absl::OkStatus();
    }
    if (rc != SQLITE_ROW) {
      return Error(rc, "reading batches");
    }
    const void* blob = sqlite3_column_blob(stmt.get(), 1);
    const int size = sqlite3_column_bytes(stmt.get(), 1);
    if (!batch.ParseFromArray(blob, size)) {
      return absl::DataLossError("stored batch row " +
                                 std::to_string(sqlite3_column_int64(stmt.get(), 0)) + " in " +
                                 path_ + " does not parse");
    }
    if (absl::Status s = fn(batch); !s.ok()) {
      return s;
    }
  }
}

absl::StatusOr<int64_t> SqliteBatchStore::ReadRunPage(
    std::string_view run_id, int64_t after_row, int limit,
    absl::FunctionRef<void(int64_t row, const v1::SampleBatch&)> fn) {
  absl::MutexLock lock(&mu_);
  Stmt stmt;
  // The UNIQUE (run_id, worker_id, epoch, sequence) index finds the run's rows.
  if (int rc = sqlite3_prepare_v2(db_,
                                  "SELECT id, batch FROM batches WHERE run_id = ?1 AND id > ?2 "
                                  "ORDER BY id LIMIT ?3",
                                  -1, stmt.out(), nullptr);
      rc != SQLITE_OK) {
    return Error(rc, "reading a run's batches");
  }
  sqlite3_bind_text(stmt.get(), 1, run_id.data(), static_cast<int>(run_id.size()),
                    SQLITE_STATIC);
  sqlite3_bind_int64(stmt.get(), 2, after_row);
  sqlite3_bind_int(stmt.get(), 3, limit);
  int64_t last = after_row;
  v1::SampleBatch batch;
  while (true) {
    const int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) {
      return last;
    }
    if (rc != SQLITE_ROW) {
      return Error(rc, "reading a run's batches");
    }
    last = sqlite3_column_int64(stmt.get(), 0);
    const void* blob = sqlite3_column_blob(stmt.get(), 1);
    const int size = sqlite3_column_bytes(stmt.get(), 1);
    if (!batch.ParseFromArray(blob, size)) {
      return absl::DataLossError("stored batch row " + std::to_string(last) + " in " + path_ +
                                 " does not parse");
    }
    fn(last, batch);
  }
}

absl::Status SqliteBatchStore::MigrateFrom1() {
  // The key gains the epoch: the table is rebuilt (SQLite cannot change a
  // table's constraints in place), inside Init's transaction.
  if (absl::Status s = Exec("ALTER TABLE batches RENAME TO batches_v1"); !s.ok()) {
    return s;
  }
  if (absl::Status s = Exec(
          "CREATE TABLE batches ("
          "  id INTEGER PRIMARY KEY,"
          "  run_id TEXT NOT NULL,"
          "  worker_id TEXT NOT NULL,"
          "  epoch INTEGER NOT NULL DEFAULT 0,"
          "  sequence INTEGER NOT NULL,"
          "  stored_at_us INTEGER NOT NULL,"
          "  batch BLOB NOT NULL,"
          "  UNIQUE (run_id, worker_id, epoch, sequence))");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Exec(
          "INSERT INTO batches (id, run_id, worker_id, epoch, sequence, stored_at_us, batch) "
          "SELECT id, run_id, worker_id, 0, sequence, stored_at_us, batch FROM batches_v1");
      !s.ok()) {
    return s;
  }
  return Exec("DROP TABLE batches_v1");
}

absl::Status SqliteBatchStore::InsertSeal(const v1::SealShardRequest& seal) {
  absl::MutexLock lock(&mu_);
  Stmt stmt;
  if (int rc = sqlite3_prepare_v2(db_,
                                  "INSERT OR IGNORE INTO seals (run_id, worker_id, epoch, "
                                  "sealed_at_us) VALUES (?1, ?2, ?3, ?4)",
                                  -1, stmt.out(), nullptr);
      rc != SQLITE_OK) {
    return Error(rc, "preparing a seal");
  }
  sqlite3_bind_text(stmt.get(), 1, seal.run_id().data(), static_cast<int>(seal.run_id().size()),
                    SQLITE_STATIC);
  sqlite3_bind_text(stmt.get(), 2, seal.worker_id().data(),
                    static_cast<int>(seal.worker_id().size()), SQLITE_STATIC);
  sqlite3_bind_int64(stmt.get(), 3, static_cast<sqlite3_int64>(seal.epoch()));
  sqlite3_bind_int64(stmt.get(), 4, NowUnixMicros());
  if (int rc = sqlite3_step(stmt.get()); rc != SQLITE_DONE) {
    return Error(rc, "storing a seal");
  }
  return absl::OkStatus();
}

absl::Status SqliteBatchStore::ForEachSeal(
    absl::FunctionRef<absl::Status(const v1::SealShardRequest&)> fn) {
  absl::MutexLock lock(&mu_);
  Stmt stmt;
  if (int rc = sqlite3_prepare_v2(db_, "SELECT run_id, worker_id, epoch FROM seals ORDER BY id",
                                  -1, stmt.out(), nullptr);
      rc != SQLITE_OK) {
    return Error(rc, "reading seals");
  }
  v1::SealShardRequest seal;
  while (true) {
    const int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) {
      return absl::OkStatus();
    }
    if (rc != SQLITE_ROW) {
      return Error(rc, "reading seals");
    }
    const auto* run = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
    const auto* worker = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 1));
    seal.set_run_id(run != nullptr ? run : "");
    seal.set_worker_id(worker != nullptr ? worker : "");
    seal.set_epoch(static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 2)));
    if (absl::Status s = fn(seal); !s.ok()) {
      return s;
    }
  }
}

absl::StatusOr<int64_t> SqliteBatchStore::Count() {
  absl::MutexLock lock(&mu_);
  Stmt stmt;
  if (int rc = sqlite3_prepare_v2(db_, "SELECT COUNT(*) FROM batches", -1, stmt.out(), nullptr);
      rc != SQLITE_OK) {
    return Error(rc, "counting batches");
  }
  if (int rc = sqlite3_step(stmt.get()); rc != SQLITE_ROW) {
    return Error(rc, "counting batches");
  }
  return static_cast<int64_t>(sqlite3_column_int64(stmt.get(), 0));
}

}  // namespace llmload::collector
