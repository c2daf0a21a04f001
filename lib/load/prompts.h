// File: prompts.h
//
// What each request of a run asks: which dataset entry (spec.target.prompts
// or promptMessages, cycled or drawn with a seed), how many words of
// synthetic prompt (spec.target.inputLength) and which max_tokens
// (spec.target.outputLength, else maxTokens).
//
// Every draw is a pure function of (promptSeed, client id, request number),
// so the same spec sends the same requests whatever the number of workers or
// the timing:
//
//   PromptPlan plan(spec.target());            // once per shard
//   PromptPick p = plan.Pick(client_id, 3);    // per request: no allocation
//   std::string_view text = plan.SyntheticText(p);
//
// The synthetic text is built once (filler words; the emulator counts one
// token per word); a pick is a view into it, so requests allocate nothing
// beyond the body they send.
//
// Thread-safe (immutable after construction). The distributions must have
// passed ValidateRunSpec; out-of-range parameters are clipped, never UB.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "llmload/v1/run.pb.h"

namespace llmload::load {

// Bounds of every drawn length (prompt words, max_tokens).
inline constexpr int32_t kMinDrawnLength = 1;
inline constexpr int32_t kMaxDrawnLength = 100000;

// A uniform 64-bit value from (seed, client id, request number, stream):
// the only randomness of prompt selection. `stream` separates independent
// draws of one request (entry, input length, output length, text offset).
uint64_t RequestHash(uint64_t seed, int32_t client_id, int64_t request, uint64_t stream);

// One length distribution (LengthDistribution in run.proto), sampled per
// request. Disabled when the kind is unset.
class LengthSampler {
 public:
  LengthSampler() = default;
  explicit LengthSampler(const v1::LengthDistribution& d, uint64_t stream);

  bool enabled() const { return kind_ != v1::LENGTH_KIND_UNSPECIFIED; }
  // The length of request `request` (1-based) of client `client_id`, in
  // [lo(), hi()].
  int32_t Sample(uint64_t seed, int32_t client_id, int64_t request) const;
  // The same from two uniforms in (0, 1) (what Sample derives from the hash).
  int32_t FromUniforms(double u1, double u2) const;
  int32_t lo() const { return lo_; }
  int32_t hi() const { return hi_; }

 private:
  v1::LengthKind kind_ = v1::LENGTH_KIND_UNSPECIFIED;
  uint64_t stream_ = 0;
  int32_t lo_ = kMinDrawnLength;
  int32_t hi_ = kMaxDrawnLength;
  double mean_ = 0;
  double stddev_ = 0;
  // LENGTH_LOGNORMAL: parameters of the underlying normal.
  double mu_ = 0;
  double sigma_ = 0;
};

struct PromptPick {
  int32_t entry = -1;         // index into prompts / promptMessages; -1: none
  int32_t words = 0;          // synthetic prompt words; 0: no synthetic prompt
  int32_t first_word = 0;     // where the synthetic words start in the filler
  int32_t max_tokens = 0;     // 0: none sent (the target's default)
};

class PromptPlan {
 public:
  explicit PromptPlan(const v1::Target& target);

  PromptPick Pick(int32_t client_id, int64_t request) const;
  // Words [first_word, first_word + words) of the filler text; empty when
  // the pick has no synthetic prompt.
  std::string_view SyntheticText(const PromptPick& pick) const;
  // The number of dataset entries (prompts or promptMessages).
  int32_t entries() const { return entries_; }
  bool synthetic() const { return input_.enabled(); }
  // max_tokens comes from outputLength.
  bool drawn_max_tokens() const { return output_.enabled(); }

 private:
  uint64_t seed_;
  bool random_;
  int32_t entries_;
  int32_t max_tokens_;
  LengthSampler input_;
  LengthSampler output_;
  std::string filler_;
  std::vector<uint32_t> word_starts_;  // filler_ offset of each word, plus one past the end
};

// The input tokens of a prompt a target did not count: ceil(bytes / 4), the
// usual rule of thumb for English text with BPE tokenizers.
inline int64_t EstimateInputTokens(uint64_t prompt_bytes) {
  return static_cast<int64_t>((prompt_bytes + 3) / 4);
}

}  // namespace llmload::load
