// File: shard.h
//
// How a worker runs its shard of a run.
//
// ShardRunner (created on the control side) resolves the target once, splits
// the shard's clients and concurrency over the event loops, and owns one
// LoopShard per loop. A LoopShard lives on its loop's thread: it keeps the
// queue of clients still to run, starts sessions up to its concurrency limit
// (the closed model's semaphore, per loop so that no lock is needed), owns
// the loop's HTTP pool and the loop's metric sets for this run.
//
// Metrics are double-buffered per loop: sessions record into the active set;
// at every batch cut the control thread has each loop swap sets (a posted
// handler), then merges and clears the sets the loops no longer touch.
//
// Session lifetime (asserted in debug builds):
//  - A LoopShard owns every session it started: `live_` holds the only
//    owning reference that does not come from a pending operation. A
//    session stays alive from MakeSession until SessionEnded, whatever it
//    is waiting for (an I/O operation, a timer, a connection slot, or
//    nothing at all while idle in the open model).
//  - A session calls LoopShard::SessionEnded exactly once, when it is done
//    or cancelled. The shard then drops its reference from a posted handler,
//    never inside the session's own call stack, so a session never destroys
//    itself while one of its member functions runs. Handlers still pending
//    on the session keep it alive (they capture shared_from_this()) until
//    they have run.
//  - The shard calls Resume only on a session it holds in `idle_` (one that
//    answered kWait and has not ended), Cancel and OnConnectSlot only on
//    sessions in `live_`. Raw Session* keys (idle_, assigned_) are valid
//    exactly while the session is in `live_`: SessionEnded erases them.
//  - Sessions hold a shared_ptr to their LoopShard; the cycle is broken when
//    the session ends, and every session ends: by its load model, by the
//    drain deadline (ForceEnd), or by Cancel.

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "lib/load/arrivals.h"
#include "lib/load/prompts.h"
#include "lib/load/records.h"
#include "lib/load/verdict.h"
#include "lib/metrics/metrics.h"
#include "lib/protocol/centrifugo_client.h"
#include "llmload/v1/orchestrator.pb.h"
#include "services/worker/event_loops.h"
#include "services/worker/http_pool.h"
#include "services/worker/tls.h"

namespace llmload::worker {

// Where and how to reach one target URL (target.url, or one of
// target.urls), resolved once per shard.
struct TargetInfo {
  std::string host_header;  // host[:port] for HTTP Host
  std::vector<tcp::endpoint> endpoints;
  std::string ws_host_header;
  std::vector<tcp::endpoint> ws_endpoints;
  std::string base_path;  // URL path prefix without trailing '/'
  std::string query;      // the URL's query, encoded, without '?' (may be empty)
  // The WebSocket URL's path and query (the same as above unless wsUrl is
  // given).
  std::string ws_base_path;
  std::string ws_query;
  // https / wss: the client context and the host names for SNI and
  // certificate verification.
  bool tls = false;
  bool ws_tls = false;
  bool verify = true;
  std::string host;
  std::string ws_host;
  std::shared_ptr<boost::asio::ssl::context> tls_context;
  // Local addresses sessions' connections are spread over (empty: any).
  std::vector<boost::asio::ip::address> source_addresses;
  // Headers every request (or WebSocket upgrade) carries: spec.target.headers
  // and, read from this worker's environment once per shard,
  // spec.target.headersFromEnv.
  std::vector<std::pair<std::string, std::string>> headers;
};

enum class LoadModel { kClosed, kDuration, kOpen };

// Which part of the run a request belongs to (RunSpec.warmup, cooldown):
// only kCounted requests reach the run's statistics; the others are run
// and counted apart (warmup_requests, cooldown_requests, ...).
enum class Phase : uint8_t { kCounted = 0, kWarmup = 1, kCooldown = 2 };

// The spec's warm-up and cool-down, resolved once per shard.
struct PhasePlan {
  // Warm-up of a number of requests, split evenly over `clients` (the
  // load's clients or connections; client c takes total / clients, plus
  // one when c < total % clients): each client's first requests.
  int64_t warmup_requests = 0;
  int64_t clients = 0;
  // Warm-up: requests meant to start before the load's start + this.
  Clock::duration warmup_for{0};
  // Cool-down (duration and open models): requests meant to start at or
  // after the load's end - this.
  Clock::duration cooldown_for{0};

