// File: session_util.h
//
// Small pieces every protocol driver uses: durations from the spec, the
// reconnection backoff, per-token inter-token latency from chunk gaps, and
// each request's prompt.

#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>

#include "google/protobuf/duration.pb.h"
#include "lib/metrics/metrics.h"
#include "services/worker/http_pool.h"
#include "services/worker/shard.h"

namespace llmload::worker {

inline uint64_t Micros(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us < 0 ? 0 : static_cast<uint64_t>(us);
}

// The spec's duration when set and positive, else `fallback`.
std::chrono::milliseconds DurationOr(const google::protobuf::Duration& d, bool has,
                                     std::chrono::milliseconds fallback);

// Wait before reconnection attempt `attempt` (0-based): base * 2^attempt,
// with +-20 % jitter derived from `salt` (deterministic per session).
std::chrono::milliseconds BackoffDelay(std::chrono::milliseconds base, int attempt, uint64_t salt);

// Records itl from the gaps between content chunks of one response that
// carried `tokens` tokens in `chunks` chunks: one sample per gap when every
// chunk is one token, else each gap divided by the average tokens per chunk,
// that many times, so that itl is per token.
void RecordTokenGaps(metrics::MetricSet& m, const std::vector<uint32_t>& gaps, uint64_t tokens,
                     uint64_t chunks);

// Opens `socket` for `endpoint` and, when `sources` is not empty, binds it
// to sources[salt % size] with IP_BIND_ADDRESS_NO_PORT, so the kernel picks
// the port at connect time per (source, destination) pair: many sessions to
// one target spread over several local addresses without exhausting one
// address's ephemeral ports. Returns false (with `ec`) on failure.
// (A template over the socket type: sessions keep sockets bound to their
// loop's io_context executor, the HTTP pool asio's default one.)
template <class Socket>
bool PrepareSocket(Socket& socket, const tcp::endpoint& endpoint,
                   const std::vector<boost::asio::ip::address>& sources, uint64_t salt,
                   boost::system::error_code& ec) {
  socket.open(endpoint.protocol(), ec);
  if (ec || sources.empty()) {
    return !ec;
  }
  const boost::asio::ip::address& source = sources[salt % sources.size()];
#ifdef IP_BIND_ADDRESS_NO_PORT
  const int one = 1;
  ::setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
  socket.bind(tcp::endpoint(source, 0), ec);
  return !ec;
}

// Connects `socket` to the target: the usual walk over `endpoints`, or,
// with source addresses, from one of them (PrepareSocket) to the first
// endpoint. `handler(error_code)` runs on the socket's executor.
template <class Socket, class Handler>
void AsyncConnect(Socket& socket, const std::vector<tcp::endpoint>& endpoints,
                  const std::vector<boost::asio::ip::address>& sources, uint64_t salt,
                  Handler handler) {
  if (sources.empty()) {
    boost::asio::async_connect(
        socket, endpoints,
        [h = std::move(handler)](const boost::system::error_code& ec, const tcp::endpoint&) mutable {
          h(ec);
        });
    return;
  }
  boost::system::error_code ec;
  if (!PrepareSocket(socket, endpoints.front(), sources, salt, ec)) {
    boost::asio::post(socket.get_executor(), [h = std::move(handler), ec]() mutable { h(ec); });
    return;
  }
  socket.async_connect(endpoints.front(), std::move(handler));
}

// The prompt of one request, from the shard's PromptPlan. Views into the
// shard's settings (the spec, the synthetic text): valid while the shard
// lives.
struct RequestPrompt {
  // The one prompt of the protocols that take one: the dataset entry (of a
  // conversation, its last user message), the synthetic text,
  // spec.target.prompt, or `fallback` when the spec gives none.
  std::string_view text;
  // A promptMessages entry (the SSE providers send all of it), or null.
  const v1::PromptConversation* conversation = nullptr;
  bool from_spec = false;  // false: text is the fallback
  int32_t max_tokens = 0;  // 0: none from the spec
  // The emulator's response length (emulation.lengthWords), unless
  // max_tokens was drawn from outputLength: then the draw, so that an
  // emulator target answers the drawn length.
  int32_t length_words = 0;
  // Input tokens when the target reports none: ceil(bytes / 4) of what is
  // sent (every message's content when `whole_conversation`, else text).
  int64_t estimated_input_tokens = 0;
};
RequestPrompt PromptFor(const ShardSettings& s, int32_t client_id, int64_t request,
                        bool whole_conversation, std::string_view fallback);

// The measurements of one request, the same for every protocol driver:
// ttft from the origin (the intended start in the open model, else the
// send), chunk_gap between content chunks, itl per token, tpot, e2e, the
// service-time twins in the open model, and the outcome for the shard.
class RequestMeter {
 public:
  // A request is sent now (`send_at`) for `step`.
  void Begin(const NextStep& step, Clock::time_point send_at) {
    Prepare(step);
    Begin(send_at);
  }
  // In two parts: what the load model's `step` says of the request (when
  // it is handed out), then its send.
  void Prepare(const NextStep& step);
  void Begin(Clock::time_point send_at);
  // A content chunk arrived. Returns true for the first one. record_gap
  // false: the gap since the previous chunk is no sample of chunk_gap or itl
  // (chunks that arrive in a burst after a reconnection, not at the
  // target's pace).
  bool Chunk(metrics::MetricSet& m, Clock::time_point now, bool record_gap = true);
  // The response is complete. `reported_tokens` < 0: one token per chunk.
  // Records e2e, tpot, itl, tokens, chunks (when `count_chunks`), ok and
  // cycles, the turn's ttft and tokens in a multi-turn run, and returns the outcome to hand to LoopShard::RequestDone.
  RequestOutcome Complete(metrics::MetricSet& m, Clock::time_point done_at,
                          int64_t reported_tokens, bool count_chunks = true);
  // The request's input tokens: `estimate` (set after Begin) unless the
  // target reports its own count (ReportInput, any time before Complete).
  void SetInputEstimate(int64_t estimate) { input_estimate_ = estimate; }
  void ReportInput(int64_t tokens) { input_reported_ = tokens; }
  // The request failed: counts the class and the cycle.
  static RequestOutcome Fail(metrics::MetricSet& m, v1::Counter counter);

