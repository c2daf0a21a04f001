// The RunTracker's lost work: a worker declared lost (or a shard drained),
// its shard sealed at the collector, and what it left moved to workers with
// spare capacity. See run_tracker.h.

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lib/metrics/metrics.h"
#include "lib/planning/planning.h"
#include "services/orchestrator/run_state.h"
#include "services/orchestrator/run_tracker.h"
#include "services/orchestrator/run_tracker_util.h"

namespace llmload::orchestrator {

using tracker_util::ClientsOf;
using tracker_util::DescribeSpans;
using tracker_util::kMinMovedLoad;
using tracker_util::kSealRetry;
using tracker_util::ModelOf;
using tracker_util::SealedCounter;
using tracker_util::Secs;

void RunTracker::MarkLost(const std::string& worker_id, const std::string& reason,
                          absl::Time now, Effects& fx) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return;
  }
  if (it->second.stream != 0) {
    fx.push_back(CloseEffect{it->second.stream,
                             absl::UnavailableError(absl::StrCat("worker declared lost: ", reason))});
    streams_.erase(it->second.stream);
  }
  const absl::Time last_heard = std::min(it->second.last_seen, now);
  const std::vector<std::string> runs = ActiveRunsOf(worker_id);
  workers_.erase(it);
  Log(fx, LogLevel::kWarn, "Worker lost.", {{"worker_id", worker_id}, {"reason", reason}});
  for (const std::string& run_id : runs) {
    RunRec& rec = runs_.at(run_id);
    for (v1::Shard& shard : *rec.run.mutable_shards()) {
      if (shard.worker_id() == worker_id && !IsTerminal(shard.state())) {
        ShardEndedEarly(rec, shard, v1::SHARD_LOST, reason, last_heard, now, fx);
      }
    }
    RunChanged(rec, rec.fail_reason, now, fx);
  }
}

void RunTracker::ShardEndedEarly(RunRec& rec, v1::Shard& shard, v1::ShardState state,
                                 const std::string& reason, absl::Time last_heard,
                                 absl::Time now, Effects& fx) {
  v1::Run& run = rec.run;
  const google::protobuf::Timestamp ts = ToTimestamp(now);
  shard.set_state(state);
  shard.set_error(state == v1::SHARD_LOST ? absl::StrCat("worker lost: ", reason) : reason);
  const bool lost = state == v1::SHARD_LOST;
  ShardRec& sr = rec.shards[shard.epoch()];
  if (lost && sr.dispatched && now - sr.dispatched_at <= config_.crash_window) {
    // Its worker died soon after being given this work: the work may be
    // what kills workers. (One that never got it cannot have been killed by
    // it; one lost later failed on its own.)
    shard.set_losses(shard.losses() + 1);
  }
  sr.ended_at = now;
  v1::WorkerLoss* loss = run.add_losses();
  sr.loss_index = run.losses_size() - 1;
  loss->set_worker_id(shard.worker_id());
  loss->set_epoch(shard.epoch());
  *loss->mutable_last_heard() = ToTimestamp(last_heard);
  *loss->mutable_detected_at() = ts;
  loss->set_reason(reason);
  loss->set_drained(!lost);
  const std::string what = DescribeSpans(ClientsOf(run.spec(), shard), false);
  const std::string said =
      lost ? absl::StrCat("worker ", shard.worker_id(), " lost (", reason, "): epoch ",
                          shard.epoch(), ", ", what, ", last heard ",
                          absl::FormatTime("%H:%M:%E3S", last_heard, absl::UTCTimeZone()), " UTC")
           : absl::StrCat("worker ", shard.worker_id(), " ended epoch ", shard.epoch(),
                          " early (", reason, "): ", what);
  AddEvent(&run, ts, said);
  Log(fx, lost ? LogLevel::kWarn : LogLevel::kInfo,
      lost ? "A shard's worker was lost." : "A shard ended before its work was done.",
      {{"run_id", run.id()},
       {"worker_id", shard.worker_id()},
       {"epoch", absl::StrCat(shard.epoch())},
       {"reason", reason}});
  if (lost && run.spec().fail_on_worker_loss()) {
    rec.fail_reason = absl::StrCat(said, "; failOnWorkerLoss is set");
    shard.set_settled(true);
    return;
  }
  if (!collector_) {
    rec.fail_reason = absl::StrCat(
        said, "; no collector is configured, so its samples cannot be sealed and its work "
              "cannot be moved exactly");
    shard.set_settled(true);
    return;
  }
  sr.sealing = true;
  StartSeal(rec, shard, fx);
}