  bool enabled() const {
    return warmup_requests > 0 || warmup_for > Clock::duration::zero() ||
           cooldown_for > Clock::duration::zero();
  }
  // Client `client`'s share of warmup_requests.
  int64_t WarmupRequestsOf(int32_t client) const;
  // The phase of a request meant to start `since_start` after the load's
  // start, in a load of `length` (0: no end, the closed model), when its
  // client has already run `warm_done` warm-up requests.
  Phase PhaseOf(int32_t client, int64_t warm_done, Clock::duration since_start,
                Clock::duration length) const;
};

// Folds what the requests of a warm-up or cool-down phase measured into
// the counters that report them apart: requests (offered), failed
// requests and tokens (for the cool-down, requests and tokens), and the
// session-level counters (connections, bytes) into `out` as they are.
void FoldPhase(const metrics::MetricSet& phase, Phase which, metrics::MetricSet& out);

struct ShardSettings {
  std::string run_id;
  // The assignment epoch (ShardAssignment.epoch; 0: none).
  uint64_t epoch = 0;
  v1::RunSpec spec;
  int32_t cycles_per_client = 1;
  std::chrono::milliseconds request_timeout{120000};
  // The target's other time limits and reconnection policy, resolved once
  // from the spec with their defaults for every session driver.
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds ttft_timeout{120000};  // default: request_timeout
  std::chrono::milliseconds idle_timeout{120000};  // default: request_timeout
  int reconnect_attempts = 3;
  std::chrono::milliseconds reconnect_backoff{1000};
  // One per target URL (lib/validation/target_urls.h), in spec order.
  std::vector<TargetInfo> targets;
  // The target client `client_id` uses: targets[client_id % n], so sessions
  // spread evenly over the URLs across the whole run.
  const TargetInfo& TargetFor(int32_t client_id) const;
  size_t TargetIndexFor(int32_t client_id) const;

