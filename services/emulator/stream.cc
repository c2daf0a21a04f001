#include "services/emulator/stream.h"

#include <utility>

#include "boost/asio/post.hpp"

namespace llmload::emulator {

void StreamRunner::Start(std::unique_ptr<StreamSource> source, StreamSink* sink,
                         std::shared_ptr<void> keep_alive) {
  source_ = std::move(source);
  sink_ = sink;
  keep_alive_ = std::move(keep_alive);
  has_pending_ = false;
  start_ = std::chrono::steady_clock::now();
  Step();
}

void StreamRunner::Cancel() {
  if (source_ == nullptr) {
    return;
  }
  ++generation_;
  timer_.cancel();
  Stop();
}

void StreamRunner::Stop() {
  source_.reset();
  sink_ = nullptr;
  has_pending_ = false;
  keep_alive_.reset();
}

void StreamRunner::Step() {
  const auto now = std::chrono::steady_clock::now();
  size_t budget = kMaxBurst;
  bool emitted = false;
  while (source_ != nullptr) {
    if (!has_pending_) {
      if (!source_->Next(&pending_)) {
        StreamSink* sink = sink_;
        std::shared_ptr<void> keep = keep_alive_;  // the sink may be released by Finished
        Stop();
        if (emitted) {
          sink->Flush();
        }
        sink->Finished();
        return;
      }
      has_pending_ = true;
    }
    const auto due = start_ + pending_.at;
    if (due > now || budget == 0) {
      if (emitted) {
        sink_->Flush();
      }
      const uint64_t generation = generation_;
      auto resume = [this, generation, keep = keep_alive_](boost::system::error_code ec) {
        if (!ec && generation == generation_) {
          Step();
        }
      };
      if (budget == 0) {
        boost::asio::post(timer_.get_executor(), [resume]() mutable { resume({}); });
      } else {
        timer_.expires_at(due);
        timer_.async_wait(std::move(resume));
      }
      return;
    }
    --budget;
    has_pending_ = false;
    if (pending_.kind == StreamStep::Kind::kDisconnect) {
      StreamSink* sink = sink_;
      std::shared_ptr<void> keep = keep_alive_;
      Stop();
      if (emitted) {
        sink->Flush();
      }
      sink->Disconnect();
      return;
    }
    if (pending_.token != StreamStep::kNoToken) {
      source_->TokenSent(pending_.token, now);
    }
    sink_->EmitData(std::move(pending_.data));
    pending_.data = std::string();
    emitted = true;
  }
}

void ScheduledFrames::Add(std::chrono::nanoseconds at, std::string data) {
  StreamStep step;
  step.at = at;
  step.data = std::move(data);
  steps_.push_back(std::move(step));
}

void ScheduledFrames::AddDisconnect(std::chrono::nanoseconds at) {
  StreamStep step;
  step.kind = StreamStep::Kind::kDisconnect;
  step.at = at;
  steps_.push_back(std::move(step));
}

bool ScheduledFrames::Next(StreamStep* step) {
  if (steps_.empty()) {
    return false;
  }
  *step = std::move(steps_.front());
  steps_.pop_front();
  return true;
}

void PlannedStream::Push(std::chrono::nanoseconds at, std::string data) {
  StreamStep step;
  step.at = at;
  step.data = std::move(data);
  queue_.push_back(std::move(step));
}

void PlannedStream::PushDisconnect(std::chrono::nanoseconds at) {
  StreamStep step;
  step.kind = StreamStep::Kind::kDisconnect;
  step.at = at;
  queue_.push_back(std::move(step));
}

void PlannedStream::Malformed(std::chrono::nanoseconds at) { Push(at, "{\"malformed\":"); }

PlannedStream::~PlannedStream() {
  if (phase_ != Phase::kDone || !queue_.empty()) {
    plan_.ClientLeft();
  }
}

bool PlannedStream::Next(StreamStep* step) {
  while (queue_.empty() && phase_ != Phase::kDone) {
    Advance();
  }
  if (queue_.empty()) {
    return false;
  }
  *step = std::move(queue_.front());
  queue_.pop_front();
  return true;
}

void PlannedStream::Advance() {
  switch (phase_) {
    case Phase::kHead:
      Head();
      phase_ = Phase::kTokens;
      return;
    case Phase::kTokens: {
      const size_t n = plan_.tokens.size();
      if (!fault_done_ && next_token_ == plan_.fault_at) {
        fault_done_ = true;
        const auto at = plan_.OffsetOf(next_token_);
        switch (plan_.fault) {
          case Fault::kErrorEvent:
            ErrorEvent(at);
            phase_ = Phase::kDone;
            return;
          case Fault::kDisconnect:
            PushDisconnect(at);
            phase_ = Phase::kDone;
            return;
          case Fault::kMalformed:
            Malformed(at);
            return;
          case Fault::kNone:
          case Fault::kHttp500:
          case Fault::kHttp429:
            break;
        }
      }
      if (next_token_ < n) {
        const size_t queued = queue_.size();
        Token(next_token_, plan_.tokens[next_token_], plan_.OffsetOf(next_token_));
        if (queue_.size() > queued) {
          queue_.back().token = next_token_;
        }
        ++next_token_;
        return;
      }
      phase_ = Phase::kTail;
      return;
    }
    case Phase::kTail:
      Tail(plan_.GenerationTime());
      phase_ = Phase::kDone;
      return;
    case Phase::kDone:
      return;
  }
}

}  // namespace llmload::emulator
