// File: behaviour.h
//
// What every emulated response looks like, for every protocol: its length,
// its timing (time to first token, then a delay per token drawn from a
// fixed, uniform or log-normal distribution) and whether a fault replaces
// or interrupts it. One place, so every protocol honours the same knobs.
//
// Reproducibility: every random choice is a pure function of (seed,
// protocol, request index, position). Requests of one protocol are numbered
// 0, 1, 2, … in arrival order by a per-protocol atomic counter, so a run of
// N requests of a protocol with the same seed and rates draws exactly the
// same multiset of faults and delays whatever the concurrency. In a group of
// processes (--processes N) process i numbers its requests i, i+N, i+2N, …,
// so no index is drawn twice across the group. The words of
// a response depend only on (seed, prompt, length) (lorem.h), so a
// streaming and a non-streaming request with the same prompt produce the
// same text.
//
// Faults (names as in the x-llmload-fault header, the Realm params.fault
// and WS-chat options.fault extensions, and --fault_* flags):
//   500          the provider's HTTP 500 (or the protocol's error reply)
//   429          the provider's HTTP 429 with Retry-After (or rate-limit error)
//   error_event  the stream starts, then the protocol's in-stream error
//   disconnect   the stream starts, then the TCP connection is dropped
//   malformed    one frame of the stream is not valid JSON
// Mid-stream faults happen after fault_at = ceil(n/2) tokens.
//
// Thread-safety: Behaviour is thread-safe; ResponsePlan is a value.

#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "services/emulator/token_gaps.h"

namespace llmload::emulator {

enum class Fault { kNone, kHttp500, kHttp429, kErrorEvent, kDisconnect, kMalformed };

// "none", "500", "429", "error_event", "disconnect", "malformed".
std::string_view FaultName(Fault fault);
// Accepts the names above (and "http_500", "http_429"); nullopt otherwise.
std::optional<Fault> ParseFault(std::string_view name);

enum class DelayDistribution { kFixed, kUniform, kLogNormal };
std::string_view DelayDistributionName(DelayDistribution d);
std::optional<DelayDistribution> ParseDelayDistribution(std::string_view name);

// The protocol families, each with its own request counter.
enum class Protocol : uint8_t {
  kCentrifugo = 0,
  kRealm,
  kWsChat,
  kOpenAiChat,
  kAnthropic,
  kGemini,
  kHttpJson,
  kOpenAiResponses,
};
inline constexpr size_t kProtocolCount = 8;
std::string_view ProtocolName(Protocol p);

struct FaultRates {
  double http_500 = 0;
  double http_429 = 0;
  double error_event = 0;
  double disconnect = 0;
  double malformed = 0;
};

struct BehaviourConfig {
  int32_t length_words = 100;
  double ttft_seconds = 0;           // before the first token
  double token_delay_seconds = 0.01;  // mean gap between tokens
  DelayDistribution distribution = DelayDistribution::kFixed;
  // Standard deviation of the gap (uniform and log-normal only).
  double token_delay_spread_seconds = 0;
  FaultRates faults;
  int32_t retry_after_seconds = 1;  // the Retry-After of injected 429s
  uint64_t seed = 42;
};

// INVALID_ARGUMENT naming the bad field.
absl::Status ValidateBehaviour(const BehaviourConfig& c);

// Per-request values taken from the request (headers or protocol fields).
struct RequestOverrides {
  std::optional<int32_t> length_words;
  std::optional<double> token_delay_seconds;
  std::optional<double> ttft_seconds;
  std::optional<Fault> fault;  // forced: no random draw
};

class Behaviour;

class ResponsePlan {
 public:
  std::vector<std::string> tokens;  // one word each; the last ends with '.'
  std::string text;                 // tokens joined by ' '
  Fault fault = Fault::kNone;
  // Mid-stream faults: tokens sent before the fault.
  size_t fault_at = 0;
  uint64_t request_index = 0;

  // Time from the start of the response to token i (i < tokens.size()), and
  // for i == tokens.size() to the end marker (one more gap after the last
  // token; protocols that finish at once ignore it). Non-decreasing.
  std::chrono::nanoseconds OffsetOf(size_t i) const;
  // OffsetOf(tokens.size() - 1): when a non-streaming response is complete.
  std::chrono::nanoseconds GenerationTime() const;

  // Filled by Behaviour::Plan.
  std::vector<std::chrono::nanoseconds> offsets;  // tokens.size() + 1 entries
  Protocol protocol = Protocol::kCentrifugo;
  // The Behaviour that planned it (null for a plan made by MakePlan alone),
  // told when the client leaves before the response's end: ClientLeft().
  Behaviour* origin = nullptr;

  // The client closed its connection (or aborted) before the last frame of
  // this response was sent.
  void ClientLeft() const;
  // Token `i` was handed to the connection at `sent`: records the gap since
  // the previous token of this response in the origin's token_gaps().
  void TokenSent(size_t i, std::chrono::steady_clock::time_point sent);

