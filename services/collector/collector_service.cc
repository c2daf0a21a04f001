#include "services/collector/collector_service.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <utility>

#include "lib/common/log.h"
#include "services/common/grpc_util.h"

namespace llmload::collector {
namespace {

// A stream opened while the collector shuts down: refused at once.
class DrainingReactor final : public grpc::ServerBidiReactor<v1::SampleBatch, v1::IngestAck> {
 public:
  DrainingReactor() {
    Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the collector is shutting down"));
  }
  void OnDone() override { delete this; }
};

// Reactors decide under their mutex what to do and do it after unlocking, as
// the last thing they touch: a Finish may lead to OnDone (and `delete this`)
// on another thread at once.

}  // namespace

// One Ingest stream. Invariants (under mu_): Finish is called once, only when
// no read is pending, no write is in flight, no batch is in the pipeline and
// no other thread still holds the reactor (holds_), so OnDone can never race
// with a pipeline callback.
class IngestReactor final : public grpc::ServerBidiReactor<v1::SampleBatch, v1::IngestAck> {
 public:
  IngestReactor(grpc::CallbackServerContext* context, IngestPipeline* pipeline,
                size_t max_in_flight, IngestStreams* streams)
      : context_(context),
        pipeline_(pipeline),
        max_in_flight_(std::max<size_t>(1, max_in_flight)),
        streams_(streams) {
    LLMLOAD_LOG(kDebug, "Ingest stream opened.").Kv("peer", context_->peer());
    {
      absl::MutexLock lock(&mu_);
      read_pending_ = true;
    }
    streams_->Add(this);
    StartRead(&read_);
  }

  // Shutdown: no new batch is taken; the batches already read are stored and
  // acked, then the stream ends (the worker resends anything unacked to the
  // next collector).
  void Drain() {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      draining_ = true;
      DrainLocked(action);
    }
    Run(std::move(action));
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the worker half-closed, or the call is cancelled
      Action action;
      {
        absl::MutexLock lock(&mu_);
        read_pending_ = false;
        reads_done_ = true;
        action.finish = MaybeFinishLocked();
      }
      Run(std::move(action));
      return;
    }
    v1::SampleBatch batch = std::move(read_);
    read_.Clear();
    bool take = false;
    bool read_next = false;
    Action action;
    {
      absl::MutexLock lock(&mu_);
      read_pending_ = false;
      if (draining_) {
        // Not taken: the worker resends it to the next collector.
        DrainLocked(action);
        action.finish = MaybeFinishLocked();
      } else if (error_ || cancelled_) {
        // The stream is ending: the batch is not taken (the worker resends it).
        action.finish = MaybeFinishLocked();
      } else {
        take = true;
        ++in_pipeline_;
        read_next = CanReadLocked();
        if (read_next) {
          read_pending_ = true;
        } else {
          read_paused_ = true;
        }
      }
    }
    if (!take) {
      Run(std::move(action));
      return;
    }
    // Submit before the next read so batches (and acks) keep the stream's
    // order. read_pending_ and in_pipeline_ keep this reactor alive until
    // both report back.
    pipeline_->Submit(std::move(batch), [this](absl::StatusOr<v1::IngestAck> ack) {
      OnStored(std::move(ack));
    });
    if (read_next) {
      StartRead(&read_);
    }
  }

  void OnWriteDone(bool ok) override {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      acks_.pop_front();
      if (!ok || cancelled_) {
        write_failed_ = !ok || write_failed_;
        acks_.clear();
      } else {
        PlanLocked(action);
      }
      if (!action.try_cancel && action.write == nullptr) {
        DrainLocked(action);
      }
      action.finish = MaybeFinishLocked();
    }
    Run(std::move(action));
  }

  void OnCancel() override {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      action.finish = MaybeFinishLocked();
    }
    Run(std::move(action));
  }

  void OnDone() override {
    uint64_t batches = 0;
    {
      absl::MutexLock lock(&mu_);
      batches = batches_;
    }
    streams_->Remove(this);
    LLMLOAD_LOG(kDebug, "Ingest stream closed.").Kv("batches", batches);
    delete this;
  }

 private:
  struct Action {
    bool read = false;
    const v1::IngestAck* write = nullptr;
    bool try_cancel = false;
    std::optional<grpc::Status> finish;
  };

  // Pipeline callback (writer thread).
  void OnStored(absl::StatusOr<v1::IngestAck> ack) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      --in_pipeline_;
      ++batches_;
      if (!ack.ok()) {
        if (!error_) {
          error_ = true;
          error_status_ = ToGrpcStatus(ack.status());
          if (read_pending_) {
            // A read may wait for the worker indefinitely: cancel the call so
            // it completes. The hold keeps the reactor alive until then.
            action.try_cancel = true;
            ++holds_;
          }
        }
      } else if (!cancelled_ && !write_failed_) {
        acks_.push_back(*std::move(ack));
      }
      PlanLocked(action);
      if (!action.try_cancel && action.write == nullptr) {
        DrainLocked(action);
      }
      action.finish = MaybeFinishLocked();
    }
    Run(std::move(action));
  }

  // Draining and nothing left to ack: cancel the pending read so the stream
  // ends now.
  void DrainLocked(Action& action) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (draining_ && !drain_cancel_sent_ && !finished_ && in_pipeline_ == 0 && acks_.empty() &&
        !write_in_flight_) {
      drain_cancel_sent_ = true;
      action.try_cancel = true;
      ++holds_;
    }
  }

  bool CanReadLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !draining_ && !error_ && !cancelled_ && !reads_done_ &&
           static_cast<size_t>(in_pipeline_) + acks_.size() < max_in_flight_;
  }

  // Resumes a paused read and starts the next write when possible.
  void PlanLocked(Action& action) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (read_paused_ && CanReadLocked()) {
      read_paused_ = false;
      read_pending_ = true;
      action.read = true;
    }
    if (!write_in_flight_ && !acks_.empty() && !cancelled_ && !write_failed_) {
      write_in_flight_ = true;
      action.write = &acks_.front();  // deque: stable until popped in OnWriteDone
    }
  }

  std::optional<grpc::Status> MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || read_pending_ || write_in_flight_ || in_pipeline_ > 0 || holds_ > 0) {
      return std::nullopt;
    }
    std::optional<grpc::Status> status;
    if (error_) {
      status = error_status_;
    } else if (cancelled_ || write_failed_) {
      status = grpc::Status(grpc::StatusCode::CANCELLED, "ingest stream cancelled");
    } else if (reads_done_ && acks_.empty()) {
      status = grpc::Status::OK;
    }
    if (status.has_value()) {
      finished_ = true;
    }
    return status;
  }

  void Run(Action action) {
    if (action.read) {
      StartRead(&read_);
    }
    if (action.write != nullptr) {
      StartWrite(action.write);
    }
    if (action.try_cancel) {
      context_->TryCancel();
      std::optional<grpc::Status> finish;
      {
        absl::MutexLock lock(&mu_);
        --holds_;
        finish = MaybeFinishLocked();
      }
      if (finish.has_value()) {
        Finish(*std::move(finish));
      }
      return;
    }
    if (action.finish.has_value()) {
      Finish(*std::move(action.finish));
    }
  }

  grpc::CallbackServerContext* const context_;
  IngestPipeline* const pipeline_;
  const size_t max_in_flight_;
  IngestStreams* const streams_;
  v1::SampleBatch read_;  // owned by the pending read

  absl::Mutex mu_;
  std::deque<v1::IngestAck> acks_ ABSL_GUARDED_BY(mu_);  // front is being written
  int in_pipeline_ ABSL_GUARDED_BY(mu_) = 0;
  int holds_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
  bool read_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool error_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status error_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool drain_cancel_sent_ ABSL_GUARDED_BY(mu_) = false;
};