  // The load model (from spec.load) and what it needs.
  LoadModel model = LoadModel::kClosed;
  // Duration and open models: how long requests keep starting, and how far
  // into it this shard starts (work moved from a lost worker mid-run).
  std::chrono::nanoseconds length{0};
  std::chrono::nanoseconds offset{0};
  // After `length`, requests in flight get this long to finish; sessions
  // still busy then are cancelled (their requests are not counted).
  std::chrono::milliseconds drain{500};
  load::ThinkTime think;             // closed and duration models
  load::ObjectiveLimits objectives;  // goodput
  // Per-request records: which requests, how many this shard keeps, and the
  // offset that maps the monotonic clock to unix microseconds.
  std::optional<load::RecordSampler> records;
  int64_t records_cap = 0;
  int64_t unix_minus_steady_us = 0;
  // Open model: rate profile of the whole run (each loop scales it by its
  // share) and the arrival distribution.
  double base_rate = 0;
  std::vector<load::Stage> stages;
  load::Distribution distribution = load::Distribution::kPoisson;
  // Requests abandoned mid-response (spec.cancellation): which ones, and
  // after how many content chunks (0: no limit) or how long (0: none).
  std::optional<load::CancelSampler> cancel;
  uint32_t cancel_after_tokens = 0;
  Clock::duration cancel_after{0};
  // What each request asks: dataset entry, synthetic prompt text (built once
  // here), max_tokens. Set by ShardRunner::Create.
  std::optional<load::PromptPlan> prompts;
  // Warm-up and cool-down (none for work moved from a lost worker).
  PhasePlan phases;
};

// What one loop of a shard runs besides its clients: its share of the open
// model's arrivals and the seed of its random draws.
struct LoopLoad {
  double rate_share = 0;
  uint64_t seed = 0;
};

class LoopShard;

// What a session does next. A session asks its LoopShard each time it is
// ready for a request (after set-up, and after each request ends); the load
// model behind LoopShard::NextRequest decides. Protocol drivers never know
// which load model runs them.
struct NextStep {
  enum class Kind {
    kRequest,  // send a request (at `intended`, or at once if that has passed)
    kClose,    // close the session: the client is done
    kWait,     // stay open and idle; the shard calls Session::Resume later
  };
  Kind kind = Kind::kClose;
  int64_t cycle = 0;  // 1-based request number within the session
  Clock::time_point intended{};
  // Open model: ttft/e2e count from `intended` (no coordinated omission) and
  // ttft_service/e2e_service from the actual send.
  bool from_intended = false;
  // The spec abandons this request (RunSpec.cancellation): after this many
  // content chunks (0: no limit) or this long after the send (0: none),
  // whichever comes first. See RequestMeter::CancelDue.
  uint32_t cancel_after_tokens = 0;
  Clock::duration cancel_after{0};
  // Multi-turn runs (Target.turns > 1): the request's turn in its
  // conversation, 1 to turns (turn 1 starts a new one); 0: single-turn.
  int32_t turn = 0;
};

// The turn of request `cycle` (1-based, within its session) when sessions
// hold conversations of `turns` requests; 0 when turns <= 1.
inline int32_t TurnOf(int64_t cycle, int32_t turns) {
  return turns > 1 && cycle > 0 ? static_cast<int32_t>((cycle - 1) % turns) + 1 : 0;
}

// How one request ended, reported by the driver to its LoopShard (for
// per-request objectives such as goodput). Latencies in microseconds from the
// same origin the driver used for ttft/e2e.
struct RequestOutcome {
  bool ok = false;
  uint64_t ttft_us = 0;
  uint64_t e2e_us = 0;
  uint64_t tokens = 0;
  uint64_t mean_itl_us = 0;  // 0 when fewer than two tokens
  // For per-request records: REQUESTS_OK or the failure class, the content
  // chunks, and when the request was sent (unset for a failure reported
  // without its meter: the shard then uses when it handed the request out).
  v1::Counter counter = v1::COUNTER_UNSPECIFIED;
  uint64_t chunks = 0;
  Clock::time_point sent_at{};
  // Input tokens of a completed request (reported or estimated), and its
  // turn (multi-turn runs; 0 otherwise).
  uint64_t input_tokens = 0;
  int32_t turn = 0;
};

// One client's session with the target. Loop-confined.
class Session {
 public:
  virtual ~Session() = default;
  virtual void Start() = 0;
  // Abandons the session at once (run stopped): no further metrics.
  virtual void Cancel() = 0;
  // After a kWait step: ask NextRequest again.
  virtual void Resume() {}
  // The connection set-up slot asked for with LoopShard::AcquireConnectSlot
  // is free now.
  virtual void OnConnectSlot() {}
};

// Closed model: what one client did since the last batch cut (see
// v1::ClientCycles).
struct ClientDelta {
  uint32_t started = 0;
  uint32_t ended = 0;
  bool closed = false;
};
using ClientDeltas = absl::flat_hash_map<int32_t, ClientDelta>;

// Counted across a shard's loops.
struct ShardCounters {
  std::atomic<int> loops_remaining{0};      // loops whose load has not ended
  std::atomic<int64_t> active_sessions{0};  // sessions open on every loop
};

class LoopShard : public std::enable_shared_from_this<LoopShard> {
 public:
  // `clients`: the client ids this loop runs (closed, duration) or may give
  // to sessions it opens for arrivals (open); `limit`: sessions at once
  // (open: the in-flight cap).
  LoopShard(net::io_context& ioc, std::shared_ptr<const ShardSettings> settings,
            std::deque<int32_t> clients, int32_t limit, std::shared_ptr<ShardCounters> counters,
            LoopLoad load = {}, int64_t records_cap = 0);

  // Closed model, work moved from another shard: the cycles each of this
  // loop's clients has left (others run cycles_per_client). Before Start.
  void SetClientCycles(absl::flat_hash_map<int32_t, int32_t> cycles) {
    cycles_ = std::move(cycles);
  }

  // Both post to the loop; safe from any thread. `start` is the moment the
  // load begins (shared by every loop of the shard).
  void Start(Clock::time_point start = Clock::now());
  void Cancel();
  // The worker is leaving (SIGTERM): no request starts any more; requests
  // in flight get `grace` to finish, then are cut off (UNFINISHED). Clients
  // that did not finish keep the cycles they did not start. Posts to the
  // loop; safe from any thread.
  void Drain(std::chrono::milliseconds grace);

  // Loop thread only.
  metrics::MetricSet& metrics() { return *active_; }
  // Where `session` records: the set of the phase of its open request
  // (warm-up and cool-down requests are kept apart), else metrics().
  metrics::MetricSet& metrics(Session* session);
  // The loop's keep-alive pool to the target of `client_id` (one pool per
  // target URL).
  HttpPool& http(int32_t client_id);
  protocol::centrifugo::ClientFrameParser& centrifugo_parser() { return centrifugo_parser_; }
  const ShardSettings& settings() const { return *settings_; }
  // The moment the load began (Start's `start`); RunSpec.reconnect_storm
  // counts from it.
  Clock::time_point load_start() const { return start_; }
  net::io_context& ioc() { return ioc_; }
  bool cancelled() const { return cancelled_; }
  // The load model's decision for a session that has finished
  // `requests_done` requests and is ready for the next.
  NextStep NextRequest(Session* session, int64_t requests_done);
  // Every request NextRequest handed to `session` ends here exactly once (ok
  // or failed), unless the session ends first: then it counts as UNFINISHED.
  void RequestDone(Session* session, const RequestOutcome& outcome);
  void SessionEnded(Session* session);