  // Cancellation (RunSpec.cancellation). CancelDue: the step marked this
  // request to be abandoned and its moment has come (its content chunks
  // reached the limit, or `now` passed cancel_at()). Drivers ask after each
  // chunk and keep their one timer no later than cancel_at().
  bool CancelDue(Clock::time_point now) const {
    return (cancel_tokens_ > 0 && chunks_ >= cancel_tokens_) || now >= cancel_at_;
  }
  Clock::time_point cancel_at() const { return cancel_at_; }
  // The request is abandoned at `now`: the tokens that arrived count (with
  // their itl; ttft was recorded with the first), e2e and tpot do not, and
  // the outcome is REQUESTS_CANCELLED, neither ok nor failed.
  RequestOutcome Abandon(metrics::MetricSet& m, Clock::time_point now);

  bool got_first() const { return chunks_ > 0; }
  // The request's turn in its conversation (NextStep::turn; 0: single-turn).
  int32_t turn() const { return turn_; }
  uint64_t chunks() const { return chunks_; }
  Clock::time_point send_at() const { return send_at_; }
  // When the last content chunk arrived (valid once got_first()).
  Clock::time_point last_at() const { return last_at_; }
  Clock::time_point origin() const { return from_intended_ ? intended_ : send_at_; }

 private:
  Clock::time_point send_at_, intended_, first_at_, last_at_;
  bool from_intended_ = false;
  uint64_t chunks_ = 0;
  uint64_t cancel_tokens_ = 0;  // 0: not abandoned after a number of chunks
  Clock::duration cancel_after_{0};  // 0: not abandoned after a time
  Clock::time_point cancel_at_ = Clock::time_point::max();
  int64_t input_estimate_ = 0;
  int64_t input_reported_ = -1;
  int32_t turn_ = 0;  // NextStep::turn
  std::vector<uint32_t> gaps_;  // µs between content chunks
};

// When a session should send the request of `step`: its intended time,
// pushed back to `not_before` (a target's Retry-After).
inline Clock::time_point DueTime(const NextStep& step, Clock::time_point not_before) {
  return std::max(step.intended, not_before);
}

}  // namespace llmload::worker
