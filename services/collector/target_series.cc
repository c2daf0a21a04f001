#include "services/collector/target_series.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace llmload::collector {

void TargetSeriesStore::AddScrape(int64_t time_us,
                                  const std::vector<metrics::PromSample>& samples) {
  ++scrapes_;
  Point point;
  point.time_us = time_us;
  for (const metrics::PromSample& sample : samples) {
    const Selector* matched = nullptr;
    for (const Selector& sel : selectors_) {
      if (metrics::Matches(sel.parsed, sample)) {
        matched = &sel;
        break;
      }
    }
    if (matched == nullptr) {
      continue;
    }
    std::string key = metrics::SeriesKey(sample.name, sample.labels);
    auto it = series_.find(key);
    if (it == series_.end()) {
      if (series_.size() >= kMaxSeries) {
        ++dropped_series_;
        continue;
      }
      Series s;
      s.name = sample.name;
      s.labels = sample.labels;
      s.selector = matched->text;
      s.first = s.last = s.min = s.max = sample.value;
      it = series_.emplace(key, std::move(s)).first;
    } else {
      Series& s = it->second;
      const double step = sample.value - s.last;
      // A counter that went down was reset: what it shows now was all
      // added since the reset.
      s.increase += (s.type == "counter" && step < 0) ? sample.value : step;
      s.min = std::min(s.min, sample.value);
      s.max = std::max(s.max, sample.value);
      s.last = sample.value;
    }
    Series& s = it->second;
    s.type = sample.type;
    s.sum += sample.value;
    ++s.samples;
    s.last_time_us = time_us;
    if (point.values.count(key) == 0) {  // a repeated series: its first line counts
      point.values.emplace(std::move(key), sample.value);
    }
  }
  if (!points_.empty() && time_us < points_.back().time_us) {
    // Scrapes finish in order on one thread; a wall-clock step back is
    // filed where it belongs.
    auto at = std::upper_bound(points_.begin(), points_.end(), time_us,
                               [](int64_t t, const Point& p) { return t < p.time_us; });
    points_.insert(at, std::move(point));
  } else {
    points_.push_back(std::move(point));
  }
  if (points_.size() > max_points_) {
    Thin();
  }
}

void TargetSeriesStore::Thin() {
  // Drop every other point of the older half: recent windows keep their
  // 1 s resolution, old ones (10 s and coarser) lose nothing they show.
  const size_t half = points_.size() / 2;
  std::vector<Point> kept;
  kept.reserve(points_.size());
  for (size_t i = 0; i < points_.size(); ++i) {
    if (i >= half || i % 2 == 1) {
      kept.push_back(std::move(points_[i]));
    }
  }
  points_ = std::move(kept);
}

v1::TargetSeries TargetSeriesStore::ToProto(const Series& s) {
  v1::TargetSeries out;
  out.set_name(s.name);
  for (const auto& [name, value] : s.labels) {
    v1::TargetLabel* l = out.add_labels();
    l->set_name(name);
    l->set_value(value);
  }
  out.set_type(s.type);
  out.set_value(s.last);
  out.set_samples(s.samples);
  out.set_min(s.min);
  out.set_max(s.max);
  out.set_mean(s.samples == 0 ? 0 : s.sum / static_cast<double>(s.samples));
  out.set_increase(s.increase);
  out.set_time_us(s.last_time_us);
  out.set_selector(s.selector);
  return out;
}

std::vector<v1::TargetSeries> TargetSeriesStore::Summaries() const {
  std::vector<v1::TargetSeries> out;
  out.reserve(series_.size());
  for (const auto& [key, s] : series_) {
    out.push_back(ToProto(s));
  }
  return out;
}

void TargetSeriesStore::Fill(v1::RunStats* stats) const {
  stats->clear_target_series();
  for (v1::TargetSeries& s : Summaries()) {
    *stats->add_target_series() = std::move(s);
  }
  for (v1::WindowStats& w : *stats->mutable_windows()) {
    w.clear_target_series();
    const int64_t begin = w.start_us();
    const int64_t end = begin + static_cast<int64_t>(std::llround(w.width_seconds() * 1e6));
    // The last value of each series among the points in [begin, end).
    std::map<std::string, std::pair<double, int64_t>> last;
    auto it = std::lower_bound(points_.begin(), points_.end(), begin,
                               [](const Point& p, int64_t t) { return p.time_us < t; });
    for (; it != points_.end() && it->time_us < end; ++it) {
      for (const auto& [key, value] : it->values) {
        last[key] = {value, it->time_us};
      }
    }
    for (const auto& [key, vt] : last) {
      const Series& s = series_.at(key);
      v1::TargetSeries* out = w.add_target_series();
      out->set_name(s.name);
      for (const auto& [name, value] : s.labels) {
        v1::TargetLabel* l = out->add_labels();
        l->set_name(name);
        l->set_value(value);
      }
      out->set_type(s.type);
      out->set_value(vt.first);
      out->set_time_us(vt.second);
      out->set_selector(s.selector);
    }
  }
}

}  // namespace llmload::collector
