// File: target_scraper.h
//
// Scrapes runs' target metrics (RunSpec.targetMetrics): one scraper per
// collector, one scrape loop per run, all on one I/O thread of its own. The
// orchestrator starts a run's loop when it starts the run and stops it when
// the run ends (Collector.ScrapeTarget); a stop scrapes once more, so the
// run's final statistics hold the target's values after its last request.
//
// Each scrape is an HTTP/1.1 GET of the spec's URL with a deadline (the
// smaller of the interval and `timeout`) covering resolve, connect, write
// and read, and a cap on the body. A failed scrape (refused, timed out,
// not 200, not the text format) is counted and logged with the URL's
// credentials redacted; it never fails the run. The run's samples go to a
// TargetSeriesStore; Fill adds them to the run's statistics.
//
// Only http:// is scraped so far (validation refuses an https:// URL; a
// scrape of one would fail with a clear error).
//
// A collector restart loses the scrapes (they are not written to the
// store); the orchestrator keeps the final summary with the run.
//
// Thread-safe.

#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "llmload/v1/collector.pb.h"
#include "llmload/v1/run.pb.h"
#include "lib/validation/target_policy.h"
#include "services/collector/target_series.h"

namespace llmload::collector {

class TargetScraper {
 public:
  struct Options {
    absl::Duration timeout = absl::Seconds(5);
    size_t max_body_bytes = 8 << 20;
    // Stopped runs whose scrapes are kept for queries (oldest forgotten
    // first).
    size_t max_finished_runs = 256;
  };

  explicit TargetScraper(Options options);
  TargetScraper() : TargetScraper(Options()) {}
  ~TargetScraper();
  TargetScraper(const TargetScraper&) = delete;
  TargetScraper& operator=(const TargetScraper&) = delete;

  // Starts (or restarts with a new spec) the run's scrape loop; the first
  // scrape happens at once. Every scrape first checks the addresses the
  // URL's host resolves to against `allow_targets` (the orchestrator's
  // --allow_targets list; empty: the default), as a worker checks its
  // target's, so DNS cannot point the scraper somewhere the list forbids.
  // INVALID_ARGUMENT for a URL, selector or list that does not parse.
  absl::Status Start(const std::string& run_id, const v1::TargetMetrics& spec,
                     const std::string& allow_targets = "") ABSL_LOCKS_EXCLUDED(mu_);

  // Stops the run's loop after one more scrape; `done` gets the run's
  // counts (on the scraper thread, or at once for a run not scraping).
  void Stop(const std::string& run_id, absl::AnyInvocable<void(v1::TargetScrapeReply)> done)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Adds the run's target series to `stats` (and its windows); false when
  // the run was never scraped here.
  bool Fill(const std::string& run_id, v1::RunStats* stats) const ABSL_LOCKS_EXCLUDED(mu_);

  // Stops every loop (no final scrape; pending Stop callbacks are answered)
  // and joins the thread. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Run;
  class ScrapeOp;

  void ScrapeNow(const std::shared_ptr<Run>& run);
  void OnScraped(const std::shared_ptr<Run>& run, absl::Status status, const std::string& body);
  void Schedule(const std::shared_ptr<Run>& run);
  void Finish(const std::shared_ptr<Run>& run) ABSL_LOCKS_EXCLUDED(mu_);
  v1::TargetScrapeReply ReplyOf(const Run& run) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  boost::asio::io_context ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Run>> active_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Run>> finished_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> finished_order_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace llmload::collector
