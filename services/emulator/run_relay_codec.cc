#include "services/emulator/run_relay_codec.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace llmload::emulator {
namespace {

constexpr uint8_t kKindRun = 1;

void PutU8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }

void PutU32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

void PutU64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

void PutBytes(std::string* out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s.data(), s.size());
}

// Reads big-endian fields off the front of a payload; any short read leaves
// it failed for good.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool ok() const { return ok_; }
  size_t left() const { return in_.size(); }

  uint64_t Uint(size_t bytes) {
    if (!ok_ || in_.size() < bytes) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; ++i) {
      v = (v << 8) | static_cast<uint8_t>(in_[i]);
    }
    in_.remove_prefix(bytes);
    return v;
  }

  std::string_view Bytes() {
    const uint64_t n = Uint(4);
    if (!ok_ || in_.size() < n) {
      ok_ = false;
      return {};
    }
    std::string_view s = in_.substr(0, n);
    in_.remove_prefix(n);
    return s;
  }

 private:
  std::string_view in_;
  bool ok_ = true;
};

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("relayed run: ", absl::string_view(what.data(), what.size())));
}

}  // namespace

std::string EncodeRunFrame(std::string_view session_id, const ResponsePlan& plan) {
  size_t size = 1 + 8 + 1 + 4 + 4 + session_id.size() + 4 + 4 + plan.offsets.size() * 8;
  for (const std::string& t : plan.tokens) {
    size += 4 + t.size();
  }
  std::string out;
  out.reserve(kRelayHeaderBytes + size);
  PutU32(&out, static_cast<uint32_t>(size));
  PutU8(&out, kKindRun);
  PutU64(&out, plan.request_index);
  PutU8(&out, static_cast<uint8_t>(plan.fault));
  PutU32(&out, static_cast<uint32_t>(plan.fault_at));
  PutBytes(&out, session_id);
  PutU32(&out, static_cast<uint32_t>(plan.tokens.size()));
  for (const std::string& t : plan.tokens) {
    PutBytes(&out, t);
  }
  PutU32(&out, static_cast<uint32_t>(plan.offsets.size()));
  for (std::chrono::nanoseconds o : plan.offsets) {
    PutU64(&out, static_cast<uint64_t>(o.count()));
  }
  return out;
}

uint32_t DecodeFrameLength(std::string_view header) {
  Reader r(header);
  return static_cast<uint32_t>(r.Uint(kRelayHeaderBytes));
}

absl::StatusOr<RelayedRun> DecodeRunPayload(std::string_view payload) {
  if (payload.size() > kMaxRelayPayloadBytes) {
    return Malformed("payload too large");
  }
  Reader r(payload);
  if (r.Uint(1) != kKindRun) {
    return Malformed(r.ok() ? "unknown kind" : "truncated");
  }
  RelayedRun run;
  run.plan.request_index = r.Uint(8);
  const uint64_t fault = r.Uint(1);
  if (fault > static_cast<uint64_t>(Fault::kMalformed)) {
    return Malformed("unknown fault");
  }
  run.plan.fault = static_cast<Fault>(fault);
  run.plan.fault_at = static_cast<size_t>(r.Uint(4));
  run.session_id = std::string(r.Bytes());
  // Every token takes at least its 4-byte length: a count beyond what is
  // left is a lie, refused before anything is reserved for it.
  const uint64_t tokens = r.Uint(4);
  if (!r.ok() || tokens > r.left() / 4) {
    return Malformed("truncated");
  }
  run.plan.tokens.reserve(tokens);
  for (uint64_t i = 0; i < tokens && r.ok(); ++i) {
    run.plan.tokens.emplace_back(r.Bytes());
  }
  const uint64_t offsets = r.Uint(4);
  if (!r.ok() || offsets > r.left() / 8) {
    return Malformed("truncated");
  }
  if (offsets != 0 && offsets != tokens + 1) {
    return Malformed("offsets do not go with the tokens");
  }
  run.plan.offsets.reserve(offsets);
  int64_t previous = 0;
  for (uint64_t i = 0; i < offsets; ++i) {
    const auto o = static_cast<int64_t>(r.Uint(8));
    if (o < previous) {
      return Malformed("offsets must not decrease");
    }
    previous = o;
    run.plan.offsets.emplace_back(o);
  }
  if (!r.ok()) {
    return Malformed("truncated");
  }
  if (r.left() != 0) {
    return Malformed("trailing bytes");
  }
  for (size_t i = 0; i < run.plan.tokens.size(); ++i) {
    if (i > 0) {
      run.plan.text.push_back(' ');
    }
    run.plan.text += run.plan.tokens[i];
  }
  return run;
}

}  // namespace llmload::emulator