 private:
  std::chrono::steady_clock::time_point previous_token_sent_{};
  size_t previous_token_ = SIZE_MAX;  // none sent yet
};

// The pure core: the plan of request `index` of `protocol`.
ResponsePlan MakePlan(const BehaviourConfig& config, Protocol protocol, uint64_t index,
                      std::string_view prompt, const RequestOverrides& overrides);

// The gap between tokens for uniform random numbers u1, u2 in [0, 1).
double SampleDelaySeconds(DelayDistribution d, double mean, double spread, double u1, double u2);

// A uniform number in [0, 1) from (seed, protocol, index, stream); the
// stream separates independent draws of one request.
double UnitRandom(uint64_t seed, Protocol protocol, uint64_t index, uint64_t stream);

class Behaviour {
 public:
  // Requests are numbered first_index, first_index + stride, … (stride 1 in
  // a single process; see the group numbering above).
  explicit Behaviour(BehaviourConfig config, uint64_t first_index = 0, uint64_t stride = 1)
      : config_(config), first_index_(first_index), stride_(stride == 0 ? 1 : stride) {}
  Behaviour(const Behaviour&) = delete;
  Behaviour& operator=(const Behaviour&) = delete;

  const BehaviourConfig& config() const { return config_; }

  // Numbers the request and plans it.
  ResponsePlan Plan(Protocol protocol, std::string_view prompt, const RequestOverrides& overrides);

  // Requests planned so far for a protocol.
  uint64_t RequestCount(Protocol protocol) const {
    return counters_[static_cast<size_t>(protocol)].load(std::memory_order_relaxed);
  }

  // Streamed responses of a protocol whose client left before their end
  // (closed the connection or unsubscribed mid-stream; a planned fault is
  // not counted): what a load generator's cancelled requests look like
  // from the target.
  void CountAbandoned(Protocol protocol) {
    abandoned_[static_cast<size_t>(protocol)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t AbandonedCount(Protocol protocol) const {
    return abandoned_[static_cast<size_t>(protocol)].load(std::memory_order_relaxed);
  }

  // Tokens handed to a connection, by protocol (ResponsePlan::TokenSent):
  // every token of a streamed response that was sent, whole or cut short.
  void CountTokenSent(Protocol protocol) {
    tokens_sent_[static_cast<size_t>(protocol)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t TokensSentCount(Protocol protocol) const {
    return tokens_sent_[static_cast<size_t>(protocol)].load(std::memory_order_relaxed);
  }

  // The gaps actually left between consecutive tokens of every response, by
  // protocol (ResponsePlan::TokenSent).
  TokenGaps& token_gaps() { return token_gaps_; }
  const TokenGaps& token_gaps() const { return token_gaps_; }
  // Conversations the emulator keeps (WS chat: one per connection, emptied
  // by clear_history): a user message that was turn `turn` (1-based) of
  // its conversation. Turns past kTurnBuckets count in the last bucket.
  static constexpr int kTurnBuckets = 16;
  void CountTurn(int64_t turn) {
    const int64_t b = std::clamp<int64_t>(turn, 1, kTurnBuckets) - 1;
    turns_[static_cast<size_t>(b)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t TurnCount(int bucket) const {
    return turns_[static_cast<size_t>(bucket)].load(std::memory_order_relaxed);
  }
  // Realm function calls answered other than generate (counted by
  // RequestCount): the /stats ground truth for target.realmFunction.
  enum class RealmCall : uint8_t { kHealth, kMetadata, kPipeline };
  static constexpr int kRealmCalls = 3;
  void CountRealmCall(RealmCall c) {
    realm_calls_[static_cast<size_t>(c)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t RealmCallCount(RealmCall c) const {
    return realm_calls_[static_cast<size_t>(c)].load(std::memory_order_relaxed);
  }

 private:
  const BehaviourConfig config_;
  const uint64_t first_index_;
  const uint64_t stride_;
  std::array<std::atomic<uint64_t>, kProtocolCount> counters_{};
  std::array<std::atomic<uint64_t>, kProtocolCount> abandoned_{};
  std::array<std::atomic<uint64_t>, kProtocolCount> tokens_sent_{};
  TokenGaps token_gaps_;
  std::array<std::atomic<uint64_t>, kTurnBuckets> turns_{};  // WS chat
  std::array<std::atomic<uint64_t>, kRealmCalls> realm_calls_{};
};
static_assert(kProtocolCount <= TokenGaps::kProtocols);

// The llmload extension headers of every HTTP protocol.
inline constexpr std::string_view kHeaderFault = "x-llmload-fault";
inline constexpr std::string_view kHeaderTokenDelayMs = "x-llmload-token-delay-ms";
inline constexpr std::string_view kHeaderLengthWords = "x-llmload-length-words";
inline constexpr std::string_view kHeaderTtftMs = "x-llmload-ttft-ms";

}  // namespace llmload::emulator