namespace {

// One WatchRunStats stream. At any time exactly one of these holds until the
// stream finishes: a scheduler task is pending, a write is in flight, or a
// Tick is running (it holds mu_ throughout).
class WatchReactor final : public grpc::ServerWriteReactor<v1::RunStats> {
 public:
  WatchReactor(const RunRegistry* registry, const TargetScraper* scraper, Scheduler* scheduler,
               const v1::WatchRunStatsRequest& request, absl::Duration poll)
      : registry_(registry),
        scraper_(scraper),
        scheduler_(scheduler),
        run_id_(request.run_id()),
        per_worker_(request.per_worker()),
        windows_(request.windows()),
        interval_(WatchInterval(request.interval_ms())),
        poll_(std::min(poll, interval_)) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (run_id_.empty()) {
        finished_ = true;
        finish = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "run_id is empty");
      } else {
        finish = ScheduleLocked(Scheduler::Now());
      }
    }
    if (finish.has_value()) {
      Finish(*std::move(finish));
    }
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (!ok || cancelled_) {
        finished_ = true;
        finish = grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled");
      } else if (last_) {
        finished_ = true;
        finish = grpc::Status::OK;
      } else {
        finish = ScheduleLocked(next_due_);
      }
    }
    if (finish.has_value()) {
      Finish(*std::move(finish));
    }
  }

  void OnCancel() override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      // Otherwise the running Tick or the write in flight ends the stream.
      if (!finished_ && timer_pending_ && scheduler_->Cancel(timer_)) {
        timer_pending_ = false;
        finished_ = true;
        finish = grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled");
      }
    }
    if (finish.has_value()) {
      Finish(*std::move(finish));
    }
  }

  void OnDone() override { delete this; }

 private:
  // Scheduler thread.
  void Tick() {
    std::optional<grpc::Status> finish;
    bool write = false;
    {
      absl::MutexLock lock(&mu_);
      timer_pending_ = false;
      if (finished_) {
        return;
      }
      if (cancelled_) {
        finished_ = true;
        finish = grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled");
      } else if (absl::StatusOr<v1::RunStats> stats = registry_->GetRunStats(run_id_, per_worker_, windows_);
                 !stats.ok()) {
        // Not there yet: a watcher may start before the first batch.
        finish = ScheduleLocked(Scheduler::Now() + poll_);
      } else {
        message_ = *std::move(stats);
        if (scraper_ != nullptr) {
          scraper_->Fill(run_id_, &message_);
        }
        last_ = message_.complete();
        next_due_ = Scheduler::Now() + interval_;
        write_in_flight_ = true;
        write = true;
      }
    }
    if (write) {
      StartWrite(&message_);
    } else if (finish.has_value()) {
      Finish(*std::move(finish));
    }
  }

  // Returns a status to finish with when the scheduler is gone.
  std::optional<grpc::Status> ScheduleLocked(absl::Time when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    timer_ = scheduler_->RunAt(when, [this] { Tick(); });
    if (timer_ == 0) {
      finished_ = true;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the collector is shutting down");
    }
    timer_pending_ = true;
    return std::nullopt;
  }

  const RunRegistry* const registry_;
  const TargetScraper* const scraper_;
  Scheduler* const scheduler_;
  const std::string run_id_;
  const bool per_worker_;
  const bool windows_;
  const absl::Duration interval_;
  const absl::Duration poll_;

  absl::Mutex mu_;
  v1::RunStats message_;  // owned by the write in flight
  Scheduler::TaskId timer_ ABSL_GUARDED_BY(mu_) = 0;
  bool timer_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool last_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_due_ ABSL_GUARDED_BY(mu_);
};

