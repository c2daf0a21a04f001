// File: session_driver.h
//
// The skeleton every protocol driver is built on (WS_CHAT and REALM in
// ws_llm_session.cc, CENTRIFUGO_EMULATOR in centrifugo_session.cc, the HTTP
// targets in http_stream_session.cc). A session's life is the same whatever
// the protocol:
//
//   Start -> queued for one of the loop's connection set-up slots ->
//   connecting (TCP, TLS, upgrade, the protocol's own set-up) -> ready ->
//   for each step of the load model: wait (idle), a request due later
//   (scheduled) or now (in flight) -> ... -> close -> done
//
// with reconnection after a failure (backoff, a bounded number of attempts
// in a row), requests abandoned on purpose (RunSpec.cancellation), the run
// cancelled (Cancel), and exactly one LoopShard::SessionEnded at the end.
//
// Deadlines cost nothing per token: a session keeps one timer, armed for the
// earliest moment it must act on in its phase (the set-up deadline, the
// request's deadlines, a scheduled request, a reconnection, the close grace,
// a keep-alive). Chunks only stamp their arrival (RequestMeter, Touch); when
// the timer fires the deadline is recomputed from the stamps and the timer
// re-armed if the session is still within it.
//
// A driver supplies the protocol (OpenConnection, SendRequest,
// AbortConnection, CloseConnection) and reports what its connection does:
// SetupDone / SetupFailed while connecting, RequestCompleted,
// RequestFailed, ConnectionLost and Abandon while in flight, Closed once a
// close has ended. All of it is loop-confined.

#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "lib/metrics/metrics.h"
#include "services/worker/session_util.h"
#include "services/worker/shard.h"
#include "services/worker/ws_connection.h"

namespace llmload::worker {

class SessionDriver : public Session, public std::enable_shared_from_this<SessionDriver> {
 public:
  void Start() final;
  void Cancel() final;
  void Resume() final;
  void OnConnectSlot() final;

 protected:
  enum class Phase : uint8_t {
    kQueued,      // waiting for a connection set-up slot of the loop
    kConnecting,  // the driver's set-up, until SetupDone or SetupFailed
    kIdle,        // ready; the load model said wait (Resume continues)
    kScheduled,   // a request is due at due_
    kInFlight,    // a request is out (RequestCompleted/Failed, ConnectionLost, Abandon end it)
    kBackoff,     // connecting again at due_
    kClosing,     // the driver is closing; Closed() or the close grace ends it
    kDone,
  };

  static constexpr Clock::time_point kNever = Clock::time_point::max();
  // How long a close handshake may take before the connection is dropped.
  static constexpr auto kCloseGrace = std::chrono::seconds(2);

  SessionDriver(std::shared_ptr<LoopShard> shard, int32_t client_id);

  // ---- the protocol: what a driver supplies ----

  // Starts the connection and the protocol's set-up. The phase is
  // kConnecting, a set-up slot is held and connect_start() is now; the
  // driver ends the set-up with SetupDone or SetupFailed.
  virtual void OpenConnection() = 0;
  // Sends request number request_number() (the phase is kInFlight and the
  // meter has begun: its turn() is the request's turn in a conversation). A driver whose connection has gone may call ConnectFor() to
  // send it once connected again.
  virtual void SendRequest() = 0;
  // Drops the connection at once (no close handshake); what its pending
  // operations report afterwards must be moot to the driver.
  virtual void AbortConnection() = 0;
  // The load model ended the session: close the connection politely and
  // call Closed() when done (the close grace aborts it otherwise). By
  // default the connection is just dropped.
  virtual void CloseConnection() { Closed(); }
  // The session is over (closed, failed for good, or the run ended; the
  // phase is kDone and nothing reported counts any more): anything the
  // driver must still do, then Finish (the default: Finish at once).
  virtual void Teardown() { Finish(); }
  // The keep-alive period (SetKeepAlivePeriod) has passed.
  virtual void SendKeepAlive() {}
  // A moment of the driver's own, whatever the phase (the Centrifugo
  // driver's reconnect storm): the timer fires for it too, and
  // OnDriverDeadline runs once it has passed. Call Schedule() after moving it.
  virtual Clock::time_point DriverDeadline() const { return kNever; }
  virtual void OnDriverDeadline(Clock::time_point now) {}
  // The request in flight has ended: completed or abandoned (`answered`:
  // what arrived of the answer stands) or failed.
  virtual void RequestEnded(bool answered) {}
  // A deadline of the request in flight passed (and the spec does not
  // abandon it then): by default the connection counts as lost.
  virtual void RequestTimedOut() { ConnectionLost(v1::TIMEOUT); }

