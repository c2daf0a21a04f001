// File: arrivals.h
//
// When requests start, for the open (arrival-rate) model, and how long a
// client thinks between cycles. Pure: times are seconds from the start of
// the load; randomness comes from an explicit seed, so a schedule is
// reproducible.
//
// A RateProfile is the arrival rate over time: `initial_rate`, then ramp
// stages that move the rate linearly to each stage's target over the stage's
// length, the last rate holding until `duration` (the profile lasts
// max(duration, sum of stages)). An ArrivalSchedule draws the arrival times
// of a process with that rate by the time-change method: arrivals of a
// unit-rate process (exponential gaps for POISSON, unit gaps with a random
// phase for UNIFORM) mapped through the inverse of the cumulative rate
// Lambda(t). The count of arrivals in [0, T] is Poisson(Lambda(T)) for
// POISSON and within one of Lambda(T) for UNIFORM.
//
//   load::RateProfile profile(/*initial_rate=*/10, /*duration_s=*/60, {{50, 30}});
//   load::ArrivalSchedule arrivals(profile, load::Distribution::kPoisson, seed);
//   while (std::optional<double> t = arrivals.Next()) { ... }
//
// Thread-compatible.

#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

namespace llmload::load {

enum class Distribution { kPoisson, kUniform };

struct Stage {
  double target_rate = 0;  // arrivals per second at the end of the stage
  double seconds = 0;      // stage length
};

class RateProfile {
 public:
  // Rates are scaled by `scale` (a worker's or loop's share of the run).
  RateProfile(double initial_rate, double duration_s, const std::vector<Stage>& stages,
              double scale = 1.0);

  // Length of the load in seconds.
  double Length() const { return length_; }
  // Arrivals per second at time t (0 outside [0, Length()]).
  double RateAt(double t) const;
  // Expected arrivals in [0, t] (Lambda(t)).
  double Cumulative(double t) const;
  // The t with Cumulative(t) == mass, or nullopt if mass > Cumulative(Length()).
  std::optional<double> Inverse(double mass) const;

 private:
  struct Segment {
    double t0, t1, r0, r1;  // linear rate from r0 at t0 to r1 at t1
    double mass_before;     // Cumulative(t0)
  };
  std::vector<Segment> segments_;
  double length_ = 0;
  double total_mass_ = 0;
};

class ArrivalSchedule {
 public:
  ArrivalSchedule(RateProfile profile, Distribution distribution, uint64_t seed);
  // The next arrival time (seconds from the start, non-decreasing), or
  // nullopt once past the end of the profile.
  std::optional<double> Next();
  const RateProfile& profile() const { return profile_; }

 private:
  RateProfile profile_;
  Distribution distribution_;
  std::mt19937_64 rng_;
  double mass_ = 0;  // unit-rate time of the last arrival
  bool started_ = false;
};

// A uniform double in [0, 1) from 53 random bits (the same on every platform).
double UnitUniform(std::mt19937_64& rng);

// Think time between cycles: fixed (max <= min) or uniform in [min, max].
struct ThinkTime {
  double min_s = 0;
  double max_s = 0;
  bool enabled() const { return min_s > 0 || max_s > 0; }
  double Sample(std::mt19937_64& rng) const;
};

}  // namespace llmload::load
