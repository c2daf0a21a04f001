// File: stream.h
//
// Timed responses, shared by every streaming protocol. A StreamSource (pure)
// says what to send and when, as steps with an offset from the start of the
// response; a StreamRunner (on the connection's event loop) waits for each
// step's time and hands it to a StreamSink (the HTTP chunked body or the
// WebSocket outbox).
//
// Steps that are already due are handed over together (at most kMaxBurst
// per turn of the loop, so one long stream cannot starve other sockets),
// followed by one Flush, so a late stream catches up in one write.
//
// PlannedStream turns a ResponsePlan (behaviour.h) into steps: an optional
// head at offset 0, one token per planned offset, the mid-stream fault at
// the fault_at token (error_event: the protocol's error frame and the
// end; disconnect: drop; malformed: one broken frame, then the rest), and a
// tail right after the last token. Subclasses encode the frames.
//
// Thread-compatible: confine to one event loop.

#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "boost/asio/io_context.hpp"
#include "boost/asio/steady_timer.hpp"
#include "services/emulator/behaviour.h"

namespace llmload::emulator {

struct StreamStep {
  static constexpr size_t kNoToken = SIZE_MAX;
  enum class Kind { kData, kDisconnect };
  Kind kind = Kind::kData;
  std::chrono::nanoseconds at{0};  // from the start of the response
  std::string data;                // one frame (WebSocket) or bytes (SSE)
  size_t token = kNoToken;         // the frame that carries token `token`
};

class StreamSource {
 public:
  virtual ~StreamSource() = default;
  // The next step; false once the response is complete.
  virtual bool Next(StreamStep* step) = 0;
  // The step carrying token `token` was handed to the sink at `sent`.
  virtual void TokenSent(size_t token, std::chrono::steady_clock::time_point sent) {
    (void)token;
    (void)sent;
  }
};

class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual void EmitData(std::string data) = 0;
  // Every step due now has been emitted.
  virtual void Flush() {}
  // A kDisconnect step: drop the connection. The runner stops.
  virtual void Disconnect() = 0;
  // The source is exhausted.
  virtual void Finished() = 0;
};

class StreamRunner {
 public:
  static constexpr size_t kMaxBurst = 256;

  explicit StreamRunner(boost::asio::io_context& context) : timer_(context) {}

  // Runs `source` into `sink`; keep_alive (the session owning runner and
  // sink) is held while a step is pending. Replaces nothing: call only when
  // !active().
  void Start(std::unique_ptr<StreamSource> source, StreamSink* sink,
             std::shared_ptr<void> keep_alive);
  // Stops without calling the sink again.
  void Cancel();
  bool active() const { return source_ != nullptr; }

 private:
  void Step();
  void Stop();

  boost::asio::steady_timer timer_;
  std::unique_ptr<StreamSource> source_;
  StreamSink* sink_ = nullptr;
  std::shared_ptr<void> keep_alive_;
  std::chrono::steady_clock::time_point start_;
  StreamStep pending_;
  bool has_pending_ = false;
  uint64_t generation_ = 0;  // invalidates callbacks of a cancelled run
};

// A fixed list of steps (e.g. one reply after a non-streaming
// generation time).
class ScheduledFrames final : public StreamSource {
 public:
  void Add(std::chrono::nanoseconds at, std::string data);
  void AddDisconnect(std::chrono::nanoseconds at);
  bool Next(StreamStep* step) override;

 private:
  std::deque<StreamStep> steps_;
};

class PlannedStream : public StreamSource {
 public:
  explicit PlannedStream(ResponsePlan plan) : plan_(std::move(plan)) {}
  // A stream dropped before its last step (the runner cancelled: the
  // client left) tells the plan's Behaviour.
  ~PlannedStream() override;
  bool Next(StreamStep* step) final;
  // Records the gap from the previous token in the plan's Behaviour.
  void TokenSent(size_t token, std::chrono::steady_clock::time_point sent) final {
    plan_.TokenSent(token, sent);
  }

  const ResponsePlan& plan() const { return plan_; }

 protected:
  // Queue a frame at time `at` (from the hooks below).
  void Push(std::chrono::nanoseconds at, std::string data);
  void PushDisconnect(std::chrono::nanoseconds at);

  // Offset 0, before the first token.
  virtual void Head() {}
  // Token i at `at`.
  virtual void Token(size_t i, std::string_view token, std::chrono::nanoseconds at) = 0;
  // After the last token, at its time.
  virtual void Tail(std::chrono::nanoseconds at) = 0;
  // The protocol's in-stream error; the stream ends after it.
  virtual void ErrorEvent(std::chrono::nanoseconds at) = 0;
  // A frame that is not valid JSON (default: a truncated JSON object).
  virtual void Malformed(std::chrono::nanoseconds at);

 private:
  enum class Phase { kHead, kTokens, kTail, kDone };
  void Advance();

  ResponsePlan plan_;
  std::deque<StreamStep> queue_;
  Phase phase_ = Phase::kHead;
  size_t next_token_ = 0;
  bool fault_done_ = false;
};

}  // namespace llmload::emulator
