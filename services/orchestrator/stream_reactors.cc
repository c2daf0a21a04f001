#include "services/orchestrator/stream_reactors.h"

#include <utility>

#include "services/common/grpc_util.h"
#include "services/orchestrator/run_state.h"

namespace llmload::orchestrator {

void AttachLink::Send(const v1::OrchestratorMessage& message) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) {
    reactor_->Enqueue(message);
  }
}

void AttachLink::Close(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) {
    reactor_->RequestFinish(status);
  }
}

void AttachLink::Detach() {
  absl::MutexLock lock(&mu_);
  reactor_ = nullptr;
}

void WatchLink::Push(const v1::RunUpdate& update) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) {
    reactor_->Push(update);
  }
}

void WatchLink::Close(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) {
    reactor_->RequestFinish(status);
  }
}

void WatchLink::Detach() {
  absl::MutexLock lock(&mu_);
  reactor_ = nullptr;
}

// ---- Attach ----

AttachReactor::AttachReactor(AttachHandler* handler, uint64_t stream)
    : handler_(handler), stream_(stream), link_(std::make_shared<AttachLink>(this)) {}

void AttachReactor::Enqueue(const v1::OrchestratorMessage& message) {
  absl::MutexLock lock(&mu_);
  if (finish_requested_) {
    return;
  }
  outbox_.push_back(message);
  if (!writing_) {
    writing_ = true;
    StartWrite(&outbox_.front());
  }
}

void AttachReactor::RequestFinish(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (finish_requested_) {
      return;
    }
    finish_requested_ = true;
    final_status_ = status;
    if (writing_) {
      return;  // OnWriteDone finishes
    }
  }
  Finish(status);  // last touch of `this`: OnDone may follow at once
}

void AttachReactor::OnReadDone(bool ok) {
  if (!ok) {
    handler_->OnAttachClosed(stream_);
    RequestFinish(grpc::Status::OK);
    return;
  }
  if (absl::Status s = handler_->OnAttachMessage(stream_, in_); !s.ok()) {
    handler_->OnAttachClosed(stream_);
    RequestFinish(ToGrpcStatus(s));
    return;
  }
  StartRead(&in_);
}

void AttachReactor::OnWriteDone(bool ok) {
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    outbox_.pop_front();
    if (!ok) {
      outbox_.clear();  // the stream is broken; the read fails too
    }
    if (!outbox_.empty() && !finish_requested_) {
      StartWrite(&outbox_.front());
      return;
    }
    writing_ = false;
    if (!finish_requested_) {
      return;
    }
    status = final_status_;
  }
  Finish(status);
}

void AttachReactor::OnCancel() { RequestFinish(grpc::Status::CANCELLED); }

void AttachReactor::OnDone() {
  link_->Detach();
  handler_->OnAttachDone(stream_);
  delete this;
}

// ---- WatchRun ----

WatchReactor::WatchReactor(WatchHandler* handler, std::string run_id)
    : handler_(handler), run_id_(std::move(run_id)), link_(std::make_shared<WatchLink>(this)) {}

void WatchReactor::Push(const v1::RunUpdate& update) {
  absl::MutexLock lock(&mu_);
  if (finish_requested_ || terminal_queued_) {
    return;
  }
  terminal_queued_ = IsTerminal(update.run().state());
  if (writing_) {
    pending_ = update;
    has_pending_ = true;
    return;
  }
  current_ = update;
  writing_ = true;
  StartWrite(&current_);
}

void WatchReactor::RequestFinish(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (finish_requested_) {
      return;
    }
    finish_requested_ = true;
    final_status_ = status;
    if (writing_) {
      return;
    }
  }
  Finish(status);
}

void WatchReactor::OnWriteDone(bool ok) {
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      if (!finish_requested_) {
        finish_requested_ = true;
        final_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "watcher went away");
      }
    } else if (has_pending_ && !finish_requested_) {
      current_.Swap(&pending_);
      has_pending_ = false;
      writing_ = true;
      StartWrite(&current_);
      return;
    } else if (terminal_queued_ && !finish_requested_) {
      finish_requested_ = true;
      final_status_ = grpc::Status::OK;
    } else if (!finish_requested_) {
      return;
    }
    status = final_status_;
  }
  Finish(status);
}

void WatchReactor::OnCancel() { RequestFinish(grpc::Status::CANCELLED); }

void WatchReactor::OnDone() {
  link_->Detach();
  handler_->OnWatchDone(run_id_, link_.get());
  delete this;
}

}  // namespace llmload::orchestrator
