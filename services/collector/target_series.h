// File: target_series.h
//
// What a run's scrapes of the target's Prometheus endpoint found
// (RunSpec.targetMetrics): per series (name and labels) a summary over the
// run, and a bounded history of values by scrape time, so that each of the
// run's time windows can show the last value scraped within it.
//
//   TargetSeriesStore store(selectors);
//   store.AddScrape(time_us, samples);       // samples of one scrape
//   store.Fill(&run_stats);                  // target_series, and windows'
//
// A series is kept when one of the selectors matches it (the first that
// does names it); at most kMaxSeries series per run, the rest are counted
// in dropped_series(). The history keeps at most max_points scrapes: past
// it, every other point of the older half is dropped, so recent windows
// keep every scrape and the coarser windows of an old run lose little.
//
// Increase: for a counter, what it added over the run: the sum of its
// steps, where a drop is a reset and counts the value after it (as
// Prometheus' increase() does, without extrapolation). For any other type
// it is the net change, last minus first.
//
// No I/O. Thread-compatible: the owner locks.

#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lib/metrics/prom_text.h"
#include "llmload/v1/stats.pb.h"

namespace llmload::collector {

class TargetSeriesStore {
 public:
  static constexpr size_t kMaxSeries = 1000;

  struct Selector {
    std::string text;  // as written in the spec
    metrics::PromSelector parsed;
  };

  explicit TargetSeriesStore(std::vector<Selector> selectors, size_t max_points = 4096)
      : selectors_(std::move(selectors)), max_points_(max_points < 2 ? 2 : max_points) {}

  // One successful scrape at `time_us` (unix microseconds).
  void AddScrape(int64_t time_us, const std::vector<metrics::PromSample>& samples);

  // Sets stats->target_series (the run's summaries) and each window's
  // target_series (the last value of each series scraped within it).
  void Fill(v1::RunStats* stats) const;

  // The summaries alone, sorted by name then labels.
  std::vector<v1::TargetSeries> Summaries() const;

  size_t scrapes() const { return scrapes_; }
  size_t dropped_series() const { return dropped_series_; }

 private:
  struct Series {
    std::string name;
    metrics::PromLabels labels;
    std::string type;
    std::string selector;
    double first = 0;
    double last = 0;
    double min = 0;
    double max = 0;
    double sum = 0;
    double increase = 0;
    uint64_t samples = 0;
    int64_t last_time_us = 0;
  };
  struct Point {
    int64_t time_us = 0;
    std::map<std::string, double> values;  // by series key
  };

  static v1::TargetSeries ToProto(const Series& s);
  void Thin();

  std::vector<Selector> selectors_;
  size_t max_points_;
  std::map<std::string, Series> series_;  // by SeriesKey: sorted by name, labels
  std::vector<Point> points_;             // by time
  size_t scrapes_ = 0;
  size_t dropped_series_ = 0;
};

}  // namespace llmload::collector