  // ---- what a driver reports ----

  // The set-up is complete: the slot is freed, the session counted as
  // opened (the first time), and a request held back by ConnectFor goes out,
  // else the load model's next step is taken.
  void SetupDone(Clock::time_point now);
  // The set-up failed with `counter`. The session connects again after the
  // backoff while attempts remain in a row; otherwise (or on a definitive
  // refusal, `fatal`) it ends, counted as failed if it never opened.
  void SetupFailed(v1::Counter counter, std::string_view why, bool fatal = false);
  // The request in flight got its complete answer.
  void RequestCompleted(Clock::time_point done_at, int64_t reported_tokens,
                        bool count_chunks = true);
  // The target refused or failed the request in flight but the connection
  // stays usable: counted under `counter`, and the next step is taken.
  void RequestFailed(v1::Counter counter);
  // The connection broke, sent garbage or a request deadline passed: the
  // request in flight (if any) fails with `counter`, and the session
  // connects again after `wait` (default: the first backoff step).
  void ConnectionLost(v1::Counter counter);
  void ConnectionLost(v1::Counter counter, std::chrono::milliseconds wait);
  // The spec abandons the request in flight (RunSpec.cancellation) at `now`,
  // as a user closing the tab: it counts as cancelled, the connection is
  // dropped and the session connects again at once for its next request.
  void Abandon(Clock::time_point now);
  // A CloseConnection has ended.
  void Closed();
  // Some bytes of the answer in flight arrived: the idle deadline counts
  // from the latest of these and the last content chunk.
  void Touch(Clock::time_point now) { last_activity_ = now; }

  // ---- services for the driver ----

  // The connection is gone when a request is due: connect (with a slot)
  // and send the request once ready.
  void ConnectFor();
  // Connects (again): waits for a set-up slot, then OpenConnection.
  void Connect();
  // Re-arms the timer after the driver changed what the deadline depends
  // on (the first chunk arrived: the idle gap replaces the ttft limit).
  void Schedule();
  // SendKeepAlive every `period` while the session is ready (0: never).
  // Takes effect from the next SetupDone.
  void SetKeepAlivePeriod(Clock::duration period) { keepalive_period_ = period; }
  void Finish();
  void ReleaseSlot();

  metrics::MetricSet& M() { return shard_->metrics(this); }
  const ShardSettings& S() const { return shard_->settings(); }
  LoopShard& shard() { return *shard_; }
  int32_t client_id() const { return client_id_; }
  Phase phase() const { return phase_; }
  // The session is ending or over: what its connection reports is moot.
  bool ended() const { return done_ || cancelled_ || phase_ == Phase::kDone; }
  bool opened() const { return opened_; }
  int64_t request_number() const { return requests_; }
  RequestMeter& meter() { return meter_; }
  const RequestMeter& meter() const { return meter_; }
  Clock::time_point connect_start() const { return connect_start_; }
  // A target's Retry-After: no request goes out before `at`.
  void RetryAfter(Clock::time_point at) { retry_after_ = at; }

 private:
  void Open();
  void End();
  void Next();
  void BeginRequest();
  void BeginClose();
  void Reconnect(std::chrono::milliseconds wait, bool count);
  Clock::time_point Deadline() const;
  void OnTimer();

  std::shared_ptr<LoopShard> shard_;
  LoopTimer timer_;
  Clock::time_point armed_for_ = kNever;
  Clock::time_point due_ = kNever;
  Clock::time_point keepalive_at_ = kNever;
  Clock::time_point session_start_, connect_start_, retry_after_, last_activity_;
  Clock::duration keepalive_period_{0};
  int64_t requests_ = 0;
  RequestMeter meter_;
  const int32_t client_id_;
  int32_t failures_in_a_row_ = 0;
  Phase phase_ = Phase::kQueued;
  bool has_slot_ = false;         // holds one of the loop's connection set-up slots
  bool opened_ = false;           // SESSIONS_OPENED was counted
  bool request_pending_ = false;  // ConnectFor: send the request once connected
  bool cancelled_ = false;
  bool done_ = false;
};

}  // namespace llmload::worker