  // Connection set-up admission. Opening thousands of connections at once
  // overflows the target's accept queue, and the SYN retransmissions then
  // add whole seconds to set-up times (and stall the loop while it catches
  // up), so at most kMaxConnecting sessions per loop set up a connection at
  // a time. True: go ahead now. False: the session is queued and its
  // OnConnectSlot runs when a slot frees. Every granted slot is given back
  // with ReleaseConnectSlot, once, when the set-up ends either way.
  static constexpr int kMaxConnecting = 512;
  bool AcquireConnectSlot(const std::shared_ptr<Session>& session);
  void ReleaseConnectSlot();

  // Per-request records kept since the last cut, and those sampled but over
  // this loop's share of the cap. Double-buffered with the metric sets.
  struct RecordBuffer {
    std::vector<v1::RequestRecord> records;
    uint64_t dropped = 0;
  };

  // Control thread, while the loop runs the posted swap: see CutInto.
  void SwapMetrics() {
    active_ = active_ == &sets_[0] ? &sets_[1] : &sets_[0];
    active_clients_ = active_clients_ == &client_sets_[0] ? &client_sets_[1] : &client_sets_[0];
  }
  metrics::MetricSet& spare() { return active_ == &sets_[0] ? sets_[1] : sets_[0]; }
  // The spare sets of the warm-up and cool-down phases.
  metrics::MetricSet& spare_phase(Phase p) {
    return phase_sets_[active_ == &sets_[0] ? 1 : 0][p == Phase::kWarmup ? 0 : 1];
  }
  RecordBuffer& spare_records() { return active_ == &sets_[0] ? records_[1] : records_[0]; }
  ClientDeltas& spare_clients() {
    return active_clients_ == &client_sets_[0] ? client_sets_[1] : client_sets_[0];
  }

 private:
  void Begin(Clock::time_point start);
  void Fill();
  // Creates the session for `client_id`, owned by live_; `intended`: the
  // open model's arrival it is opened for.
  void StartSession(int32_t client_id, std::optional<Clock::time_point> intended = std::nullopt);
  void MaybeDone();
  // Open model.
  void ScheduleNextArrival();
  void OnArrivalTimer();
  void Arrive(Clock::time_point intended);
  // Duration and open models: `length` is over (or, any model, the worker
  // drains); requests in flight get `grace`.
  void EndLoad(std::chrono::milliseconds grace);
  void ForceEnd();
  // Cancels every live session (each ends and leaves live_).
  void CancelLive();
  // Closes every HTTP pool of the loop.
  void CloseHttp();
  // Marks the request NextRequest is handing to `session` as open, and
  // says whether the spec abandons it.
  void OpenRequest(Session* session, NextStep& step, Phase phase = Phase::kCounted);
  // The active set of `phase`.
  metrics::MetricSet& SetFor(Phase phase);
  // The phase of an open-model arrival meant for `intended`.
  Phase ArrivalPhase(Clock::time_point intended) const;
  // Keeps a record of the request that just ended, when it is sampled.
  void Record(int32_t client, int64_t cycle, Clock::time_point handed_at,
              Clock::time_point intended, bool from_intended, const RequestOutcome& outcome);

