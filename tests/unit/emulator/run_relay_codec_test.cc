#include "services/emulator/run_relay_codec.h"

#include <string>

#include "gtest/gtest.h"

namespace llmload::emulator {
namespace {

ResponsePlan SamplePlan() {
  BehaviourConfig c;
  c.length_words = 7;
  c.ttft_seconds = 0.05;
  c.distribution = DelayDistribution::kLogNormal;
  c.token_delay_spread_seconds = 0.003;
  RequestOverrides o;
  o.fault = Fault::kMalformed;
  return MakePlan(c, Protocol::kCentrifugo, 41, "a prompt", o);
}

TEST(RunRelayCodecTest, RoundTripsThePlanExactly) {
  const ResponsePlan plan = SamplePlan();
  const std::string frame = EncodeRunFrame("9f2c6a1e-session", plan);
  ASSERT_GT(frame.size(), kRelayHeaderBytes);
  const uint32_t length = DecodeFrameLength(frame.substr(0, kRelayHeaderBytes));
  EXPECT_EQ(length, frame.size() - kRelayHeaderBytes);
  absl::StatusOr<RelayedRun> run = DecodeRunPayload(std::string_view(frame).substr(kRelayHeaderBytes));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->session_id, "9f2c6a1e-session");
  EXPECT_EQ(run->plan.tokens, plan.tokens);
  EXPECT_EQ(run->plan.text, plan.text);
  EXPECT_EQ(run->plan.offsets, plan.offsets);
  EXPECT_EQ(run->plan.fault, Fault::kMalformed);
  EXPECT_EQ(run->plan.fault_at, plan.fault_at);
  EXPECT_EQ(run->plan.request_index, 41u);
}

TEST(RunRelayCodecTest, RoundTripsAnEmptyPlan) {
  const std::string frame = EncodeRunFrame("", ResponsePlan{});
  absl::StatusOr<RelayedRun> run = DecodeRunPayload(std::string_view(frame).substr(kRelayHeaderBytes));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_TRUE(run->session_id.empty());
  EXPECT_TRUE(run->plan.tokens.empty());
  EXPECT_TRUE(run->plan.offsets.empty());
}

TEST(RunRelayCodecTest, RefusesEveryTruncationAndTrailingBytes) {
  const std::string frame = EncodeRunFrame("s", SamplePlan());
  const std::string payload = frame.substr(kRelayHeaderBytes);
  for (size_t n = 0; n < payload.size(); ++n) {
    EXPECT_EQ(DecodeRunPayload(payload.substr(0, n)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << n;
  }
  EXPECT_EQ(DecodeRunPayload(payload + "x").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RunRelayCodecTest, RefusesBadFields) {
  const std::string payload = EncodeRunFrame("s", SamplePlan()).substr(kRelayHeaderBytes);
  std::string bad_kind = payload;
  bad_kind[0] = 7;
  EXPECT_NE(DecodeRunPayload(bad_kind).status().message().find("unknown kind"),
            absl::string_view::npos);
  std::string bad_fault = payload;
  bad_fault[9] = 99;  // after kind (1) and request index (8)
  EXPECT_NE(DecodeRunPayload(bad_fault).status().message().find("unknown fault"),
            absl::string_view::npos);
  // A token count far beyond the bytes left is refused before anything is
  // reserved for it.
  std::string huge_count = EncodeRunFrame("s", ResponsePlan{}).substr(kRelayHeaderBytes);
  const size_t count_at = 1 + 8 + 1 + 4 + 4 + 1;
  huge_count[count_at] = '\xff';
  EXPECT_EQ(DecodeRunPayload(huge_count).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RunRelayCodecTest, RefusesOffsetsThatDoNotFitTheTokens) {
  ResponsePlan plan = SamplePlan();
  plan.offsets.pop_back();
  EXPECT_NE(DecodeRunPayload(EncodeRunFrame("s", plan).substr(kRelayHeaderBytes))
                .status()
                .message()
                .find("offsets do not go with the tokens"),
            absl::string_view::npos);
  plan = SamplePlan();
  plan.offsets[2] = plan.offsets[1] - std::chrono::nanoseconds(1);
  EXPECT_NE(DecodeRunPayload(EncodeRunFrame("s", plan).substr(kRelayHeaderBytes))
                .status()
                .message()
                .find("must not decrease"),
            absl::string_view::npos);
}

}  // namespace
}  // namespace llmload::emulator