// One GetRunRecords stream: reads a page, writes it, reads the next when the
// write is done. Exactly one write is in flight until Finish.
class RecordsReactor final : public grpc::ServerWriteReactor<v1::RequestRecords> {
 public:
  RecordsReactor(const RunRegistry* registry, BatchStore* store,
                 const v1::GetRunRecordsRequest& request, int page_batches, int per_message)
      : store_(store),
        run_id_(request.run_id()),
        page_batches_(std::max(1, page_batches)),
        per_message_(std::max(1, per_message)) {
    if (run_id_.empty()) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "run_id is empty"));
      return;
    }
    if (store_ == nullptr) {
      Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this collector keeps no records"));
      return;
    }
    if (!registry->HasRun(run_id_)) {
      Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "run \"" + run_id_ + "\" has no statistics: no batch of it was ingested"));
      return;
    }
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "records stream cancelled"));
      return;
    }
    Next();
  }

  void OnDone() override { delete this; }

 private:
  // Fills message_ with the next records and writes it, or finishes.
  void Next() {
    message_.Clear();
    message_.set_run_id(run_id_);
    // Records left over from the previous page first.
    while (!pending_.empty() && message_.records_size() < per_message_) {
      *message_.add_records() = std::move(pending_.front());
      pending_.pop_front();
    }
    while (!done_ && message_.records_size() < per_message_) {
      absl::StatusOr<int64_t> last = store_->ReadRunPage(
          run_id_, after_row_, page_batches_, [&](int64_t, const v1::SampleBatch& batch) {
            for (const v1::RequestRecord& r : batch.records()) {
              v1::RequestRecord out = r;
              out.set_worker_id(batch.worker_id());
              if (message_.records_size() < per_message_) {
                *message_.add_records() = std::move(out);
              } else {
                pending_.push_back(std::move(out));
              }
            }
          });
      if (!last.ok()) {
        Finish(ToGrpcStatus(last.status()));
        return;
      }
      done_ = *last == after_row_;
      after_row_ = *last;
    }
    if (message_.records_size() == 0) {
      Finish(grpc::Status::OK);
      return;
    }
    StartWrite(&message_);
  }

  BatchStore* const store_;
  const std::string run_id_;
  const int page_batches_;
  const int per_message_;
  // Touched only by the reaction that runs (one at a time: a write is in
  // flight between them).
  v1::RequestRecords message_;
  std::deque<v1::RequestRecord> pending_;
  int64_t after_row_ = 0;
  bool done_ = false;
};

}  // namespace

absl::Duration WatchInterval(uint32_t interval_ms) {
  if (interval_ms == 0) {
    return absl::Milliseconds(1000);
  }
  return absl::Milliseconds(std::clamp<uint32_t>(interval_ms, 100, 60000));
}

CollectorServiceImpl::CollectorServiceImpl(IngestPipeline* pipeline, const RunRegistry* registry,
                                           Scheduler* scheduler, Options options)
    : pipeline_(pipeline), registry_(registry), scheduler_(scheduler), options_(options) {}

