#include "lib/load/arrivals.h"

#include <algorithm>
#include <cmath>

namespace llmload::load {

double UnitUniform(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
}

double ThinkTime::Sample(std::mt19937_64& rng) const {
  if (max_s <= min_s) {
    return std::max(0.0, min_s);
  }
  return min_s + (max_s - min_s) * UnitUniform(rng);
}

RateProfile::RateProfile(double initial_rate, double duration_s, const std::vector<Stage>& stages,
                         double scale) {
  double t = 0;
  double rate = std::max(0.0, initial_rate * scale);
  double mass = 0;
  auto add = [&](double seconds, double r1) {
    if (!(seconds > 0)) {
      rate = r1;
      return;
    }
    Segment s{t, t + seconds, rate, r1, mass};
    mass += (s.r0 + s.r1) / 2 * seconds;
    segments_.push_back(s);
    t += seconds;
    rate = r1;
  };
  for (const Stage& stage : stages) {
    add(stage.seconds, std::max(0.0, stage.target_rate * scale));
  }
  if (duration_s > t) {
    add(duration_s - t, rate);  // the last rate holds
  }
  length_ = t;
  total_mass_ = mass;
}

double RateProfile::RateAt(double t) const {
  for (const Segment& s : segments_) {
    if (t >= s.t0 && t <= s.t1) {
      return s.r0 + (s.r1 - s.r0) * (t - s.t0) / (s.t1 - s.t0);
    }
  }
  return 0;
}

double RateProfile::Cumulative(double t) const {
  if (t <= 0) {
    return 0;
  }
  for (const Segment& s : segments_) {
    if (t <= s.t1) {
      const double x = t - s.t0;
      const double slope = (s.r1 - s.r0) / (s.t1 - s.t0);
      return s.mass_before + s.r0 * x + slope * x * x / 2;
    }
  }
  return total_mass_;
}

std::optional<double> RateProfile::Inverse(double mass) const {
  if (mass < 0 || mass > total_mass_) {
    return std::nullopt;
  }
  for (const Segment& s : segments_) {
    const double seg_mass = (s.r0 + s.r1) / 2 * (s.t1 - s.t0);
    if (mass > s.mass_before + seg_mass) {
      continue;
    }
    const double m = mass - s.mass_before;
    const double a = (s.r1 - s.r0) / (s.t1 - s.t0);
    // Solve a x^2 / 2 + r0 x = m in the stable form x = 2m / (r0 + sqrt(r0^2 + 2am)).
    const double disc = std::max(0.0, s.r0 * s.r0 + 2 * a * m);
    const double denom = s.r0 + std::sqrt(disc);
    const double x = denom > 0 ? 2 * m / denom : 0;
    return std::clamp(s.t0 + x, s.t0, s.t1);
  }
  return std::nullopt;
}

ArrivalSchedule::ArrivalSchedule(RateProfile profile, Distribution distribution, uint64_t seed)
    : profile_(std::move(profile)), distribution_(distribution), rng_(seed) {}

std::optional<double> ArrivalSchedule::Next() {
  double gap = 0;
  if (distribution_ == Distribution::kPoisson) {
    gap = -std::log1p(-UnitUniform(rng_));  // Exp(1)
  } else {
    // Unit gaps; the first after a random phase so that independent
    // schedules (workers, loops) do not fire in lockstep.
    gap = started_ ? 1.0 : UnitUniform(rng_);
  }
  started_ = true;
  mass_ += gap;
  return profile_.Inverse(mass_);
}

}  // namespace llmload::load
