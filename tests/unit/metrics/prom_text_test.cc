#include "lib/metrics/prom_text.h"

#include <cmath>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llmload::metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

TEST(PromTextTest, ParsesFamiliesLabelsAndTypes) {
  const std::string body =
      "# HELP http_requests_total The total number of HTTP requests.\n"
      "# TYPE http_requests_total counter\n"
      "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
      "http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n"
      "\n"
      "# A plain comment\n"
      "# TYPE open gauge\n"
      "open 12.5\r\n"
      "no_type_here{a=\"x\",} -3e2\n";
  absl::StatusOr<std::vector<PromSample>> s = ParseExposition(body);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 4u);
  EXPECT_EQ((*s)[0].name, "http_requests_total");
  EXPECT_THAT((*s)[0].labels, ElementsAre(Pair("code", "200"), Pair("method", "post")));
  EXPECT_EQ((*s)[0].value, 1027);
  EXPECT_EQ((*s)[0].type, "counter");
  EXPECT_EQ((*s)[1].value, 3);
  EXPECT_EQ((*s)[2].name, "open");
  EXPECT_EQ((*s)[2].value, 12.5);
  EXPECT_EQ((*s)[2].type, "gauge");
  EXPECT_EQ((*s)[3].type, "untyped");
  EXPECT_THAT((*s)[3].labels, ElementsAre(Pair("a", "x")));
  EXPECT_EQ((*s)[3].value, -300);
}

TEST(PromTextTest, UnescapesLabelValues) {
  absl::StatusOr<std::vector<PromSample>> s =
      ParseExposition("m{path=\"C:\\\\dir\\\\file\",q=\"say \\\"hi\\\"\",nl=\"a\\nb\"} 1\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 1u);
  EXPECT_THAT((*s)[0].labels, ElementsAre(Pair("nl", "a\nb"), Pair("path", "C:\\dir\\file"),
                                          Pair("q", "say \"hi\"")));
  EXPECT_EQ(SeriesKey((*s)[0].name, (*s)[0].labels),
            "m{nl=\"a\\nb\",path=\"C:\\\\dir\\\\file\",q=\"say \\\"hi\\\"\"}");
}

TEST(PromTextTest, SpecialValues) {
  absl::StatusOr<std::vector<PromSample>> s = ParseExposition("a NaN\nb +Inf\nc -Inf\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 3u);
  EXPECT_TRUE(std::isnan((*s)[0].value));
  EXPECT_EQ((*s)[1].value, INFINITY);
  EXPECT_EQ((*s)[2].value, -INFINITY);
}

TEST(PromTextTest, HistogramAndSummaryLinesTakeTheirFamilysType) {
  const std::string body =
      "# TYPE lat histogram\n"
      "lat_bucket{le=\"0.1\"} 2\n"
      "lat_bucket{le=\"+Inf\"} 5\n"
      "lat_sum 1.5\n"
      "lat_count 5\n"
      "# TYPE rpc summary\n"
      "rpc{quantile=\"0.5\"} 0.2\n"
      "rpc_sum 9\n"
      "rpc_count 40\n"
      "rpc_bucket 1\n";
  absl::StatusOr<std::vector<PromSample>> s = ParseExposition(body);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 8u);
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ((*s)[i].type, i < 4 ? "histogram" : "summary") << i;
  }
  EXPECT_EQ((*s)[7].type, "untyped");  // a summary has no buckets
  EXPECT_THAT((*s)[1].labels, ElementsAre(Pair("le", "+Inf")));
  EXPECT_EQ((*s)[3].value, 5);
}

TEST(PromTextTest, RefusesMalformedLinesNamingTheLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ok 1\n{a=\"b\"} 1\n", "line 2: expected a metric name"},
      {"m{a=b} 1", "label value must start"},
      {"m{a=\"b} 1", "unterminated label value"},
      {"m{a=\"\\x\"} 1", "bad escape"},
      {"m{a!=\"b\"} 1", "only equality"},
      {"m{a=\"1\",a=\"2\"} 1", "given twice"},
      {"m{a=\"1\" b=\"2\"} 1", "expected ',' or '}'"},
      {"m", "expected a value"},
      {"m{}1", "expected a value"},
      {"m one", "bad sample value 'one'"},
      {"m 0x10", "bad sample value"},
      {"m inf", "bad sample value"},
      {"m 1 12.5", "bad timestamp"},
      {"m 1 12 extra", "unexpected text after timestamp"},
      {"# TYPE\n", "line 1: malformed # TYPE line"},
      {"# TYPE m\n", "malformed # TYPE line"},
  };
  for (const auto& [input, message] : cases) {
    absl::StatusOr<std::vector<PromSample>> s = ParseExposition(input);
    ASSERT_FALSE(s.ok()) << input;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << input;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(message)) << input;
  }
}

TEST(PromTextTest, EmptyBodyHasNoSamples) {
  absl::StatusOr<std::vector<PromSample>> s = ParseExposition("");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->empty());
}

TEST(PromSelectorTest, ParsesAndMatchesOnEquality) {
  absl::StatusOr<PromSelector> sel = ParseSelector(" req_total{ proto = \"sse\" , code=\"200\" } ");
  ASSERT_TRUE(sel.ok()) << sel.status();
  EXPECT_EQ(sel->name, "req_total");
  EXPECT_THAT(sel->labels, ElementsAre(Pair("code", "200"), Pair("proto", "sse")));

  PromSample hit{"req_total", {{"code", "200"}, {"instance", "a"}, {"proto", "sse"}}, 4, "counter"};
  PromSample other_value{"req_total", {{"code", "500"}, {"proto", "sse"}}, 1, "counter"};
  PromSample missing{"req_total", {{"proto", "sse"}}, 1, "counter"};
  PromSample other_name{"req_count", {{"code", "200"}, {"proto", "sse"}}, 1, "counter"};
  EXPECT_TRUE(Matches(*sel, hit));
  EXPECT_FALSE(Matches(*sel, other_value));
  EXPECT_FALSE(Matches(*sel, missing));
  EXPECT_FALSE(Matches(*sel, other_name));

  absl::StatusOr<PromSelector> bare = ParseSelector("req_total");
  ASSERT_TRUE(bare.ok());
  EXPECT_TRUE(Matches(*bare, hit));
  EXPECT_TRUE(Matches(*bare, missing));
}

TEST(PromSelectorTest, RefusesBadSelectors) {
  EXPECT_THAT(std::string(ParseSelector("m{a=~\"x\"}").status().message()),
              HasSubstr("only equality"));
  for (const char* bad : {"", "1abc", "m{a=~\"x\"}", "m{a=\"x\"", "m x", "m{a=\"1\",a=\"1\"}"}) {
    EXPECT_FALSE(ParseSelector(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace llmload::metrics