void RunTracker::StartSeal(RunRec& rec, v1::Shard& shard, Effects& fx) {
  ShardRec& sr = rec.shards[shard.epoch()];
  sr.seal_in_flight = true;
  fx.push_back(SealEffect{rec.run.id(), shard.worker_id(), shard.epoch()});
}

std::optional<RunTracker::Pending> RunTracker::WorkLeft(const RunRec& rec,
                                                        const v1::Shard& shard,
                                                        const v1::SealedShard& sealed,
                                                        absl::Time now,
                                                        std::string* nothing_left) const {
  const v1::RunSpec& spec = rec.run.spec();
  // A lost shard whose final batch arrived had ended before the loss. (A
  // drained or cancelled one sends its final batch too, with work left;
  // the closed model's per-client sums say exactly what is left either way.)
  if (sealed.final() && shard.state() == v1::SHARD_LOST && !spec.load().has_closed()) {
    *nothing_left = "it had finished its work (its final batch had arrived)";
    return std::nullopt;
  }
  Pending p;
  p.from_epoch = shard.epoch();
  p.max_concurrent = shard.max_concurrent();
  p.losses = shard.losses();
  p.since = now;
  p.loss_index = rec.shards.at(shard.epoch()).loss_index;
  if (spec.load().has_closed()) {
    struct Done {
      uint64_t started = 0;
      bool closed = false;
    };
    std::map<int32_t, Done> done;
    for (const v1::ClientCycles& c : sealed.clients()) {
      Done& d = done[c.client()];
      d.started += c.started();
      d.closed = d.closed || c.closed();
    }
    for (const v1::ClientSpan& span : ClientsOf(spec, shard)) {
      for (int32_t k = 0; k < span.count(); ++k) {
        const int32_t client = span.begin() + k;
        auto d = done.find(client);
        const uint64_t started = d == done.end() ? 0 : d->second.started;
        if ((d != done.end() && d->second.closed) ||
            started >= static_cast<uint64_t>(span.cycles())) {
          continue;
        }
        planning::AppendClient(p.clients, client,
                               span.cycles() - static_cast<int32_t>(started));
      }
    }
    if (p.clients.empty()) {
      *nothing_left = "every client had finished or had its last cycle in flight";
      return std::nullopt;
    }
    p.max_concurrent = static_cast<int32_t>(
        std::min<int64_t>(p.max_concurrent, planning::CountClients(p.clients)));
    return p;
  }
  const absl::Duration left = absl::Seconds(LoadSeconds(spec)) - (now - rec.started);
  if (left < kMinMovedLoad) {
    *nothing_left = "the load was ending";
    return std::nullopt;
  }
  p.clients = ClientsOf(spec, shard);
  p.rate_share = shard.rate_share();
  if (spec.load().has_open() && p.rate_share <= 0 && spec.load().open().rate_per_second() > 0) {
    p.rate_share = shard.rate_per_second() / spec.load().open().rate_per_second();
  }
  return p;
}

