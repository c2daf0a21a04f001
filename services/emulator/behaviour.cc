#include "services/emulator/behaviour.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"
#include "services/emulator/config.h"
#include "services/emulator/lorem.h"

namespace llmload::emulator {
namespace {

// SplitMix64's finaliser: a strong 64-bit mixer, identical on every platform.
uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

bool InRange(double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; }

std::chrono::nanoseconds ToNanos(double seconds) {
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(seconds * 1e9)));
}

constexpr uint64_t kFaultStream = 0;

}  // namespace

std::string_view FaultName(Fault fault) {
  switch (fault) {
    case Fault::kNone:
      return "none";
    case Fault::kHttp500:
      return "500";
    case Fault::kHttp429:
      return "429";
    case Fault::kErrorEvent:
      return "error_event";
    case Fault::kDisconnect:
      return "disconnect";
    case Fault::kMalformed:
      return "malformed";
  }
  return "none";
}

std::optional<Fault> ParseFault(std::string_view name) {
  if (name == "none" || name.empty()) {
    return Fault::kNone;
  }
  if (name == "500" || name == "http_500") {
    return Fault::kHttp500;
  }
  if (name == "429" || name == "http_429") {
    return Fault::kHttp429;
  }
  if (name == "error_event") {
    return Fault::kErrorEvent;
  }
  if (name == "disconnect") {
    return Fault::kDisconnect;
  }
  if (name == "malformed") {
    return Fault::kMalformed;
  }
  return std::nullopt;
}

std::string_view DelayDistributionName(DelayDistribution d) {
  switch (d) {
    case DelayDistribution::kFixed:
      return "fixed";
    case DelayDistribution::kUniform:
      return "uniform";
    case DelayDistribution::kLogNormal:
      return "lognormal";
  }
  return "fixed";
}

std::optional<DelayDistribution> ParseDelayDistribution(std::string_view name) {
  if (name == "fixed") {
    return DelayDistribution::kFixed;
  }
  if (name == "uniform") {
    return DelayDistribution::kUniform;
  }
  if (name == "lognormal" || name == "log-normal" || name == "log_normal") {
    return DelayDistribution::kLogNormal;
  }
  return std::nullopt;
}

std::string_view ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kCentrifugo:
      return "CENTRIFUGO_EMULATOR";
    case Protocol::kRealm:
      return "REALM";
    case Protocol::kWsChat:
      return "WS_CHAT";
    case Protocol::kOpenAiChat:
      return "OPENAI_CHAT";
    case Protocol::kAnthropic:
      return "ANTHROPIC_MESSAGES";
    case Protocol::kGemini:
      return "GEMINI";
    case Protocol::kHttpJson:
      return "HTTP_JSON";
    case Protocol::kOpenAiResponses:
      return "OPENAI_RESPONSES";
  }
  return "";
}

absl::Status ValidateBehaviour(const BehaviourConfig& c) {
  if (c.length_words < kMinLengthWords || c.length_words > kMaxLengthWords) {
    return absl::InvalidArgumentError(absl::StrCat("length_words: must be in [", kMinLengthWords,
                                                   ", ", kMaxLengthWords, "], got ",
                                                   c.length_words));
  }
  if (!InRange(c.token_delay_seconds, 0.0, kMaxTokenDelaySeconds)) {
    return absl::InvalidArgumentError(absl::StrCat("token_delay_seconds: must be in [0, ",
                                                   kMaxTokenDelaySeconds, "], got ",
                                                   c.token_delay_seconds));
  }
  if (!InRange(c.ttft_seconds, 0.0, kMaxTokenDelaySeconds)) {
    return absl::InvalidArgumentError(absl::StrCat("ttft_seconds: must be in [0, ",
                                                   kMaxTokenDelaySeconds, "], got ",
                                                   c.ttft_seconds));
  }
  if (!InRange(c.token_delay_spread_seconds, 0.0, kMaxTokenDelaySeconds)) {
    return absl::InvalidArgumentError(absl::StrCat("token_delay_spread_seconds: must be in [0, ",
                                                   kMaxTokenDelaySeconds, "], got ",
                                                   c.token_delay_spread_seconds));
  }
  const std::pair<const char*, double> rates[] = {
      {"fault_http_500", c.faults.http_500},       {"fault_http_429", c.faults.http_429},
      {"fault_error_event", c.faults.error_event}, {"fault_disconnect", c.faults.disconnect},
      {"fault_malformed", c.faults.malformed},
  };
  double sum = 0;
  for (const auto& [name, rate] : rates) {
    if (!InRange(rate, 0.0, 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": must be a probability in [0, 1], got ", rate));
    }
    sum += rate;
  }
  if (sum > 1.0 + 1e-9) {
    return absl::InvalidArgumentError(
        absl::StrCat("fault rates: must add up to at most 1, got ", sum));
  }
  if (c.retry_after_seconds < 0 || c.retry_after_seconds > 3600) {
    return absl::InvalidArgumentError(absl::StrCat("retry_after_seconds: must be in [0, 3600], got ",
                                                   c.retry_after_seconds));
  }
  return absl::OkStatus();
}

