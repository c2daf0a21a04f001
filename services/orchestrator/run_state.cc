#include "services/orchestrator/run_state.h"

#include <utility>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace llmload::orchestrator {

bool IsTerminal(v1::RunState state) {
  return state == v1::COMPLETED || state == v1::FAILED || state == v1::CANCELLED;
}

bool IsTerminal(v1::ShardState state) {
  return state == v1::SHARD_DONE || state == v1::SHARD_FAILED || state == v1::SHARD_CANCELLED ||
         state == v1::SHARD_LOST || state == v1::SHARD_DRAINED;
}

std::string DescribeShard(const v1::Shard& shard) {
  if (shard.rate_per_second() > 0) {
    return absl::StrFormat("%s: %.2f req/s, in flight <= %d (ids %d-%d)", shard.worker_id(),
                           shard.rate_per_second(), shard.max_concurrent(), shard.client_begin(),
                           shard.client_begin() + shard.client_count() - 1);
  }
  return absl::StrCat(shard.worker_id(), ": clients ", shard.client_begin(), "-",
                      shard.client_begin() + shard.client_count() - 1, " (concurrency ",
                      shard.max_concurrent(), ")");
}

double LoadSeconds(const v1::RunSpec& spec) {
  auto secs = [](const google::protobuf::Duration& d) {
    return static_cast<double>(d.seconds()) + static_cast<double>(d.nanos()) / 1e9;
  };
  if (spec.load().has_duration()) {
    return secs(spec.load().duration().duration());
  }
  if (spec.load().has_open()) {
    double staged = 0;
    for (const v1::RateStage& st : spec.load().open().stages()) {
      staged += secs(st.duration());
    }
    return std::max(staged, secs(spec.load().open().duration()));
  }
  return 0;
}

std::string DescribeLoad(const v1::RunSpec& spec) {
  const v1::Load& load = spec.load();
  if (load.has_duration()) {
    return absl::StrFormat("duration: %d connections for %.1fs", load.duration().connections(),
                           LoadSeconds(spec));
  }
  if (load.has_open()) {
    const v1::OpenLoad& o = load.open();
    std::string out = absl::StrFormat("open: %.2f req/s (%s) for %.1fs", o.rate_per_second(),
                                      o.distribution() == v1::UNIFORM ? "uniform" : "poisson",
                                      LoadSeconds(spec));
    if (o.stages_size() > 0) {
      absl::StrAppend(&out, absl::StrFormat(", %d ramp stages", o.stages_size()));
    }
    if (o.max_in_flight() > 0) {
      absl::StrAppend(&out, absl::StrFormat(", at most %d in flight", o.max_in_flight()));
    }
    return out;
  }
  return absl::StrCat("closed: ", load.closed().clients(), " clients x ",
                      load.closed().cycles_per_client(), " cycles, at most ",
                      load.closed().max_concurrent(), " concurrent");
}

int64_t TotalCycles(const v1::RunSpec& spec) {
  if (!spec.load().has_closed()) {
    return 0;
  }
  return static_cast<int64_t>(spec.load().closed().clients()) *
         spec.load().closed().cycles_per_client();
}

int64_t ShardCycles(const v1::RunSpec& spec, const v1::Shard& shard) {
  if (!spec.load().has_closed()) {
    return 0;
  }
  return static_cast<int64_t>(shard.client_count()) * spec.load().closed().cycles_per_client();
}

v1::Run NewRun(const std::string& id, const v1::RunSpec& spec,
               const std::vector<planning::ShardPlan>& plan,
               const google::protobuf::Timestamp& now) {
  v1::Run run;
  run.set_id(id);
  *run.mutable_spec() = spec;
  run.set_state(v1::PENDING);
  *run.mutable_created_at() = now;
  for (const planning::ShardPlan& p : plan) {
    v1::Shard* shard = run.add_shards();
    shard->set_worker_id(p.worker_id);
    shard->set_client_begin(p.client_begin);
    shard->set_client_count(p.client_count);
    shard->set_max_concurrent(p.max_concurrent);
    shard->set_rate_per_second(p.rate_per_second);
    shard->set_state(v1::SHARD_ASSIGNED);
    shard->mutable_progress()->set_cycles_total(ShardCycles(spec, *shard));
  }
  SumProgress(&run);
  return run;
}