void RunTracker::OnSealed(const std::string& run_id, const std::string& worker_id,
                          uint64_t epoch, const absl::StatusOr<v1::SealedShard>& sealed,
                          absl::Time now, Effects& fx) {
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    return;
  }
  RunRec& rec = it->second;
  v1::Shard* shard = FindShard(rec, epoch);
  auto sr_it = rec.shards.find(epoch);
  if (shard == nullptr || shard->worker_id() != worker_id || sr_it == rec.shards.end() ||
      !sr_it->second.sealing) {
    return;
  }
  ShardRec& sr = sr_it->second;
  sr.seal_in_flight = false;
  v1::Run& run = rec.run;
  const google::protobuf::Timestamp ts = ToTimestamp(now);
  if (!sealed.ok()) {
    sr.seal_retry_at = now + kSealRetry;
    Log(fx, LogLevel::kWarn, "Could not seal a lost shard at the collector; retrying.",
        {{"run_id", run_id},
         {"worker_id", worker_id},
         {"epoch", absl::StrCat(epoch)},
         {"error", std::string(sealed.status().message())}});
    if (now - sr.ended_at > config_.reassign_wait && !IsTerminal(run.state())) {
      rec.fail_reason = absl::StrCat(
          "could not seal the samples of worker ", worker_id, " (epoch ", epoch, ") within ",
          Secs(config_.reassign_wait), ": ", sealed.status().message(),
          "; its work cannot be moved without knowing what the collector has");
      RunChanged(rec, rec.fail_reason, now, fx);
    }
    return;
  }
  sr.sealing = false;
  const v1::SealedShard& s = *sealed;
  v1::WorkerLoss* loss =
      sr.loss_index >= 0 && sr.loss_index < run.losses_size() ? run.mutable_losses(sr.loss_index)
                                                              : nullptr;
  shard->set_requests_lost(static_cast<int64_t>(s.lost()));
  // The collector's account is the one the statistics show.
  v1::ShardProgress* p = shard->mutable_progress();
  p->set_cycles_done(static_cast<int64_t>(SealedCounter(s, v1::CYCLES)));
  p->set_requests_ok(static_cast<int64_t>(SealedCounter(s, v1::REQUESTS_OK)));
  uint64_t failed = 0;
  for (v1::Counter c : metrics::AllCounters()) {
    if (metrics::IsRequestFailureCounter(c)) {
      failed += SealedCounter(s, c);
    }
  }
  p->set_requests_failed(static_cast<int64_t>(failed));
  p->set_tokens(static_cast<int64_t>(SealedCounter(s, v1::TOKENS)));
  p->set_active_sessions(0);
  // What the collector never received: from the end of the last batch it
  // applied to the end of the last one the worker said it cut, or (lost
  // without a final batch) to when it was last heard from.
  const int64_t missing_from = s.last_interval_end_us();
  int64_t missing_to = std::max(missing_from, sr.last_batch_end_us);
  if (!s.final() && loss != nullptr && shard->state() == v1::SHARD_LOST) {
    missing_to = std::max(missing_to, absl::ToUnixMicros(FromTimestamp(loss->last_heard())));
  }
  if (loss != nullptr) {
    loss->set_requests_lost(static_cast<int64_t>(s.lost()));
    loss->set_missing_from_us(missing_from);
    loss->set_missing_to_us(missing_to);
  }
  std::string sealed_text = absl::StrCat(
      "sealed epoch ", epoch, " of worker ", worker_id, ": ", s.batches(), " batches applied, ",
      s.lost(), s.lost() == 1 ? " request" : " requests", " in flight lost");
  if (missing_to > missing_from) {
    absl::StrAppend(&sealed_text, "; samples from ",
                    absl::FormatTime("%H:%M:%E3S", absl::FromUnixMicros(missing_from),
                                     absl::UTCTimeZone()),
                    " to ",
                    absl::FormatTime("%H:%M:%E3S", absl::FromUnixMicros(missing_to),
                                     absl::UTCTimeZone()),
                    " UTC never reached the collector");
  } else if (!s.final()) {
    absl::StrAppend(&sealed_text, "; every batch it reported had arrived");
  }
  AddEvent(&run, ts, sealed_text);
  if (IsTerminal(run.state()) || rec.stop_requested || !rec.fail_reason.empty()) {
    shard->set_settled(true);
    RunChanged(rec, rec.fail_reason, now, fx);
    return;
  }
  std::string nothing_left;
  std::optional<Pending> left = WorkLeft(rec, *shard, s, now, &nothing_left);
  if (!left.has_value()) {
    shard->set_settled(true);
    if (loss != nullptr) {
      loss->set_not_moved(absl::StrCat("nothing left to move: ", nothing_left));
    }
    AddEvent(&run, ts,
             absl::StrCat("nothing of epoch ", epoch, " left to move: ", nothing_left));
    RunChanged(rec, "", now, fx);
    return;
  }
  if (shard->state() == v1::SHARD_LOST && left->losses >= 2) {
    // Work that has cost two workers is not spread to a third.
    std::vector<std::string> victims;
    for (const v1::Shard* s2 = shard; s2 != nullptr;) {
      if (s2->state() == v1::SHARD_LOST) {
        victims.push_back(s2->worker_id());
      }
      const uint64_t parent = s2->moved_from();
      s2 = parent == 0 ? nullptr : FindShard(rec, parent);
    }
    std::reverse(victims.begin(), victims.end());
    shard->set_settled(true);
    const std::string what = DescribeSpans(left->clients, run.spec().load().has_closed());
    if (loss != nullptr) {
      loss->set_not_moved("crash loop: not handed to a third worker");
    }
    rec.fail_reason =
        absl::StrCat("crash loop: the work of ", what, " was lost with ", victims.size(),
                     " workers (", absl::StrJoin(victims, ", "),
                     "); it is not handed to a third");
    AddEvent(&run, ts, rec.fail_reason);
    Log(fx, LogLevel::kError, "Crash loop: work lost with two workers is not moved again.",
        {{"run_id", run_id}, {"workers", absl::StrJoin(victims, ", ")}});
    RunChanged(rec, rec.fail_reason, now, fx);
    return;
  }
  rec.pending.push_back(*std::move(left));
  PlacePending(rec, now, fx);
  RunChanged(rec, "", now, fx);
}

