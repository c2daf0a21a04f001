#include "services/collector/store.h"

#include <sqlite3.h>

#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "services/collector/run_registry.h"
#include "tests/unit/collector/batch_util.h"

namespace llmload::collector {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using batch_util::MakeSampleBatch;
using batch_util::SampleGenerator;

class SqliteBatchStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("collector_store_" + std::string(::testing::UnitTest::GetInstance()
                                                 ->current_test_info()
                                                 ->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "collector.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<v1::SampleBatch> ReadAll(SqliteBatchStore& store) {
    std::vector<v1::SampleBatch> out;
    absl::Status s = store.ForEach([&](const v1::SampleBatch& b) {
      out.push_back(b);
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(SqliteBatchStoreTest, RoundTripsAcrossReopenAndReplaysExactly) {
  SampleGenerator gen(5);
  metrics::MetricSet reference;
  std::vector<v1::SampleBatch> batches;
  for (uint64_t seq = 1; seq <= 6; ++seq) {
    batches.push_back(MakeSampleBatch(gen, 40, "run", seq % 2 ? "w1" : "w2", (seq + 1) / 2,
                                      reference, seq >= 5, static_cast<int64_t>(seq)));
  }
  RunRegistry original;
  {
    auto store = SqliteBatchStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    // Two transactions, the second with a re-sent batch that must be ignored.
    ASSERT_TRUE((*store)->Insert({&batches[0], &batches[1], &batches[2]}).ok());
    ASSERT_TRUE((*store)->Insert({&batches[3], &batches[4], &batches[5], &batches[0]}).ok());
    EXPECT_EQ(*(*store)->Count(), 6);
    for (const auto& b : batches) {
      ASSERT_TRUE(original.Apply(b).ok());
    }
  }
  auto reopened = SqliteBatchStore::Open(path_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  std::vector<v1::SampleBatch> read = ReadAll(**reopened);
  ASSERT_EQ(read.size(), batches.size());
  for (size_t i = 0; i < read.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(read[i], batches[i])) << i;
  }
  RunRegistry replayed;
  for (const auto& b : read) {
    ASSERT_TRUE(replayed.Apply(b).ok());
  }
  auto want = original.GetRunStats("run", true);
  auto got = replayed.GetRunStats("run", true);
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(*want, *got));
}

TEST_F(SqliteBatchStoreTest, EmptyInsertIsANoOp) {
  auto store = SqliteBatchStore::Open(path_);
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE((*store)->Insert({}).ok());
  EXPECT_EQ(*(*store)->Count(), 0);
}

TEST_F(SqliteBatchStoreTest, SecondOpenOfTheSameFileFails) {
  auto first = SqliteBatchStore::Open(path_);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = SqliteBatchStore::Open(path_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_NE(second.status().message().find("another collector"), std::string::npos);
  first->reset();
  EXPECT_TRUE(SqliteBatchStore::Open(path_).ok());
}

TEST_F(SqliteBatchStoreTest, UsesWalAndFullSync) {
  auto store = SqliteBatchStore::Open(path_);
  ASSERT_TRUE(store.ok());
  SampleGenerator gen(2);
  metrics::MetricSet ref;
  v1::SampleBatch b = MakeSampleBatch(gen, 10, "r", "w", 1, ref);
  ASSERT_TRUE((*store)->Insert({&b}).ok());
  // The commit went to the write-ahead log.
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
}

TEST_F(SqliteBatchStoreTest, NotADatabaseIsDataLoss) {
  {
    std::FILE* f = std::fopen(path_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("this is not a sqlite database, just some text that is long enough to matter\n",
               f);
    std::fclose(f);
  }
  auto store = SqliteBatchStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
}

TEST_F(SqliteBatchStoreTest, EpochsAreApartAndSealsSurviveAReopen) {
  SampleGenerator gen(3);
  metrics::MetricSet reference;
  v1::SampleBatch a = MakeSampleBatch(gen, 5, "run", "w1", 1, reference);
  v1::SampleBatch b = a;
  b.set_epoch(2);  // same sequence, another shard: both kept
  v1::SealShardRequest seal;
  seal.set_run_id("run");
  seal.set_worker_id("w1");
  seal.set_epoch(2);
  {
    auto store = SqliteBatchStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Insert({&a, &b}).ok());
    ASSERT_TRUE((*store)->InsertSeal(seal).ok());
    ASSERT_TRUE((*store)->InsertSeal(seal).ok());  // again: a no-op
  }
  auto store = SqliteBatchStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(ReadAll(**store).size(), 2u);
  std::vector<v1::SealShardRequest> seals;
  ASSERT_TRUE((*store)
                  ->ForEachSeal([&](const v1::SealShardRequest& s) {
                    seals.push_back(s);
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_EQ(seals.size(), 1u);
  EXPECT_EQ(seals[0].epoch(), 2u);
}

TEST_F(SqliteBatchStoreTest, MigratesASchemaOneDatabase) {
  SampleGenerator gen(4);
  metrics::MetricSet reference;
  const v1::SampleBatch old = MakeSampleBatch(gen, 5, "run", "w1", 1, reference);
  {
    // A database as the previous collector wrote it.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    std::string payload;
    ASSERT_TRUE(old.SerializeToString(&payload));
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE batches (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, "
                           "worker_id TEXT NOT NULL, sequence INTEGER NOT NULL, stored_at_us "
                           "INTEGER NOT NULL, batch BLOB NOT NULL, UNIQUE (run_id, worker_id, "
                           "sequence)); PRAGMA user_version=1;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db,
                                 "INSERT INTO batches (run_id, worker_id, sequence, stored_at_us, "
                                 "batch) VALUES ('run', 'w1', 1, 0, ?1)",
                                 -1, &st, nullptr),
              SQLITE_OK);
    sqlite3_bind_blob(st, 1, payload.data(), static_cast<int>(payload.size()), SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  auto store = SqliteBatchStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<v1::SampleBatch> all = ReadAll(**store);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_TRUE(MessageDifferencer::Equals(all[0], old));
  v1::SampleBatch next = old;
  next.set_epoch(3);
  ASSERT_TRUE((*store)->Insert({&next}).ok());
  EXPECT_EQ(ReadAll(**store).size(), 2u);
}

}  // namespace
}  // namespace llmload::collector
