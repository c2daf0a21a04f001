// GET /metrics: the emulator's counters in the Prometheus text format, read
// back with llmload's own reader.

#include "services/emulator/metrics_text.h"

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/metrics/prom_text.h"

namespace llmload::emulator {
namespace {

using std::chrono::milliseconds;

// Every sample by its canonical key.
std::map<std::string, metrics::PromSample> Read(const std::string& text) {
  absl::StatusOr<std::vector<metrics::PromSample>> samples = metrics::ParseExposition(text);
  EXPECT_TRUE(samples.ok()) << samples.status();
  std::map<std::string, metrics::PromSample> out;
  if (samples.ok()) {
    for (metrics::PromSample& s : *samples) {
      out[metrics::SeriesKey(s.name, s.labels)] = s;
    }
  }
  return out;
}

TEST(MetricsTextTest, CountsMatchTheBehaviour) {
  BehaviourConfig config;
  config.length_words = 3;
  Behaviour behaviour(config);
  const std::chrono::steady_clock::time_point t0{};
  for (int r = 0; r < 2; ++r) {
    ResponsePlan plan = behaviour.Plan(Protocol::kOpenAiChat, "hi", {});
    plan.TokenSent(0, t0);
    plan.TokenSent(1, t0 + milliseconds(3));
    plan.TokenSent(1, t0 + milliseconds(3));  // the same token again: not counted twice
    plan.TokenSent(2, t0 + milliseconds(7));
  }
  ResponsePlan left = behaviour.Plan(Protocol::kWsChat, "hi", {});
  left.TokenSent(0, t0);
  left.ClientLeft();

  const auto m = Read(MetricsText(behaviour, 2, {.accepted = 5, .open = 1}));
  const std::string openai = "process=\"2\",protocol=\"OPENAI_CHAT\"";
  const std::string ws = "process=\"2\",protocol=\"WS_CHAT\"";
  EXPECT_EQ(m.at("llmload_emulator_requests_total{" + openai + "}").value, 2);
  EXPECT_EQ(m.at("llmload_emulator_requests_total{" + openai + "}").type, "counter");
  EXPECT_EQ(m.at("llmload_emulator_requests_total{" + ws + "}").value, 1);
  EXPECT_EQ(m.at("llmload_emulator_requests_total{process=\"2\",protocol=\"GEMINI\"}").value, 0);
  EXPECT_EQ(m.at("llmload_emulator_tokens_sent_total{" + openai + "}").value, 6);
  EXPECT_EQ(m.at("llmload_emulator_tokens_sent_total{" + ws + "}").value, 1);
  EXPECT_EQ(m.at("llmload_emulator_abandoned_total{" + ws + "}").value, 1);
  EXPECT_EQ(m.at("llmload_emulator_abandoned_total{" + openai + "}").value, 0);
  EXPECT_EQ(m.at("llmload_emulator_connections_accepted_total{process=\"2\"}").value, 5);
  EXPECT_EQ(m.at("llmload_emulator_open_connections{process=\"2\"}").value, 1);
  EXPECT_EQ(m.at("llmload_emulator_open_connections{process=\"2\"}").type, "gauge");
  EXPECT_EQ(behaviour.TokensSentCount(Protocol::kOpenAiChat), 6u);

  // Gaps of 3 ms and 4 ms, twice: all four under 5 ms, none under 2.5 ms.
  const std::string h = "llmload_emulator_token_gap_seconds";
  EXPECT_EQ(m.at(h + "_count{" + openai + "}").value, 4);
  EXPECT_EQ(m.at(h + "_count{" + openai + "}").type, "histogram");
  EXPECT_DOUBLE_EQ(m.at(h + "_sum{" + openai + "}").value, 0.014);
  EXPECT_EQ(m.at(h + "_bucket{le=\"0.0025\"," + openai + "}").value, 0);
  EXPECT_EQ(m.at(h + "_bucket{le=\"0.005\"," + openai + "}").value, 4);
  EXPECT_EQ(m.at(h + "_bucket{le=\"+Inf\"," + openai + "}").value, 4);
  EXPECT_EQ(m.at(h + "_count{" + ws + "}").value, 0);
}

}  // namespace
}  // namespace llmload::emulator
