#include "lib/load/prompts.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>

namespace llmload::load {
namespace {

// Independent draws of one request.
constexpr uint64_t kEntryStream = 1;
constexpr uint64_t kInputStream = 2;
constexpr uint64_t kOutputStream = 3;
constexpr uint64_t kOffsetStream = 4;

// Synthetic prompts start at one of this many words of the filler, so that
// requests of the same length do not all send the same text (a server's
// prompt cache would otherwise flatter it).
constexpr int32_t kFillerStarts = 997;

constexpr std::array<std::string_view, 48> kVocabulary = {
    "the",     "system",  "request", "token",   "stream",  "latency", "model",   "answer",
    "question", "server", "client",  "measure", "window",  "queue",   "memory",  "cluster",
    "network", "packet",  "worker",  "report",  "value",   "result",  "simple",  "careful",
    "quick",   "slow",    "large",   "small",   "every",   "other",   "first",   "second",
    "please",  "explain", "describe", "compare", "summarize", "why",  "how",     "when",
    "data",    "load",    "test",    "limit",   "rate",    "time",    "input",   "output"};

uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// A double in (0, 1) from 53 bits of h.
double Unit(uint64_t h) { return (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53; }

int32_t Clip(double v, int32_t lo, int32_t hi) {
  if (!(v >= lo)) {  // also NaN
    return lo;
  }
  if (v >= hi) {
    return hi;
  }
  return static_cast<int32_t>(std::llround(v));
}

int32_t Bound(int32_t v) { return std::clamp(v, kMinDrawnLength, kMaxDrawnLength); }

}  // namespace

uint64_t RequestHash(uint64_t seed, int32_t client_id, int64_t request, uint64_t stream) {
  uint64_t h = Mix(seed ^ Mix(stream));
  h = Mix(h ^ static_cast<uint64_t>(static_cast<uint32_t>(client_id)));
  return Mix(h ^ static_cast<uint64_t>(request));
}

LengthSampler::LengthSampler(const v1::LengthDistribution& d, uint64_t stream)
    : kind_(d.kind()), stream_(stream), mean_(d.mean()), stddev_(std::max(0.0, d.stddev())) {
  switch (kind_) {
    case v1::LENGTH_FIXED:
      lo_ = hi_ = Bound(d.value());
      break;
    case v1::LENGTH_UNIFORM:
      lo_ = Bound(d.min());
      hi_ = std::max(lo_, Bound(d.max()));
      break;
    case v1::LENGTH_NORMAL:
    case v1::LENGTH_LOGNORMAL:
      lo_ = d.min() > 0 ? Bound(d.min()) : kMinDrawnLength;
      hi_ = d.max() > 0 ? std::max(lo_, Bound(d.max())) : kMaxDrawnLength;
      if (kind_ == v1::LENGTH_LOGNORMAL && mean_ > 0) {
        // The lengths' own mean m and stddev s give the log's parameters:
        // sigma^2 = ln(1 + s^2/m^2), mu = ln(m) - sigma^2/2.
        const double var = std::log1p((stddev_ * stddev_) / (mean_ * mean_));
        sigma_ = std::sqrt(var);
        mu_ = std::log(mean_) - var / 2;
      }
      break;
    default:
      kind_ = v1::LENGTH_KIND_UNSPECIFIED;
      break;
  }
}

int32_t LengthSampler::FromUniforms(double u1, double u2) const {
  switch (kind_) {
    case v1::LENGTH_FIXED:
      return lo_;
    case v1::LENGTH_UNIFORM: {
      const int64_t span = static_cast<int64_t>(hi_) - lo_ + 1;
      const int64_t k = std::min<int64_t>(span - 1, static_cast<int64_t>(u1 * span));
      return static_cast<int32_t>(lo_ + k);
    }
    case v1::LENGTH_NORMAL:
    case v1::LENGTH_LOGNORMAL: {
      // Box-Muller: one standard normal from two uniforms.
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
      const double v = kind_ == v1::LENGTH_NORMAL ? mean_ + stddev_ * z : std::exp(mu_ + sigma_ * z);
      return Clip(v, lo_, hi_);
    }
    default:
      return 0;
  }
}

int32_t LengthSampler::Sample(uint64_t seed, int32_t client_id, int64_t request) const {
  if (!enabled()) {
    return 0;
  }
  const uint64_t h = RequestHash(seed, client_id, request, stream_);
  return FromUniforms(Unit(h), Unit(Mix(h)));
}

PromptPlan::PromptPlan(const v1::Target& target)
    : seed_(target.prompt_seed()),
      random_(target.prompt_order() == v1::PROMPT_ORDER_RANDOM),
      entries_(target.prompt_messages_size() > 0 ? target.prompt_messages_size()
                                                 : target.prompts_size()),
      max_tokens_(std::max(0, target.max_tokens())),
      input_(target.input_length(), kInputStream),
      output_(target.output_length(), kOutputStream) {
  if (!input_.enabled()) {
    return;
  }
  const int32_t words = input_.hi() + kFillerStarts;
  word_starts_.reserve(static_cast<size_t>(words) + 1);
  filler_.reserve(static_cast<size_t>(words) * 8);
  for (int32_t i = 0; i < words; ++i) {
    word_starts_.push_back(static_cast<uint32_t>(filler_.size()));
    filler_.append(kVocabulary[Mix(static_cast<uint64_t>(i)) % kVocabulary.size()]);
    filler_.push_back(' ');
  }
  word_starts_.push_back(static_cast<uint32_t>(filler_.size()));
}

PromptPick PromptPlan::Pick(int32_t client_id, int64_t request) const {
  PromptPick p;
  if (entries_ > 0) {
    if (random_) {
      p.entry = static_cast<int32_t>(RequestHash(seed_, client_id, request, kEntryStream) %
                                     static_cast<uint64_t>(entries_));
    } else {
      // Today's cycling (client id + request number - 1), kept exactly.
      const int64_t k = (static_cast<int64_t>(client_id) + request - 1) % entries_;
      p.entry = static_cast<int32_t>(k < 0 ? k + entries_ : k);
    }
  }
  if (input_.enabled()) {
    p.words = input_.Sample(seed_, client_id, request);
    p.first_word = static_cast<int32_t>(RequestHash(seed_, client_id, request, kOffsetStream) %
                                        kFillerStarts);
  }
  p.max_tokens = output_.enabled() ? output_.Sample(seed_, client_id, request) : max_tokens_;
  return p;
}

std::string_view PromptPlan::SyntheticText(const PromptPick& pick) const {
  if (pick.words <= 0 || word_starts_.empty()) {
    return {};
  }
  const size_t first = static_cast<size_t>(pick.first_word);
  const size_t last = std::min(first + static_cast<size_t>(pick.words), word_starts_.size() - 1);
  const uint32_t begin = word_starts_[first];
  const uint32_t end = word_starts_[last] - 1;  // without the trailing space
  return std::string_view(filler_).substr(begin, end - begin);
}

}  // namespace llmload::load