  net::io_context& ioc_;
  std::shared_ptr<const ShardSettings> settings_;
  std::deque<int32_t> pending_;  // client ids not running (open: free ids)
  int32_t limit_;
  // Shared with the runner and the other loops; a loop may still count
  // down after its runner is gone (a cancel posted from the destructor).
  std::shared_ptr<ShardCounters> counters_;
  LoopLoad load_;
  std::vector<std::shared_ptr<HttpPool>> http_;  // by target index
  protocol::centrifugo::ClientFrameParser centrifugo_parser_;
  // Every session this shard started and that has not ended (see the
  // lifetime rules above): the owning reference and the client id.
  struct LiveSession {
    std::shared_ptr<Session> owner;
    int32_t client = 0;
    bool request_open = false;  // NextRequest gave a request; RequestDone not yet
    // The open request: its number, when it was handed out, when it was
    // meant to start (for per-request records).
    int64_t cycle = 0;
    Clock::time_point handed_at{};
    Clock::time_point intended{};
    bool from_intended = false;
    // The open request's phase, and the warm-up requests the session ran.
    Phase phase = Phase::kCounted;
    int64_t warm_done = 0;
  };
  absl::flat_hash_map<Session*, LiveSession> live_;
  int connecting_ = 0;
  // Sessions waiting for a connection slot (held here: nothing else keeps
  // a session that has no operation pending alive).
  std::deque<std::shared_ptr<Session>> waiting_to_connect_;
  metrics::MetricSet sets_[2];
  metrics::MetricSet* active_ = &sets_[0];
  // [buffer][warm-up, cool-down]: buffer i goes with sets_[i].
  metrics::MetricSet phase_sets_[2][2];
  RecordBuffer records_[2];  // records_[i] goes with sets_[i]
  int64_t records_left_ = 0;  // this loop's share of the cap still free
  // Closed model: per-client deltas, double-buffered with the metric sets
  // so a batch's counters and clients describe the same interval.
  ClientDeltas client_sets_[2];
  ClientDeltas* active_clients_ = &client_sets_[0];
  absl::flat_hash_map<int32_t, int32_t> cycles_;  // empty: cycles_per_client each
  bool cancelled_ = false;
  bool done_ = false;
  bool ending_ = false;  // duration/open: no request starts any more
  std::mt19937_64 rng_;
  net::steady_timer end_timer_;
  // Open model: the arrival process, its timer, sessions waiting for an
  // arrival, and arrivals handed to a session that has not asked yet.
  std::unique_ptr<load::ArrivalSchedule> arrivals_;
  net::steady_timer arrival_timer_;
  Clock::time_point start_{};
  Clock::time_point next_arrival_{};
  std::vector<Session*> idle_;
  absl::flat_hash_map<Session*, Clock::time_point> assigned_;
};

class ShardRunner {
 public:
  static absl::StatusOr<std::unique_ptr<ShardRunner>> Create(EventLoops& loops,
                                                             const v1::ShardAssignment& assignment);
  ~ShardRunner();

  const std::string& run_id() const { return settings_->run_id; }
  uint64_t epoch() const { return settings_->epoch; }
  int64_t cycles_total() const { return cycles_total_; }
  void Start();
  void Cancel();
  // See LoopShard::Drain. drained(): Drain came before the shard finished.
  void Drain(std::chrono::milliseconds grace);
  bool drained() const { return drained_.load(); }
  bool cancelled() const { return cancelled_.load(); }
  bool Finished() const { return counters_->loops_remaining.load() == 0; }
  int64_t active_sessions() const {
    return counters_->active_sessions.load(std::memory_order_relaxed);
  }
  // What a cut moves out besides the metrics.
  struct CutExtras {
    std::vector<v1::ClientCycles> clients;  // closed model: per-client deltas
    std::vector<v1::RequestRecord> records;  // sampled per-request records
    uint64_t records_dropped = 0;            // sampled but over the cap
  };
  // Control thread: moves everything recorded since the last cut into `out`
  // (and, when given, the per-client deltas by client id and the records
  // into `extras`). Blocks until every loop has swapped its metric sets.
  void CutInto(metrics::MetricSet& out, CutExtras* extras = nullptr);

 private:
  ShardRunner(EventLoops& loops, std::shared_ptr<const ShardSettings> settings)
      : loops_(loops), settings_(std::move(settings)) {}

  EventLoops& loops_;
  std::shared_ptr<const ShardSettings> settings_;
  std::vector<std::pair<int, std::shared_ptr<LoopShard>>> shards_;  // (loop index, shard)
  std::shared_ptr<ShardCounters> counters_ = std::make_shared<ShardCounters>();
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> drained_{false};
  int64_t cycles_total_ = 0;
};

// The request target for `suffix` (a path, possibly with a query of its
// own) below `base_path`, with the target URL's `query` appended: every part
// of the URL the user gave reaches the target.
std::string JoinTarget(std::string_view base_path, std::string_view suffix, std::string_view query);

// Builds the session driver for the run's protocol.
std::shared_ptr<Session> MakeSession(v1::Protocol protocol, std::shared_ptr<LoopShard> shard,
                                     int32_t client_id);

// Splits `total` into `parts` near-equal non-negative integers that sum to
// `total` (the first total % parts get one more).
std::vector<int64_t> SplitEvenly(int64_t total, int parts);

}  // namespace llmload::worker
