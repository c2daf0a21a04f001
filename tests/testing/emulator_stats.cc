#include "tests/testing/emulator_stats.h"

#include "boost/json.hpp"
#include "tests/testing/process.h"

namespace llmload::testing_util {

std::optional<EmulatorStats> ParseEmulatorStats(const std::string& body) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) {
    return std::nullopt;
  }
  try {
    EmulatorStats s;
    const boost::json::object& o = v.as_object();
    s.pid = o.at("pid").to_number<int64_t>();
    s.process = o.at("process").to_number<int32_t>();
    s.processes = o.at("processes").to_number<int32_t>();
    s.connections_accepted = o.at("connections_accepted").to_number<uint64_t>();
    s.open_connections = o.at("open_connections").to_number<int64_t>();
    for (const auto& [name, n] : o.at("requests").as_object()) {
      s.requests[std::string(name)] = n.to_number<uint64_t>();
    }
    for (const auto& [name, n] : o.at("abandoned").as_object()) {
      s.abandoned[std::string(name)] = n.to_number<uint64_t>();
    }
    for (const auto& [name, n] : o.at("tokens_sent").as_object()) {
      s.tokens_sent[std::string(name)] = n.to_number<uint64_t>();
    }
    for (const auto& [name, gaps] : o.at("token_gaps").as_object()) {
      histogram::Histogram& h = s.token_gaps[std::string(name)];
      for (const auto& bucket : gaps.at("buckets").as_array()) {
        const boost::json::array& pair = bucket.as_array();
        h.Record(pair.at(0).to_number<uint64_t>(), pair.at(1).to_number<uint64_t>());
      }
      if (h.Count() != gaps.at("count").to_number<uint64_t>()) {
        return std::nullopt;
      }
    }
    if (const boost::json::value* calls = o.if_contains("realm_functions")) {
      for (const auto& [name, n] : calls->as_object()) {
        s.realm_functions[std::string(name)] = n.to_number<uint64_t>();
      }
    }
    if (const boost::json::value* turns = o.if_contains("conversation_turns")) {
      for (const boost::json::value& n : turns->at("WS_CHAT").as_array()) {
        s.ws_chat_turns.push_back(n.to_number<uint64_t>());
      }
    }
    const boost::json::object& relayed = o.at("relayed_runs").as_object();
    s.relayed_sent = relayed.at("sent").to_number<uint64_t>();
    s.relayed_received = relayed.at("received").to_number<uint64_t>();
    s.relayed_started = relayed.at("started").to_number<uint64_t>();
    const boost::json::object& recovery = o.at("recovery").as_object();
    s.recoveries_attempted = recovery.at("attempted").to_number<uint64_t>();
    s.recoveries_succeeded = recovery.at("succeeded").to_number<uint64_t>();
    s.publications_recovered = recovery.at("publications").to_number<uint64_t>();
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

::testing::AssertionResult CollectEmulatorStats(int port, int processes, absl::Duration timeout,
                                                std::map<int64_t, EmulatorStats>* by_pid) {
  by_pid->clear();
  std::string last_error;
  ::testing::AssertionResult seen = WaitUntil(
      [&] {
        int status = 0;
        const std::string body = HttpGet(port, "/stats", &status);
        std::optional<EmulatorStats> stats = ParseEmulatorStats(body);
        if (status != 200 || !stats.has_value()) {
          last_error = "status " + std::to_string(status) + ", body " + body;
          return false;
        }
        (*by_pid)[stats->pid] = *stats;
        return by_pid->size() >= static_cast<size_t>(processes);
      },
      timeout, "an answer from every emulator process", absl::Milliseconds(1));
  if (!seen) {
    seen << " (" << by_pid->size() << " of " << processes << " answered; " << last_error << ")";
  }
  return seen;
}

}  // namespace llmload::testing_util
