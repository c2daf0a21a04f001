#include "services/worker/session_driver.h"

#include <algorithm>
#include <string>

#include "lib/common/log.h"

namespace llmload::worker {

SessionDriver::SessionDriver(std::shared_ptr<LoopShard> shard, int32_t client_id)
    : shard_(std::move(shard)), timer_(shard_->ioc().get_executor()), client_id_(client_id) {}

void SessionDriver::Start() {
  session_start_ = Clock::now();
  Connect();
}

void SessionDriver::Cancel() {
  if (done_) {
    return;
  }
  cancelled_ = true;
  AbortConnection();
  Finish();
}

void SessionDriver::Resume() {
  if (phase_ == Phase::kIdle && !ended()) {
    Next();
  }
}

// ---- connecting ----

void SessionDriver::Connect() {
  phase_ = Phase::kQueued;
  if (!has_slot_ && !shard_->AcquireConnectSlot(shared_from_this())) {
    return;  // OnConnectSlot opens
  }
  has_slot_ = true;
  Open();
}

void SessionDriver::OnConnectSlot() {
  has_slot_ = true;
  if (ended() || phase_ != Phase::kQueued) {
    return ReleaseSlot();
  }
  Open();
}

void SessionDriver::Open() {
  phase_ = Phase::kConnecting;
  connect_start_ = Clock::now();
  OpenConnection();
  Schedule();
}

void SessionDriver::ConnectFor() {
  request_pending_ = true;
  Connect();
}

void SessionDriver::ReleaseSlot() {
  if (has_slot_) {
    has_slot_ = false;
    shard_->ReleaseConnectSlot();
  }
}

void SessionDriver::SetupDone(Clock::time_point now) {
  if (ended() || phase_ != Phase::kConnecting) {
    return;
  }
  ReleaseSlot();
  if (!opened_) {
    opened_ = true;
    M().RecordUs(v1::SESSION_SETUP, Micros(now - session_start_));
    M().Add(v1::SESSIONS_OPENED);
  }
  failures_in_a_row_ = 0;
  keepalive_at_ = keepalive_period_ > Clock::duration::zero() ? now + keepalive_period_ : kNever;
  if (request_pending_) {
    request_pending_ = false;
    return BeginRequest();
  }
  Next();
}

void SessionDriver::SetupFailed(v1::Counter counter, std::string_view why, bool fatal) {
  if (ended()) {
    return;
  }
  M().Add(counter);
  AbortConnection();
  ReleaseSlot();
  if (fatal || failures_in_a_row_ >= S().reconnect_attempts || shard_->cancelled()) {
    if (!opened_) {
      M().Add(v1::SESSIONS_FAILED);
    }
    LLMLOAD_LOG(kDebug, "Session set-up failed.")
        .Kv("client_id", client_id_)
        .Kv("reason", std::string(why))
        .Kv("counter", metrics::CounterName(counter));
    return End();
  }
  Reconnect(BackoffDelay(S().reconnect_backoff, failures_in_a_row_,
                         static_cast<uint64_t>(client_id_)),
            /*count=*/true);
}

void SessionDriver::Reconnect(std::chrono::milliseconds wait, bool count) {
  if (count) {
    ++failures_in_a_row_;
    M().Add(v1::RECONNECTS);
  }
  phase_ = Phase::kBackoff;
  due_ = Clock::now() + wait;
  keepalive_at_ = kNever;
  Schedule();
}

// ---- requests ----

void SessionDriver::Next() {
  if (ended()) {
    return;
  }
  const NextStep step = shard_->NextRequest(this, requests_);
  switch (step.kind) {
    case NextStep::Kind::kClose:
      return BeginClose();
    case NextStep::Kind::kWait:
      phase_ = Phase::kIdle;
      return Schedule();  // the keep-alive goes on
    case NextStep::Kind::kRequest:
      break;
  }
  requests_ = step.cycle;
  meter_.Prepare(step);
  const Clock::time_point due = DueTime(step, retry_after_);
  if (due > Clock::now()) {
    phase_ = Phase::kScheduled;
    due_ = due;
    return Schedule();
  }
  BeginRequest();
}

void SessionDriver::BeginRequest() {
  phase_ = Phase::kInFlight;
  meter_.Begin(Clock::now());
  last_activity_ = meter_.send_at();
  SendRequest();
  Schedule();
}

void SessionDriver::RequestCompleted(Clock::time_point done_at, int64_t reported_tokens,
                                     bool count_chunks) {
  if (ended() || phase_ != Phase::kInFlight) {
    return;
  }
  RequestEnded(/*answered=*/true);
  shard_->RequestDone(this, meter_.Complete(M(), done_at, reported_tokens, count_chunks));
  Next();
}

void SessionDriver::RequestFailed(v1::Counter counter) {
  if (ended() || phase_ != Phase::kInFlight) {
    return;
  }
  RequestEnded(/*answered=*/false);
  shard_->RequestDone(this, RequestMeter::Fail(M(), counter));
  Next();
}

void SessionDriver::ConnectionLost(v1::Counter counter) {
  ConnectionLost(counter, BackoffDelay(S().reconnect_backoff, 0, static_cast<uint64_t>(client_id_)));
}

void SessionDriver::ConnectionLost(v1::Counter counter, std::chrono::milliseconds wait) {
  if (ended()) {
    return;
  }
  if (phase_ == Phase::kInFlight) {
    RequestEnded(/*answered=*/false);
    shard_->RequestDone(this, RequestMeter::Fail(M(), counter));
  } else if (counter == v1::PROTOCOL_ERROR || counter == v1::TIMEOUT) {
    M().Add(counter);
  }
  AbortConnection();
  if (shard_->cancelled()) {
    return End();
  }
  failures_in_a_row_ = 0;
  Reconnect(wait, /*count=*/true);
}

void SessionDriver::Abandon(Clock::time_point now) {
  if (ended() || phase_ != Phase::kInFlight) {
    return;
  }
  RequestEnded(/*answered=*/true);
  shard_->RequestDone(this, meter_.Abandon(M(), now));
  AbortConnection();
  if (shard_->cancelled()) {
    return End();
  }
  Reconnect(std::chrono::milliseconds(0), /*count=*/false);
}

// ---- closing ----

void SessionDriver::BeginClose() {
  phase_ = Phase::kClosing;
  due_ = Clock::now() + kCloseGrace;
  keepalive_at_ = kNever;
  CloseConnection();
  if (!done_) {
    Schedule();
  }
}

void SessionDriver::Closed() {
  if (ended()) {
    return;
  }
  AbortConnection();
  End();
}

void SessionDriver::End() {
  phase_ = Phase::kDone;
  keepalive_at_ = kNever;
  ReleaseSlot();
  Teardown();
}

void SessionDriver::Finish() {
  if (done_) {
    return;
  }
  done_ = true;
  phase_ = Phase::kDone;
  timer_.cancel();
  ReleaseSlot();
  shard_->SessionEnded(this);
}

// ---- the one timer ----

Clock::time_point SessionDriver::Deadline() const {
  switch (phase_) {
    case Phase::kConnecting:
      return connect_start_ + S().connect_timeout;
    case Phase::kInFlight: {
      const Clock::time_point whole = meter_.send_at() + S().request_timeout;
      const Clock::time_point limit = std::min(whole, meter_.cancel_at());
      if (!meter_.got_first()) {
        return std::min(limit, meter_.send_at() + S().ttft_timeout);
      }
      return std::min(limit, std::max(meter_.last_at(), last_activity_) + S().idle_timeout);
    }
    case Phase::kScheduled:
    case Phase::kBackoff:
    case Phase::kClosing:
      return due_;
    case Phase::kQueued:
    case Phase::kIdle:
    case Phase::kDone:
      return kNever;
  }
  return kNever;
}

// Arms the timer for the earliest of the deadline, the keep-alive and the
// driver's own moment, unless it is already armed for that moment or
// earlier (it then fires, finds nothing due, and re-arms).
void SessionDriver::Schedule() {
  const Clock::time_point next = std::min({Deadline(), keepalive_at_, DriverDeadline()});
  if (done_ || next == kNever || next >= armed_for_) {
    return;
  }
  armed_for_ = next;
  timer_.expires_at(next);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) {
      self->OnTimer();
    }
  });
}

void SessionDriver::OnTimer() {
  armed_for_ = kNever;
  if (done_) {
    return;
  }
  const Clock::time_point now = Clock::now();
  if (now >= keepalive_at_) {
    keepalive_at_ = now + keepalive_period_;
    SendKeepAlive();
  }
  if (now >= DriverDeadline()) {
    OnDriverDeadline(now);
    if (ended()) {
      return;
    }
  }
  if (now >= Deadline()) {
    switch (phase_) {
      case Phase::kConnecting:
        return SetupFailed(v1::TIMEOUT, "set-up timed out");
      case Phase::kInFlight:
        if (meter_.CancelDue(now)) {
          return Abandon(now);
        }
        return RequestTimedOut();
      case Phase::kScheduled:
        BeginRequest();
        break;
      case Phase::kBackoff:
        Connect();
        break;
      case Phase::kClosing:
        return Closed();
      case Phase::kQueued:
      case Phase::kIdle:
      case Phase::kDone:
        break;
    }
  }
  Schedule();
}

}  // namespace llmload::worker