void RunTracker::PlaceAll(absl::Time now, Effects& fx) {
  for (const std::string& run_id : std::vector<std::string>(active_runs_.begin(),
                                                            active_runs_.end())) {
    RunRec& rec = runs_.at(run_id);
    if (!rec.pending.empty() && !IsTerminal(rec.run.state())) {
      const size_t before = rec.pending.size();
      PlacePending(rec, now, fx);
      if (rec.pending.size() != before) {
        RunChanged(rec, "", now, fx);
      }
    }
  }
}

void RunTracker::PlacePending(RunRec& rec, absl::Time now, Effects& fx) {
  if (rec.pending.empty() || rec.stop_requested || rec.finalizing) {
    return;
  }
  v1::Run& run = rec.run;
  const v1::RunSpec& spec = run.spec();
  const planning::MoveModel model = ModelOf(spec);
  // Workers that can take work of this run: attached, staying, not busy
  // with another run, with spare capacity beyond the sessions this run
  // already asks of them.
  std::vector<planning::WorkerCapacity> spare;
  for (const auto& [id, worker] : workers_) {
    if (worker.stream == 0 || worker.leaving || WorkerBusy(id, run.id())) {
      continue;
    }
    int64_t used = 0;
    for (const v1::Shard& shard : run.shards()) {
      if (shard.worker_id() == id && !IsTerminal(shard.state())) {
        used += shard.max_concurrent();
      }
    }
    const int64_t free = worker.hello.capacity() - used;
    if (free > 0) {
      spare.push_back({id, static_cast<int32_t>(std::min<int64_t>(free, INT32_MAX))});
    }
  }
  if (spare.empty()) {
    return;
  }
  const google::protobuf::Timestamp ts = ToTimestamp(now);
  uint64_t next_epoch = 0;
  for (const v1::Shard& shard : run.shards()) {
    next_epoch = std::max(next_epoch, shard.epoch());
  }
  std::vector<Pending> still;
  for (Pending& p : rec.pending) {
    if (spare.empty()) {
      still.push_back(std::move(p));
      continue;
    }
    if (model != planning::MoveModel::kClosed &&
        absl::Seconds(LoadSeconds(spec)) - (now - rec.started) < kMinMovedLoad) {
      // The load ended while the work waited.
      if (v1::Shard* from = FindShard(rec, p.from_epoch); from != nullptr) {
        from->set_settled(true);
      }
      if (p.loss_index >= 0) {
        run.mutable_losses(p.loss_index)
            ->set_not_moved("the load ended before a worker with spare capacity took it");
      }
      continue;
    }
    planning::MovedWork work;
    work.model = model;
    work.clients = p.clients;
    work.max_concurrent = std::max(1, p.max_concurrent);
    work.rate_share = p.rate_share;
    int64_t unplaced = 0;
    absl::StatusOr<std::vector<planning::MovedPiece>> pieces =
        planning::PlanMove(work, spare, &unplaced);
    if (!pieces.ok()) {
      Log(fx, LogLevel::kError, "Could not plan the move of lost work.",
          {{"run_id", run.id()}, {"error", std::string(pieces.status().message())}});
      still.push_back(std::move(p));
      continue;
    }
    v1::Shard* from = FindShard(rec, p.from_epoch);
    std::vector<std::string> moved;
    for (const planning::MovedPiece& piece : *pieces) {
      v1::Shard* shard = run.add_shards();
      shard->set_worker_id(piece.worker_id);
      shard->set_epoch(++next_epoch);
      for (const v1::ClientSpan& span : piece.clients) {
        *shard->add_clients() = span;
      }
      shard->set_client_begin(piece.clients.empty() ? 0 : piece.clients.front().begin());
      shard->set_client_count(piece.client_count);
      shard->set_max_concurrent(piece.max_concurrent);
      shard->set_rate_share(piece.rate_share);
      if (spec.load().has_open()) {
        shard->set_rate_per_second(piece.rate_share * spec.load().open().rate_per_second());
      }
      if (model != planning::MoveModel::kClosed) {
        const absl::Duration offset = std::max(absl::ZeroDuration(), now - rec.started);
        const int64_t ns = absl::ToInt64Nanoseconds(offset);
        shard->mutable_load_offset()->set_seconds(ns / 1000000000);
        shard->mutable_load_offset()->set_nanos(static_cast<int32_t>(ns % 1000000000));
      }
      shard->set_moved_from(p.from_epoch);
      shard->set_losses(p.losses);
      shard->set_state(v1::SHARD_ASSIGNED);
      shard->set_worker_incarnation(workers_.at(piece.worker_id).hello.incarnation());
      int64_t cycles = 0;
      for (const v1::ClientSpan& span : piece.clients) {
        cycles += static_cast<int64_t>(span.count()) * span.cycles();
      }
      shard->mutable_progress()->set_cycles_total(cycles);
      rec.shards[shard->epoch()];  // not dispatched until written
      if (from != nullptr) {
        from->add_moved_to(shard->epoch());
      }
      std::string text;
      if (model == planning::MoveModel::kOpen) {
        text = absl::StrFormat("%s: %.2f req/s (%.4f of the rate), in flight <= %d (epoch %d)",
                               piece.worker_id, shard->rate_per_second(), piece.rate_share,
                               piece.max_concurrent, shard->epoch());
      } else {
        text = absl::StrCat(piece.worker_id, ": ",
                            DescribeSpans(piece.clients, model == planning::MoveModel::kClosed),
                            model == planning::MoveModel::kDuration
                                ? absl::StrCat(" for the remaining ",
                                               Secs(absl::Seconds(LoadSeconds(spec)) -
                                                    (now - rec.started)))
                                : std::string(),
                            ", concurrency ", piece.max_concurrent, " (epoch ", shard->epoch(),
                            ")");
      }
      moved.push_back(std::move(text));
      // Less spare for the next piece of work.
      for (planning::WorkerCapacity& w : spare) {
        if (w.id == piece.worker_id) {
          w.capacity -= piece.max_concurrent;
        }
      }
    }
    std::erase_if(spare, [](const planning::WorkerCapacity& w) { return w.capacity <= 0; });
    if (from != nullptr) {
      from->set_settled(true);
    }
    const std::string from_worker = from != nullptr ? from->worker_id() : std::string("?");
    if (p.loss_index >= 0 && p.loss_index < run.losses_size()) {
      v1::WorkerLoss* loss = run.mutable_losses(p.loss_index);
      *loss->mutable_moved_at() = ts;
      for (const std::string& m : moved) {
        loss->add_moved(m);
      }
      if (unplaced > 0) {
        loss->set_not_moved(absl::StrCat(unplaced, model == planning::MoveModel::kOpen
                                                       ? " in-flight slots"
                                                       : " connections",
                                         " found no spare capacity"));
      }
    }
    AddEvent(&run, ts,
             absl::StrCat("moved the work of worker ", from_worker, " (epoch ", p.from_epoch,
                          ") after ", Secs(now - p.since), " of waiting: ",
                          absl::StrJoin(moved, "; ")));
    Log(fx, LogLevel::kInfo, "Moved lost work.",
        {{"run_id", run.id()},
         {"from_worker", from_worker},
         {"to", absl::StrJoin(moved, "; ")}});
  }
  rec.pending = std::move(still);
  Write(rec, /*report_back=*/true, fx);  // dispatched once durable
}

}  // namespace llmload::orchestrator