double UnitRandom(uint64_t seed, Protocol protocol, uint64_t index, uint64_t stream) {
  uint64_t h = Mix(seed ^ 0x6c6c6d6c6f616421ULL);
  h = Mix(h ^ ((static_cast<uint64_t>(protocol) + 1) * 0xd6e8feb86659fd93ULL));
  h = Mix(h ^ index);
  h = Mix(h ^ (stream * 0xc2b2ae3d27d4eb4fULL));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

double SampleDelaySeconds(DelayDistribution d, double mean, double spread, double u1, double u2) {
  if (mean <= 0 && d != DelayDistribution::kUniform) {
    return 0;
  }
  double x = mean;
  switch (d) {
    case DelayDistribution::kFixed:
      break;
    case DelayDistribution::kUniform: {
      // A uniform distribution with standard deviation `spread`.
      const double half = spread * std::sqrt(3.0);
      x = mean - half + 2 * half * u1;
      break;
    }
    case DelayDistribution::kLogNormal: {
      if (spread <= 0) {
        break;
      }
      // Parameters of the underlying normal giving this mean and deviation.
      const double sigma2 = std::log1p((spread * spread) / (mean * mean));
      const double mu = std::log(mean) - sigma2 / 2;
      const double z =
          std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(2 * std::numbers::pi * u2);  // Box–Muller
      x = std::exp(mu + std::sqrt(sigma2) * z);
      break;
    }
  }
  return std::clamp(x, 0.0, kMaxTokenDelaySeconds);
}

std::chrono::nanoseconds ResponsePlan::OffsetOf(size_t i) const {
  if (offsets.empty()) {
    return std::chrono::nanoseconds(0);
  }
  return offsets[std::min(i, offsets.size() - 1)];
}

std::chrono::nanoseconds ResponsePlan::GenerationTime() const {
  return tokens.empty() ? std::chrono::nanoseconds(0) : OffsetOf(tokens.size() - 1);
}

ResponsePlan MakePlan(const BehaviourConfig& config, Protocol protocol, uint64_t index,
                      std::string_view prompt, const RequestOverrides& overrides) {
  ResponsePlan plan;
  plan.request_index = index;
  const int32_t words =
      std::clamp(overrides.length_words.value_or(config.length_words), kMinLengthWords,
                 kMaxLengthWords);
  LoremText lorem = GenerateLorem(config.seed, prompt, words);
  plan.tokens = std::move(lorem.tokens);
  plan.text = std::move(lorem.text);
  const size_t n = plan.tokens.size();
  plan.fault_at = (n + 1) / 2;

  if (overrides.fault.has_value()) {
    plan.fault = *overrides.fault;
  } else {
    const FaultRates& r = config.faults;
    const double u = UnitRandom(config.seed, protocol, index, kFaultStream);
    const std::pair<double, Fault> classes[] = {
        {r.http_500, Fault::kHttp500},       {r.http_429, Fault::kHttp429},
        {r.error_event, Fault::kErrorEvent}, {r.disconnect, Fault::kDisconnect},
        {r.malformed, Fault::kMalformed},
    };
    double edge = 0;
    for (const auto& [rate, fault] : classes) {
      edge += rate;
      if (rate > 0 && u < edge) {
        plan.fault = fault;
        break;
      }
    }
  }

  const double mean = std::clamp(overrides.token_delay_seconds.value_or(config.token_delay_seconds),
                                 0.0, kMaxTokenDelaySeconds);
  const double ttft =
      std::clamp(overrides.ttft_seconds.value_or(config.ttft_seconds), 0.0, kMaxTokenDelaySeconds);
  plan.offsets.resize(n + 1);
  plan.offsets[0] = ToNanos(ttft);
  const bool fixed = config.distribution == DelayDistribution::kFixed ||
                     config.token_delay_spread_seconds <= 0;
  const std::chrono::nanoseconds fixed_gap = ToNanos(mean);
  for (size_t i = 1; i <= n; ++i) {
    std::chrono::nanoseconds gap = fixed_gap;
    if (!fixed) {
      const double u1 = UnitRandom(config.seed, protocol, index, 2 * i + 1);
      const double u2 = UnitRandom(config.seed, protocol, index, 2 * i + 2);
      gap = ToNanos(SampleDelaySeconds(config.distribution, mean,
                                       config.token_delay_spread_seconds, u1, u2));
    }
    plan.offsets[i] = plan.offsets[i - 1] + gap;
  }
  return plan;
}

ResponsePlan Behaviour::Plan(Protocol protocol, std::string_view prompt,
                             const RequestOverrides& overrides) {
  const uint64_t n =
      counters_[static_cast<size_t>(protocol)].fetch_add(1, std::memory_order_relaxed);
  const uint64_t index = first_index_ + n * stride_;
  ResponsePlan plan = MakePlan(config_, protocol, index, prompt, overrides);
  plan.protocol = protocol;
  plan.origin = this;
  return plan;
}

void ResponsePlan::ClientLeft() const {
  if (origin != nullptr) {
    origin->CountAbandoned(protocol);
  }
}

void ResponsePlan::TokenSent(size_t i, std::chrono::steady_clock::time_point sent) {
  if (origin != nullptr && i != previous_token_) {
    origin->CountTokenSent(protocol);
  }
  // Only consecutive tokens make a gap.
  if (previous_token_ != SIZE_MAX && i == previous_token_ + 1 && origin != nullptr) {
    origin->token_gaps().Record(static_cast<size_t>(protocol), sent - previous_token_sent_);
  }
  previous_token_sent_ = sent;
  previous_token_ = i;
}

}  // namespace llmload::emulator
