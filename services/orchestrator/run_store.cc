#include "services/orchestrator/run_store.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"

namespace llmload::orchestrator {
namespace {

absl::Status SqliteError(sqlite3* db, std::string_view what) {
  return absl::InternalError(absl::StrCat(absl::string_view(what.data(), what.size()), ": ",
                                          db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

// Finalizes a prepared statement on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

int64_t Micros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000 + t.nanos() / 1000;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RunStore>> RunStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(db, absl::StrCat("open ", path));
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<RunStore> store(new RunStore(db));
  for (const char* sql : {
           "PRAGMA journal_mode=WAL",
           "PRAGMA synchronous=NORMAL",
           "CREATE TABLE IF NOT EXISTS runs ("
           "  id TEXT PRIMARY KEY,"
           "  created_at_us INTEGER NOT NULL,"
           "  state INTEGER NOT NULL,"
           "  run BLOB NOT NULL)",
       }) {
    if (absl::Status s = store->Exec(sql); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("database ", path, ": ", s.message()));
    }
  }
  return store;
}

RunStore::~RunStore() { sqlite3_close(db_); }

absl::Status RunStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = absl::InternalError(absl::StrCat(sql, ": ", err != nullptr ? err : "error"));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Run>> RunStore::LoadAll() {
  Statement stmt(db_, "SELECT id, run FROM runs");
  if (!stmt.ok()) {
    return SqliteError(db_, "prepare select");
  }
  std::vector<v1::Run> runs;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    const void* blob = sqlite3_column_blob(stmt.get(), 1);
    const int size = sqlite3_column_bytes(stmt.get(), 1);
    v1::Run run;
    if (!run.ParseFromArray(blob, size)) {
      const char* id = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
      LLMLOAD_LOG(kWarn, "Skipping a stored run that does not parse.").Kv("run_id", id ? id : "");
      continue;
    }
    runs.push_back(std::move(run));
  }
  if (rc != SQLITE_DONE) {
    return SqliteError(db_, "select runs");
  }
  return runs;
}

absl::Status RunStore::PutAll(const std::vector<const v1::Run*>& runs) {
  if (runs.empty()) {
    return absl::OkStatus();
  }
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) {
    return s;
  }
  absl::Status status;
  {
    Statement stmt(db_,
                   "INSERT INTO runs (id, created_at_us, state, run) VALUES (?1, ?2, ?3, ?4) "
                   "ON CONFLICT(id) DO UPDATE SET state = excluded.state, run = excluded.run");
    if (!stmt.ok()) {
      status = SqliteError(db_, "prepare upsert");
    }
    std::string bytes;
    for (const v1::Run* run : runs) {
      if (!status.ok()) {
        break;
      }
      v1::Run copy = *run;
      copy.clear_stats();
      bytes.clear();
      copy.SerializeToString(&bytes);
      sqlite3_bind_text(stmt.get(), 1, copy.id().data(), static_cast<int>(copy.id().size()),
                        SQLITE_TRANSIENT);
      sqlite3_bind_int64(stmt.get(), 2, Micros(copy.created_at()));
      sqlite3_bind_int(stmt.get(), 3, copy.state());
      sqlite3_bind_blob(stmt.get(), 4, bytes.data(), static_cast<int>(bytes.size()),
                        SQLITE_TRANSIENT);
      if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
        status = SqliteError(db_, absl::StrCat("store run ", copy.id()));
      }
      sqlite3_reset(stmt.get());
      sqlite3_clear_bindings(stmt.get());
    }
  }
  if (!status.ok()) {
    (void)Exec("ROLLBACK");
    return status;
  }
  return Exec("COMMIT");
}

RunWriter::RunWriter(std::unique_ptr<RunStore> store)
    : store_(std::move(store)), thread_([this] { Loop(); }) {}

RunWriter::~RunWriter() { Stop(); }

void RunWriter::Enqueue(const v1::Run& run, Done done) {
  absl::ReleasableMutexLock lock(&mu_);
  if (exited_) {
    lock.Release();
    LLMLOAD_LOG(kError, "Run not stored: the writer has stopped.").Kv("run_id", run.id());
    if (done) {
      done(absl::FailedPreconditionError("run writer stopped"));
    }
    return;
  }
  Pending& p = pending_[run.id()];
  p.run = run;
  p.run.clear_stats();
  if (done) {
    p.done.push_back(std::move(done));
  }
  ++enqueued_;
}

void RunWriter::Flush() {
  absl::MutexLock lock(&mu_);
  const uint64_t target = enqueued_;
  auto done = [this, target]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return committed_ >= target || exited_;
  };
  mu_.Await(absl::Condition(&done));
}

void RunWriter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  store_.reset();
}

void RunWriter::Loop() {
  for (;;) {
    std::map<std::string, Pending> batch;
    uint64_t upto = 0;
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return !pending_.empty() || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      batch.swap(pending_);
      upto = enqueued_;
      stop = stopping_ && batch.empty();
      exited_ = stop;
    }
    if (stop) {
      return;
    }
    std::vector<const v1::Run*> runs;
    runs.reserve(batch.size());
    for (const auto& [id, p] : batch) {
      runs.push_back(&p.run);
    }
    absl::Status status = store_->PutAll(runs);
    if (!status.ok()) {
      LLMLOAD_LOG(kError, "Could not store runs.")
          .Kv("runs", static_cast<int64_t>(runs.size()))
          .Kv("error", std::string(status.message()));
    }
    for (auto& [id, p] : batch) {
      for (Done& d : p.done) {
        d(status);
      }
    }
    absl::MutexLock lock(&mu_);
    committed_ = upto;
  }
}

}  // namespace llmload::orchestrator
