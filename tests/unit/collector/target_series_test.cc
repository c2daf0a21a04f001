// TargetSeriesStore: the run's summaries of the target's scraped series and
// the last value of each in every window.

#include "services/collector/target_series.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace llmload::collector {
namespace {

TargetSeriesStore::Selector Sel(const std::string& text) {
  absl::StatusOr<metrics::PromSelector> parsed = metrics::ParseSelector(text);
  EXPECT_TRUE(parsed.ok()) << text;
  return {text, parsed.ok() ? *parsed : metrics::PromSelector{}};
}

std::vector<metrics::PromSample> Parse(const std::string& body) {
  absl::StatusOr<std::vector<metrics::PromSample>> s = metrics::ParseExposition(body);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : std::vector<metrics::PromSample>{};
}

std::string Scrape(int requests, int open) {
  return "# TYPE req_total counter\n"
         "req_total{proto=\"a\"} " + std::to_string(requests) + "\n" +
         "req_total{proto=\"b\"} 7\n"
         "# TYPE open gauge\n"
         "open " + std::to_string(open) + "\n"
         "other 1\n";
}

TEST(TargetSeriesStoreTest, SummarisesEachSelectedSeries) {
  TargetSeriesStore store({Sel("req_total{proto=\"a\"}"), Sel("open")});
  store.AddScrape(1'000'000, Parse(Scrape(10, 4)));
  store.AddScrape(2'000'000, Parse(Scrape(25, 2)));
  store.AddScrape(3'000'000, Parse(Scrape(5, 6)));  // the counter was reset
  v1::RunStats stats;
  store.Fill(&stats);
  ASSERT_EQ(stats.target_series_size(), 2);

  const v1::TargetSeries& open = stats.target_series(0);  // sorted by key: "open" < "req_total"
  EXPECT_EQ(open.name(), "open");
  EXPECT_EQ(open.type(), "gauge");
  EXPECT_EQ(open.labels_size(), 0);
  EXPECT_EQ(open.value(), 6);
  EXPECT_EQ(open.min(), 2);
  EXPECT_EQ(open.max(), 6);
  EXPECT_EQ(open.mean(), 4);
  EXPECT_EQ(open.samples(), 3u);
  EXPECT_EQ(open.increase(), 2);  // a gauge: last - first
  EXPECT_EQ(open.time_us(), 3'000'000);
  EXPECT_EQ(open.selector(), "open");

  const v1::TargetSeries& req = stats.target_series(1);
  EXPECT_EQ(req.name(), "req_total");
  ASSERT_EQ(req.labels_size(), 1);
  EXPECT_EQ(req.labels(0).name(), "proto");
  EXPECT_EQ(req.labels(0).value(), "a");
  EXPECT_EQ(req.type(), "counter");
  EXPECT_EQ(req.value(), 5);
  EXPECT_EQ(req.min(), 5);
  EXPECT_EQ(req.max(), 25);
  EXPECT_EQ(req.increase(), 15 + 5);  // 10 -> 25, then reset and 5 more
  EXPECT_EQ(req.selector(), "req_total{proto=\"a\"}");
  EXPECT_EQ(store.scrapes(), 3u);
}

TEST(TargetSeriesStoreTest, WindowsShowTheLastValueScrapedInThem) {
  TargetSeriesStore store({Sel("open")});
  store.AddScrape(10'100'000, Parse(Scrape(1, 3)));
  store.AddScrape(10'900'000, Parse(Scrape(1, 5)));
  store.AddScrape(12'500'000, Parse(Scrape(1, 8)));
  v1::RunStats stats;
  for (int64_t start : {10'000'000, 11'000'000, 12'000'000}) {
    v1::WindowStats* w = stats.add_windows();
    w->set_start_us(start);
    w->set_width_seconds(1);
  }
  store.Fill(&stats);
  ASSERT_EQ(stats.windows(0).target_series_size(), 1);
  EXPECT_EQ(stats.windows(0).target_series(0).value(), 5);
  EXPECT_EQ(stats.windows(0).target_series(0).time_us(), 10'900'000);
  EXPECT_EQ(stats.windows(1).target_series_size(), 0);  // no scrape in it
  ASSERT_EQ(stats.windows(2).target_series_size(), 1);
  EXPECT_EQ(stats.windows(2).target_series(0).value(), 8);
}

TEST(TargetSeriesStoreTest, HistoryIsBoundedAndKeepsTheRecentPoints) {
  TargetSeriesStore store({Sel("open")}, /*max_points=*/8);
  for (int i = 0; i < 100; ++i) {
    store.AddScrape(int64_t{i} * 1'000'000, Parse(Scrape(1, i)));
  }
  v1::RunStats stats;
  v1::WindowStats* last = stats.add_windows();
  last->set_start_us(99'000'000);
  last->set_width_seconds(1);
  store.Fill(&stats);
  EXPECT_EQ(stats.target_series(0).samples(), 100u);
  EXPECT_EQ(stats.target_series(0).mean(), 49.5);
  ASSERT_EQ(last->target_series_size(), 1);
  EXPECT_EQ(last->target_series(0).value(), 99);
}

}  // namespace
}  // namespace llmload::collector
