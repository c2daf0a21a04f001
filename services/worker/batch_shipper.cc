#include "services/worker/batch_shipper.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_join.h"
#include "lib/common/backoff.h"
#include "lib/common/log.h"
#include "lib/histogram/histogram.h"
#include "lib/metrics/metrics.h"
#include "services/common/grpc_util.h"

namespace llmload::worker {
namespace {

// Distinct reasons kept per run; past it, further ones are only noted.
constexpr size_t kMaxReasons = 3;
constexpr char kMoreReasons[] = "and other reasons";

// Adds a rejected batch and what it held to `r`, and the collector's reason
// to `reasons` (distinct ones, bounded) and so to r.reason.
void CountRejected(const v1::SampleBatch& batch, const std::string& reason,
                   BatchShipper::Rejections& r, std::vector<std::string>& reasons) {
  ++r.batches;
  for (const v1::CounterDelta& c : batch.counters()) {
    if (c.counter() == v1::REQUESTS_OK || metrics::IsRequestFailureCounter(c.counter())) {
      r.requests += c.value();
    }
  }
  for (const v1::HistogramDelta& h : batch.histograms()) {
    // A delta that does not decode (perhaps the very reason) counts as none.
    if (absl::StatusOr<histogram::Histogram> decoded = histogram::Histogram::Decode(h.encoded());
        decoded.ok()) {
      r.samples += decoded->Count();
    }
  }
  if (std::find(reasons.begin(), reasons.end(), reason) != reasons.end()) {
    return;
  }
  if (reasons.size() < kMaxReasons) {
    reasons.push_back(reason);
  } else if (reasons.size() == kMaxReasons) {
    reasons.push_back(kMoreReasons);
  } else {
    return;
  }
  r.reason = absl::StrJoin(reasons, "; ");
}

}  // namespace

BatchShipper::BatchShipper(std::string collector_address, size_t max_unacked)
    : address_(std::move(collector_address)), max_unacked_(std::max<size_t>(max_unacked, 1)) {
  sender_ = std::thread([this] { SenderLoop(); });
}

BatchShipper::~BatchShipper() { Stop(); }

void BatchShipper::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
  }
  if (sender_.joinable()) {
    sender_.join();
  }
}

uint64_t BatchShipper::Enqueue(v1::SampleBatch batch) {
  absl::MutexLock lock(&mu_);
  RunSeq& rs = runs_[KeyOf(batch)];
  const uint64_t seq = rs.next++;
  batch.set_sequence(seq);
  if (rs.fenced) {
    return seq;  // the collector refuses the shard's batches for good
  }
  ++rs.outstanding;
  if (unacked_.size() >= max_unacked_) {
    const v1::SampleBatch& oldest = unacked_.front();
    RunSeq& old = runs_[KeyOf(oldest)];
    ++old.dropped;
    --old.outstanding;
    LLMLOAD_LOG(kError, "Unacked batch queue is full; dropped the oldest batch.")
        .Kv("run_id", oldest.run_id())
        .Kv("sequence", oldest.sequence());
    unacked_.pop_front();
    if (sent_on_stream_ > 0) {
      --sent_on_stream_;
    }
  }
  unacked_.push_back(std::move(batch));
  return seq;
}

bool BatchShipper::AllAcked(const std::string& run_id, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find({run_id, epoch});
  return it == runs_.end() || it->second.outstanding == 0;
}

uint64_t BatchShipper::AckedSequence(const std::string& run_id, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find({run_id, epoch});
  return it == runs_.end() ? 0 : it->second.acked;
}

uint64_t BatchShipper::DroppedBatches(const std::string& run_id, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find({run_id, epoch});
  return it == runs_.end() ? 0 : it->second.dropped;
}

bool BatchShipper::Fenced(const std::string& run_id, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find({run_id, epoch});
  return it != runs_.end() && it->second.fenced;
}

BatchShipper::Rejections BatchShipper::Rejected(const std::string& run_id, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find({run_id, epoch});
  return it == runs_.end() ? Rejections() : it->second.rejected;
}

void BatchShipper::ForgetRun(const std::string& run_id, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find({run_id, epoch});
  if (it != runs_.end() && it->second.outstanding == 0) {
    runs_.erase(it);
  }
}

size_t BatchShipper::Unacked() {
  absl::MutexLock lock(&mu_);
  return unacked_.size();
}

bool BatchShipper::Connected() {
  absl::MutexLock lock(&mu_);
  return connected_;
}

bool BatchShipper::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto empty = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return unacked_.empty(); };
  return mu_.AwaitWithTimeout(absl::Condition(&empty), timeout);
}