void IngestStreams::Add(IngestReactor* r) {
  absl::MutexLock lock(&mu_);
  live_.insert(r);
}

void IngestStreams::Remove(IngestReactor* r) {
  absl::MutexLock lock(&mu_);
  live_.erase(r);
}

void IngestStreams::DrainAll() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  for (IngestReactor* r : live_) {
    r->Drain();  // a reactor leaves live_ (in OnDone) only under mu_
  }
}

bool IngestStreams::draining() {
  absl::MutexLock lock(&mu_);
  return draining_;
}

grpc::ServerBidiReactor<v1::SampleBatch, v1::IngestAck>* CollectorServiceImpl::Ingest(
    grpc::CallbackServerContext* context) {
  if (grpc::Status denied = options_.auth->Check(*context, Access::kJoin, "Ingest");
      !denied.ok()) {
    return new FinishedReactor<grpc::ServerBidiReactor<v1::SampleBatch, v1::IngestAck>>(denied);
  }
  if (streams_.draining()) {
    return new DrainingReactor();
  }
  return new IngestReactor(context, pipeline_, options_.max_in_flight, &streams_);
}

void CollectorServiceImpl::DrainIngest() { streams_.DrainAll(); }

grpc::ServerUnaryReactor* CollectorServiceImpl::GetRunStats(grpc::CallbackServerContext* context,
                                                            const v1::GetRunStatsRequest* request,
                                                            v1::RunStats* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status denied = options_.auth->Check(*context, Access::kRead, "GetRunStats");
      !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  // A snapshot under the registry's reader lock: CPU only, no I/O.
  absl::StatusOr<v1::RunStats> stats = registry_->GetRunStats(
      request->run_id(), request->per_worker(), request->windows(), request->histograms());
  if (stats.ok()) {
    *response = *std::move(stats);
    if (options_.scraper != nullptr) {
      options_.scraper->Fill(request->run_id(), response);
    }
  }
  reactor->Finish(ToGrpcStatus(stats.status()));
  return reactor;
}

grpc::ServerUnaryReactor* CollectorServiceImpl::ScrapeTarget(
    grpc::CallbackServerContext* context, const v1::TargetScrapeRequest* request,
    v1::TargetScrapeReply* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status denied = options_.auth->Check(*context, Access::kJoin, "ScrapeTarget");
      !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  if (options_.scraper == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no target scraper"));
    return reactor;
  }
  if (request->run_id().empty() || request->run_id().size() > RunRegistry::kMaxIdBytes) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "run_id: required, at most 256 bytes"));
    return reactor;
  }
  if (request->stop()) {
    // Answered after the last scrape, on the scraper's thread.
    options_.scraper->Stop(request->run_id(), [reactor, response](v1::TargetScrapeReply reply) {
      *response = std::move(reply);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  reactor->Finish(ToGrpcStatus(
      options_.scraper->Start(request->run_id(), request->target_metrics(),
                              request->allow_targets())));
  return reactor;
}

grpc::ServerUnaryReactor* CollectorServiceImpl::SealShard(grpc::CallbackServerContext* context,
                                                          const v1::SealShardRequest* request,
                                                          v1::SealedShard* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status denied = options_.auth->Check(*context, Access::kJoin, "SealShard");
      !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  if (absl::Status s = RunRegistry::ValidateSeal(*request); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  pipeline_->SubmitSeal(*request, [reactor, response](absl::StatusOr<v1::SealedShard> sealed) {
    if (sealed.ok()) {
      *response = *std::move(sealed);
    }
    reactor->Finish(ToGrpcStatus(sealed.status()));
  });
  return reactor;
}

grpc::ServerWriteReactor<v1::RunStats>* CollectorServiceImpl::WatchRunStats(
    grpc::CallbackServerContext* context, const v1::WatchRunStatsRequest* request) {
  if (grpc::Status denied = options_.auth->Check(*context, Access::kRead, "WatchRunStats");
      !denied.ok()) {
    return new FinishedReactor<grpc::ServerWriteReactor<v1::RunStats>>(denied);
  }
  return new WatchReactor(registry_, options_.scraper, scheduler_, *request, options_.watch_poll);
}

grpc::ServerWriteReactor<v1::RequestRecords>* CollectorServiceImpl::GetRunRecords(
    grpc::CallbackServerContext* context, const v1::GetRunRecordsRequest* request) {
  if (grpc::Status denied = options_.auth->Check(*context, Access::kRead, "GetRunRecords");
      !denied.ok()) {
    return new FinishedReactor<grpc::ServerWriteReactor<v1::RequestRecords>>(denied);
  }
  return new RecordsReactor(registry_, options_.store, *request, options_.records_page_batches,
                            options_.records_per_message);
}

}  // namespace llmload::collector