void SumProgress(v1::Run* run) {
  v1::ShardProgress sum;
  for (const v1::Shard& shard : run->shards()) {
    const v1::ShardProgress& p = shard.progress();
    sum.set_cycles_done(sum.cycles_done() + p.cycles_done());
    sum.set_requests_ok(sum.requests_ok() + p.requests_ok());
    sum.set_requests_failed(sum.requests_failed() + p.requests_failed());
    sum.set_tokens(sum.tokens() + p.tokens());
    sum.set_active_sessions(sum.active_sessions() + p.active_sessions());
    sum.set_sessions_opened(sum.sessions_opened() + p.sessions_opened());
    sum.set_sessions_failed(sum.sessions_failed() + p.sessions_failed());
    sum.set_batches_rejected(sum.batches_rejected() + p.batches_rejected());
    sum.set_requests_rejected(sum.requests_rejected() + p.requests_rejected());
    sum.set_samples_rejected(sum.samples_rejected() + p.samples_rejected());
    sum.set_requests_lost(sum.requests_lost() + shard.requests_lost());
    if (p.batches_rejected() > 0) {
      absl::StrAppend(sum.mutable_rejection_reason(), sum.rejection_reason().empty() ? "" : "; ",
                      shard.worker_id(), ": ", p.rejection_reason());
    }
  }
  sum.set_cycles_total(TotalCycles(run->spec()));
  *run->mutable_progress() = sum;
}

v1::RunState DecideState(const v1::Run& run, bool stop_requested) {
  if (IsTerminal(run.state())) {
    return run.state();
  }
  bool all_done = run.shards_size() > 0;
  bool all_settled = run.shards_size() > 0;  // every shard DONE or CANCELLED
  for (const v1::Shard& shard : run.shards()) {
    if (shard.state() == v1::SHARD_FAILED) {
      return v1::FAILED;
    }
    // A shard that ended before its work was done (its worker lost or
    // drained, or cancelled without a stop from us): done once its samples
    // are sealed and what it left has moved to other shards.
    const bool ended_early =
        shard.state() == v1::SHARD_LOST || shard.state() == v1::SHARD_DRAINED ||
        (shard.state() == v1::SHARD_CANCELLED && !stop_requested);
    if (ended_early) {
      if (!shard.settled() && !stop_requested) {
        all_done = false;
        all_settled = false;
      }
      continue;
    }
    all_done = all_done && shard.state() == v1::SHARD_DONE;
    all_settled = all_settled &&
                  (shard.state() == v1::SHARD_DONE || shard.state() == v1::SHARD_CANCELLED);
  }
  if (stop_requested) {
    return all_settled ? v1::CANCELLED : run.state();
  }
  return all_done ? v1::COMPLETED : run.state();
}

void AddEvent(v1::Run* run, const google::protobuf::Timestamp& now, std::string message) {
  v1::RunEvent* event = run->add_events();
  *event->mutable_time() = now;
  event->set_message(std::move(message));
}

void FinishRun(v1::Run* run, v1::RunState state, const google::protobuf::Timestamp& now,
               const std::string& error) {
  run->set_state(state);
  *run->mutable_finished_at() = now;
  if (state == v1::FAILED && run->error().empty()) {
    run->set_error(error);
  }
  std::string message = absl::StrCat("run ", v1::RunState_Name(state));
  if (!error.empty()) {
    absl::StrAppend(&message, ": ", error);
  }
  AddEvent(run, now, std::move(message));
}

}  // namespace llmload::orchestrator