void BatchShipper::SenderLoop() {
  // Full jitter: workers that lost the collector together (a restart) come
  // back spread over the window, not in lockstep.
  Backoff backoff(absl::Milliseconds(100), absl::Seconds(3), BackoffSeed(this));
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        return;
      }
    }
    const bool progressed = RunStream();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        return;
      }
      connected_ = false;
      sent_on_stream_ = 0;  // resend everything unacked on the next stream
    }
    if (progressed) {
      backoff.Reset();
    }
    const absl::Duration delay = backoff.Next();
    LLMLOAD_LOG(kInfo, "Reconnecting to the collector.")
        .Kv("address", address_)
        .Kv("delay_ms", absl::ToInt64Milliseconds(delay));
    // Sleep interruptibly.
    absl::MutexLock lock(&mu_);
    auto stop = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&stop), delay);
  }
}

bool BatchShipper::RunStream() {
  auto channel = MakeChannel(address_);
  auto stub = v1::Collector::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = stub->Ingest(&ctx);
  {
    absl::MutexLock lock(&mu_);
    stream_broken_ = false;
  }
  bool got_ack = false;
  std::thread reader([&] {
    v1::IngestAck ack;
    while (stream->Read(&ack)) {
      absl::MutexLock lock(&mu_);
      if (!connected_) {
        connected_ = true;
        LLMLOAD_LOG(kInfo, "Connected to the collector.").Kv("address", address_);
      }
      got_ack = true;
      if (!ack.error().empty()) {
        // Final: resending cannot change the answer. Counted below, reported
        // with the shard's progress.
        LLMLOAD_LOG(kError, "Collector rejected a batch; its samples are lost.")
            .Kv("run_id", ack.run_id())
            .Kv("sequence", ack.sequence())
            .Kv("error", ack.error());
      }
      if (ack.fenced()) {
        // The shard was sealed: none of its batches will ever apply.
        RunSeq& rs = runs_[{ack.run_id(), ack.epoch()}];
        if (!rs.fenced) {
          LLMLOAD_LOG(kWarn, "The collector fenced a shard: its worker was declared lost and "
                             "its work moved on; dropping its batches.")
              .Kv("run_id", ack.run_id())
              .Kv("epoch", ack.epoch());
        }
        rs.fenced = true;
        for (size_t i = 0; i < unacked_.size();) {
          const v1::SampleBatch& b = unacked_[i];
          if (b.run_id() == ack.run_id() && b.epoch() == ack.epoch()) {
            --rs.outstanding;
            unacked_.erase(unacked_.begin() + static_cast<std::ptrdiff_t>(i));
            if (i < sent_on_stream_) {
              --sent_on_stream_;
            }
            continue;
          }
          ++i;
        }
        continue;
      }
      // Acks arrive in send order; remove the acked batch wherever it is.
      for (size_t i = 0; i < unacked_.size(); ++i) {
        const v1::SampleBatch& b = unacked_[i];
        if (b.run_id() == ack.run_id() && b.epoch() == ack.epoch() &&
            b.sequence() == ack.sequence()) {
          RunSeq& rs = runs_[KeyOf(b)];
          rs.acked = std::max(rs.acked, b.sequence());
          --rs.outstanding;
          if (!ack.error().empty()) {
            CountRejected(b, ack.error(), rs.rejected, rs.reasons);
          }
          unacked_.erase(unacked_.begin() + static_cast<std::ptrdiff_t>(i));
          if (i < sent_on_stream_) {
            --sent_on_stream_;
          }
          break;
        }
      }
    }
    absl::MutexLock lock(&mu_);
    stream_broken_ = true;
  });
  for (;;) {
    v1::SampleBatch next;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || stream_broken_ || sent_on_stream_ < unacked_.size();
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(1));
      if (stopping_ || stream_broken_) {
        break;
      }
      if (sent_on_stream_ >= unacked_.size()) {
        continue;
      }
      next = unacked_[sent_on_stream_];
      ++sent_on_stream_;
    }
    if (!stream->Write(next)) {
      break;
    }
  }
  bool ended_by_server = false;
  {
    absl::MutexLock lock(&mu_);
    ended_by_server = stream_broken_;
  }
  if (!ended_by_server) {  // else keep the collector's status (a refusal says why)
    ctx.TryCancel();
  }
  reader.join();
  grpc::Status status = stream->Finish();
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
      status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    LLMLOAD_LOG(kError,
                "The collector refused this worker's batches: it needs the join token "
                "(--join_token_file or LLMLOAD_JOIN_TOKEN); retrying.")
        .Kv("address", address_)
        .Kv("error", status.error_message());
  } else if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    LLMLOAD_LOG(kWarn, "Collector stream ended; will reconnect and resend unacked batches.")
        .Kv("address", address_)
        .Kv("error", status.error_message());
  }
  return got_ack;
}

}  // namespace llmload::worker
