// File: emulator_stats.h
//
// The emulator's own count of what reached it (GET /stats), for tests that
// check where sessions landed: one emulator per target URL, or the
// processes of one emulator group (--processes) sharing a port.
//
//   std::map<int64_t, testing_util::EmulatorStats> by_pid;
//   ASSERT_TRUE(testing_util::CollectEmulatorStats(port, 3, absl::Seconds(10), &by_pid));

#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/histogram/histogram.h"

namespace llmload::testing_util {

struct EmulatorStats {
  int64_t pid = 0;
  int32_t process = 0;
  int32_t processes = 0;
  uint64_t connections_accepted = 0;
  int64_t open_connections = 0;
  std::map<std::string, uint64_t> requests;  // by protocol name
  // Streamed responses the client left before their end, by protocol name.
  std::map<std::string, uint64_t> abandoned;
  // Tokens the process handed to its connections, by protocol name.
  std::map<std::string, uint64_t> tokens_sent;
  // The gaps the process left between consecutive tokens, by protocol name
  // (rebuilt from the bucket list: counts exact, each value its bucket's).
  std::map<std::string, histogram::Histogram> token_gaps;
  // WS chat user messages by their turn (index 0: turn 1) in the
  // conversation the emulator kept for their connection.
  std::vector<uint64_t> ws_chat_turns;
  // Realm calls other than generate answered, by function name (health,
  // metadata, pipeline).
  std::map<std::string, uint64_t> realm_functions;
  uint64_t relayed_sent = 0;
  uint64_t relayed_received = 0;
  uint64_t relayed_started = 0;
  // Centrifugo subscriptions that asked to recover, those that recovered
  // everything, and the publications sent back through recovery.
  uint64_t recoveries_attempted = 0;
  uint64_t recoveries_succeeded = 0;
  uint64_t publications_recovered = 0;

  uint64_t RequestsOf(const std::string& protocol) const {
    auto it = requests.find(protocol);
    return it == requests.end() ? 0 : it->second;
  }
  uint64_t TokenGapCount(const std::string& protocol) const {
    auto it = token_gaps.find(protocol);
    return it == token_gaps.end() ? 0 : it->second.Count();
  }
  uint64_t AbandonedOf(const std::string& protocol) const {
    auto it = abandoned.find(protocol);
    return it == abandoned.end() ? 0 : it->second;
  }
};

// A /stats body; nullopt when it is not one.
std::optional<EmulatorStats> ParseEmulatorStats(const std::string& body);

// GET /stats on 127.0.0.1:port, each time on a new connection, until
// `processes` different processes have answered (the kernel picks one per
// connection); the latest answer of each, by pid. Fails at `timeout`.
::testing::AssertionResult CollectEmulatorStats(int port, int processes, absl::Duration timeout,
                                                std::map<int64_t, EmulatorStats>* by_pid);

}  // namespace llmload::testing_util
