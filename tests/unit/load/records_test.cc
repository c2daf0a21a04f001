#include "lib/load/records.h"

#include "gtest/gtest.h"

namespace llmload::load {
namespace {

v1::RecordsSpec Records(double rate, uint64_t seed, int32_t max = 0) {
  v1::RecordsSpec r;
  r.set_sample_rate(rate);
  r.set_seed(seed);
  r.set_max_records(max);
  return r;
}

TEST(RecordSamplerTest, OffAllAndAFraction) {
  EXPECT_FALSE(RecordSampler(Records(0, 1)).enabled());
  EXPECT_FALSE(RecordSampler(Records(0, 1)).Keep(1, 1));
  const RecordSampler all(Records(1, 1));
  for (int c = 0; c < 100; ++c) {
    EXPECT_TRUE(all.Keep(c, c + 1));
  }
  const RecordSampler tenth(Records(0.1, 42));
  int kept = 0;
  for (int c = 0; c < 200; ++c) {
    for (int i = 1; i <= 100; ++i) {
      kept += tenth.Keep(c, i) ? 1 : 0;
    }
  }
  // 20000 draws at 10 %: 2000 expected, sd ~42.
  EXPECT_GT(kept, 1800);
  EXPECT_LT(kept, 2200);
}

TEST(RecordSamplerTest, TheSameSeedKeepsTheSameRequestsAnotherSeedOthers) {
  const RecordSampler a(Records(0.3, 7));
  const RecordSampler b(Records(0.3, 7));
  const RecordSampler c(Records(0.3, 8));
  int same = 0;
  int differ = 0;
  for (int client = 0; client < 50; ++client) {
    for (int i = 1; i <= 40; ++i) {
      EXPECT_EQ(a.Keep(client, i), b.Keep(client, i));
      (a.Keep(client, i) == c.Keep(client, i) ? same : differ) += 1;
    }
  }
  EXPECT_GT(differ, 200);  // independent draws disagree ~42 % of the time
}

TEST(CancelSamplerTest, AbandonsItsShareAndNotTheRecordedRequests) {
  v1::Cancellation spec;
  spec.set_share(0.25);
  spec.set_seed(7);
  const CancelSampler cancel(spec);
  const RecordSampler records(Records(0.25, 7));
  int cancelled = 0;
  int both = 0;
  for (int client = 0; client < 100; ++client) {
    for (int i = 1; i <= 100; ++i) {
      const bool c = cancel.Keep(client, i);
      cancelled += c ? 1 : 0;
      both += c && records.Keep(client, i) ? 1 : 0;
    }
  }
  // 10000 draws at 25 %: 2500 expected, sd ~43.
  EXPECT_GT(cancelled, 2300);
  EXPECT_LT(cancelled, 2700);
  // With the same seed the two samples are independent (625 expected in
  // both), not the same requests (2500).
  EXPECT_GT(both, 500);
  EXPECT_LT(both, 750);
  spec.set_share(0);
  EXPECT_FALSE(CancelSampler(spec).enabled());
}

TEST(StormSamplerTest, DropsItsShareOfClientsApartFromTheCancelledOnes) {
  v1::ReconnectStorm storm;
  storm.set_share(0.25);
  storm.set_seed(7);
  const StormSampler sampler(storm);
  v1::Cancellation c;
  c.set_share(0.25);
  c.set_seed(7);
  const CancelSampler cancel(c);
  int dropped = 0;
  int both = 0;
  for (int client = 0; client < 10000; ++client) {
    const bool d = sampler.Drops(client);
    EXPECT_EQ(d, StormSampler(storm).Drops(client));  // a pure function
    dropped += d ? 1 : 0;
    both += d && cancel.Keep(client, 0) ? 1 : 0;
  }
  // 10000 clients at 25 %: 2500 expected, sd ~43; independent of the
  // cancellation hash with the same seed (625 expected in both).
  EXPECT_GT(dropped, 2300);
  EXPECT_LT(dropped, 2700);
  EXPECT_GT(both, 500);
  EXPECT_LT(both, 750);
  storm.set_share(1);
  EXPECT_TRUE(StormSampler(storm).Drops(12345));
}

TEST(RecordShareTest, ShardsGetTheirShareOfTheCapRoundedUp) {
  v1::RunSpec spec;
  spec.mutable_load()->mutable_closed()->set_clients(10);
  *spec.mutable_records() = Records(1, 0, 1000);
  EXPECT_EQ(RecordShare(spec, 3, 0), 300);
  EXPECT_EQ(RecordShare(spec, 10, 0), 1000);
  spec.mutable_records()->set_max_records(1);
  EXPECT_EQ(RecordShare(spec, 3, 0), 1);  // never zero while recording
  spec.mutable_records()->set_max_records(0);
  EXPECT_EQ(RecordShare(spec, 10, 0), 10000);  // the default cap
  v1::RunSpec open;
  open.mutable_load()->mutable_open()->set_rate_per_second(50);
  *open.mutable_records() = Records(1, 0, 999);
  EXPECT_EQ(RecordShare(open, 5, 1.0 / 3), 333);
}

}  // namespace
}  // namespace llmload::load
