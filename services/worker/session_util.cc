#include "services/worker/session_util.h"

#include <algorithm>
#include <random>

#include "absl/time/time.h"

namespace llmload::worker {

std::chrono::milliseconds DurationOr(const google::protobuf::Duration& d, bool has,
                                     std::chrono::milliseconds fallback) {
  if (!has) {
    return fallback;
  }
  const int64_t ms = d.seconds() * 1000 + d.nanos() / 1000000;
  return ms > 0 ? std::chrono::milliseconds(ms) : fallback;
}

std::chrono::milliseconds BackoffDelay(std::chrono::milliseconds base, int attempt, uint64_t salt) {
  std::minstd_rand rng(static_cast<uint32_t>(salt * 2654435761u + static_cast<uint64_t>(attempt)));
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  const auto raw = base * (int64_t{1} << std::clamp(attempt, 0, 10));
  return std::chrono::duration_cast<std::chrono::milliseconds>(raw * jitter(rng));
}

void RecordTokenGaps(metrics::MetricSet& m, const std::vector<uint32_t>& gaps, uint64_t tokens,
                     uint64_t chunks) {
  if (gaps.empty()) {
    return;
  }
  if (tokens <= chunks || chunks == 0) {
    for (uint32_t g : gaps) {
      m.RecordUs(v1::ITL, g);
    }
    return;
  }
  const double per_chunk = static_cast<double>(tokens) / static_cast<double>(chunks);
  const auto reps = static_cast<uint64_t>(per_chunk + 0.5);
  for (uint32_t g : gaps) {
    m.Hist(v1::ITL).Record(static_cast<uint64_t>(static_cast<double>(g) / per_chunk), reps);
  }
}

void RequestMeter::Prepare(const NextStep& step) {
  intended_ = step.intended;
  from_intended_ = step.from_intended;
  turn_ = step.turn;
  cancel_tokens_ = step.cancel_after_tokens;
  cancel_after_ = step.cancel_after;
}

void RequestMeter::Begin(Clock::time_point send_at) {
  send_at_ = send_at;
  chunks_ = 0;
  input_estimate_ = 0;
  input_reported_ = -1;
  gaps_.clear();
  cancel_at_ = cancel_after_ > Clock::duration::zero() ? send_at + cancel_after_
                                                        : Clock::time_point::max();
}

bool RequestMeter::Chunk(metrics::MetricSet& m, Clock::time_point now, bool record_gap) {
  const bool first = chunks_ == 0;
  if (first) {
    first_at_ = now;
    m.RecordUs(v1::TTFT, Micros(now - origin()));
    if (from_intended_) {
      m.RecordUs(v1::TTFT_SERVICE, Micros(now - send_at_));
    }
  } else if (record_gap) {
    const uint64_t gap = Micros(now - last_at_);
    m.RecordUs(v1::CHUNK_GAP, gap);
    if (gaps_.size() < (1u << 16)) {
      // 32 bits of microseconds hold gaps of over an hour.
      gaps_.push_back(static_cast<uint32_t>(std::min<uint64_t>(gap, UINT32_MAX)));
    }
  }
  last_at_ = now;
  ++chunks_;
  return first;
}

RequestPrompt PromptFor(const ShardSettings& s, int32_t client_id, int64_t request,
                        bool whole_conversation, std::string_view fallback) {
  const v1::Target& t = s.spec.target();
  RequestPrompt out;
  out.text = fallback;
  if (!t.prompt().empty()) {
    out.text = t.prompt();
    out.from_spec = true;
  }
  out.max_tokens = std::max(0, t.max_tokens());
  out.length_words = s.spec.emulation().length_words();
  if (!s.prompts.has_value()) {
    out.estimated_input_tokens = load::EstimateInputTokens(out.text.size());
    return out;
  }
  const load::PromptPick pick = s.prompts->Pick(client_id, request);
  out.max_tokens = pick.max_tokens;
  if (s.prompts->drawn_max_tokens()) {
    out.length_words = pick.max_tokens;
  }
  uint64_t bytes = 0;
  if (pick.entry >= 0 && t.prompt_messages_size() > 0) {
    const v1::PromptConversation& c = t.prompt_messages(pick.entry);
    out.conversation = &c;
    out.from_spec = true;
    for (const v1::PromptMessage& m : c.messages()) {
      if (m.role() == "user") {
        out.text = m.content();
      }
      bytes += m.content().size();
    }
    if (!whole_conversation) {
      bytes = out.text.size();
    }
  } else if (pick.entry >= 0 && pick.entry < t.prompts_size()) {
    out.text = t.prompts(pick.entry);
    out.from_spec = true;
    bytes = out.text.size();
  } else if (pick.words > 0) {
    out.text = s.prompts->SyntheticText(pick);
    out.from_spec = true;
    bytes = out.text.size();
  } else {
    bytes = out.text.size();
  }
  out.estimated_input_tokens = load::EstimateInputTokens(bytes);
  return out;
}

RequestOutcome RequestMeter::Complete(metrics::MetricSet& m, Clock::time_point done_at,
                                      int64_t reported_tokens, bool count_chunks) {
  const uint64_t tokens = reported_tokens >= 0 ? static_cast<uint64_t>(reported_tokens) : chunks_;
  RecordTokenGaps(m, gaps_, tokens, chunks_);
  if (gaps_.capacity() > 64) {
    std::vector<uint32_t>().swap(gaps_);  // an idle session keeps no long response's gaps
  }
  m.RecordUs(v1::E2E, Micros(done_at - origin()));
  if (from_intended_) {
    m.RecordUs(v1::E2E_SERVICE, Micros(done_at - send_at_));
  }
  if (chunks_ > 0 && tokens > 1) {
    // tpot = (e2e - ttft) / (tokens - 1)
    m.RecordUs(v1::TPOT, Micros(done_at - first_at_) / (tokens - 1));
  }
  m.Add(v1::TOKENS, tokens);
  const uint64_t input =
      static_cast<uint64_t>(input_reported_ >= 0 ? input_reported_ : input_estimate_);
  m.Add(v1::INPUT_TOKENS, input);
  if (input_reported_ < 0) {
    m.Add(v1::INPUT_TOKENS_ESTIMATED, input);
  }
  if (turn_ > 0) {
    m.Turns().Complete(turn_, chunks_ > 0 ? Micros(first_at_ - origin()) : 0, chunks_ > 0, input,
                       tokens);
  }
  if (count_chunks) {
    m.Add(v1::CHUNKS, chunks_);
  }
  m.Add(v1::REQUESTS_OK);
  m.Add(v1::CYCLES);
  RequestOutcome out;
  out.ok = true;
  out.ttft_us = chunks_ > 0 ? Micros(first_at_ - origin()) : 0;
  out.e2e_us = Micros(done_at - origin());
  out.tokens = tokens;
  out.mean_itl_us = chunks_ > 0 && tokens > 1 ? Micros(last_at_ - first_at_) / (tokens - 1) : 0;
  out.counter = v1::REQUESTS_OK;
  out.chunks = chunks_;
  out.sent_at = send_at_;
  out.input_tokens = input;
  out.turn = turn_;
  return out;
}

RequestOutcome RequestMeter::Abandon(metrics::MetricSet& m, Clock::time_point now) {
  RecordTokenGaps(m, gaps_, chunks_, chunks_);
  if (gaps_.capacity() > 64) {
    std::vector<uint32_t>().swap(gaps_);
  }
  m.Add(v1::TOKENS, chunks_);
  m.Add(v1::CHUNKS, chunks_);
  m.Add(v1::REQUESTS_CANCELLED);
  m.Add(v1::CYCLES);
  RequestOutcome out;
  out.ttft_us = chunks_ > 0 ? Micros(first_at_ - origin()) : 0;
  out.e2e_us = Micros(now - origin());
  out.tokens = chunks_;
  out.counter = v1::REQUESTS_CANCELLED;
  out.chunks = chunks_;
  out.sent_at = send_at_;
  return out;
}

RequestOutcome RequestMeter::Fail(metrics::MetricSet& m, v1::Counter counter) {
  m.Add(counter);
  m.Add(v1::CYCLES);
  RequestOutcome out;
  out.counter = counter;
  return out;
}

}  // namespace llmload::worker
