// File: run_store.h
//
// Durable runs for the orchestrator: each run (spec, state, shards, events;
// never the collector's stats) is one row of a SQLite table, stored as the
// serialized v1::Run.
//
// RunStore is the synchronous store (thread-compatible: one user at a time).
// RunWriter owns a RunStore and a writer thread, so callers on gRPC reaction
// threads only enqueue a snapshot; the thread coalesces snapshots per run
// (the newest wins) and commits each batch in one transaction, then runs the
// callbacks that asked to know. RunWriter is thread-safe.
//
//   absl::StatusOr<std::unique_ptr<RunStore>> store = RunStore::Open("orchestrator.db");
//   absl::StatusOr<std::vector<v1::Run>> runs = (*store)->LoadAll();
//   RunWriter writer(*std::move(store));
//   writer.Enqueue(run, [](absl::Status s) { ... });   // after the commit
//   writer.Stop();                                      // flushes

#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "llmload/v1/run.pb.h"

struct sqlite3;

namespace llmload::orchestrator {

class RunStore {
 public:
  // Opens (creating if needed) the database at `path` in WAL mode.
  static absl::StatusOr<std::unique_ptr<RunStore>> Open(const std::string& path);
  ~RunStore();
  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;

  // Every stored run, in no particular order.
  absl::StatusOr<std::vector<v1::Run>> LoadAll();
  // Inserts or replaces runs (stats are not stored) in one transaction.
  absl::Status PutAll(const std::vector<const v1::Run*>& runs);
  absl::Status Put(const v1::Run& run) { return PutAll({&run}); }

 private:
  explicit RunStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  sqlite3* db_;
};

class RunWriter {
 public:
  using Done = std::function<void(absl::Status)>;

  explicit RunWriter(std::unique_ptr<RunStore> store);
  ~RunWriter();  // Stop()
  RunWriter(const RunWriter&) = delete;
  RunWriter& operator=(const RunWriter&) = delete;

  // Queues a snapshot of `run`; `done` (optional) runs on the writer thread
  // once it is committed (or failed to be).
  void Enqueue(const v1::Run& run, Done done = nullptr) ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until everything queued so far is committed. Not for reactions.
  void Flush() ABSL_LOCKS_EXCLUDED(mu_);
  // Flushes, stops the thread and closes the store. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Pending {
    v1::Run run;
    std::vector<Done> done;
  };
  void Loop();

  std::unique_ptr<RunStore> store_;  // used only by the writer thread
  absl::Mutex mu_;
  std::map<std::string, Pending> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t committed_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool exited_ ABSL_GUARDED_BY(mu_) = false;  // the thread has drained and ended
  std::thread thread_;
};

}  // namespace llmload::orchestrator
