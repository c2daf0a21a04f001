// Fuzz target: a run spec as it reaches the orchestrator, from `llmload run
// -f` / grpcurl JSON text or as StartRun's protobuf bytes, through
// validation, defaults and planning (lib/validation, lib/planning).
//
// Properties checked on every input:
// - nothing crashes, hangs or trips ASan/UBSan, and no input makes the
//   planner allocate beyond libFuzzer's -malloc_limit_mb (scripts/fuzz.sh);
// - a spec that validates still validates after ApplyDefaults, and
//   ApplyDefaults is idempotent;
// - a valid spec plans over a fixed set of workers, or is refused with an
//   error (never a crash); an accepted closed or duration plan puts every
//   client id on exactly one shard with 1 <= max_concurrent <= client_count,
//   and an accepted open plan splits the rate with shares summing to 1.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "lib/load/prompts.h"
#include "lib/planning/planning.h"
#include "lib/validation/validation.h"
#include "llmload/v1/orchestrator.pb.h"
#include "llmload/v1/run.pb.h"

namespace {

using llmload::planning::ShardPlan;
using llmload::planning::WorkerCapacity;
namespace v1 = llmload::v1;

void Check(bool ok, const char* property) {
  if (!ok) {
    std::fprintf(stderr, "run_spec_fuzz: property violated: %s\n", property);
    std::abort();
  }
}

// Uneven capacities, as in a real fleet, so that proportional splits and
// the "most capacity first" choice are exercised.
const std::vector<WorkerCapacity>& Workers() {
  static const std::vector<WorkerCapacity> workers = {
      {"w-a", 9000}, {"w-b", 1}, {"w-c", 250}, {"w-d", 9000}};
  return workers;
}

// The message's bytes with map entries in key order. Plain serialization
// writes a map in its hash order, which two equal copies need not share (the
// labels {"m", "pr"} came out in different orders once ApplyDefaults had
// copied the spec), so only these bytes can tell equal specs apart.
std::string DeterministicBytes(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

void CheckPlan(const v1::RunSpec& spec, const std::vector<ShardPlan>& plan) {
  Check(!plan.empty(), "an accepted plan has a shard");
  Check(plan.size() <= Workers().size(), "at most one shard per worker");
  if (spec.load().has_open()) {
    double shares = 0;
    for (const ShardPlan& s : plan) {
      Check(s.rate_share > 0 && s.rate_share <= 1, "each open shard's share in (0, 1]");
      shares += s.rate_share;
    }
    Check(std::abs(shares - 1.0) < 1e-6, "open shares sum to 1");
    return;
  }
  int64_t next = 0;
  for (const ShardPlan& s : plan) {
    Check(s.client_begin == next, "client ranges contiguous from 0");
    Check(s.client_count >= 1, "each shard has a client");
    Check(s.max_concurrent >= 1 && s.max_concurrent <= s.client_count,
          "1 <= max_concurrent <= client_count");
    next += s.client_count;
  }
  const int64_t clients = spec.load().has_closed() ? spec.load().closed().clients()
                                                   : spec.load().duration().connections();
  Check(next == clients, "every client id on exactly one shard");
}

// Every pick of a valid spec's prompt plan stays inside the dataset and the
// length bounds.
void CheckPrompts(const v1::Target& target) {
  const llmload::load::PromptPlan prompts(target);
  for (int32_t client = 0; client < 3; ++client) {
    for (int64_t request = 1; request <= 3; ++request) {
      const llmload::load::PromptPick p = prompts.Pick(client, request);
      Check(p.entry < prompts.entries(), "prompt entry inside the dataset");
      Check(prompts.entries() == 0 || p.entry >= 0, "a dataset entry for every request");
      Check(p.words >= 0 && p.words <= llmload::load::kMaxDrawnLength, "input length in bounds");
      Check(p.max_tokens >= 0, "max_tokens not negative");
      Check(prompts.SyntheticText(p).size() >= static_cast<size_t>(p.words) * 2 - (p.words > 0),
            "synthetic text holds its words");
    }
  }
}

void Exercise(v1::RunSpec spec) {
  if (!llmload::validation::ValidateRunSpec(spec).ok()) {
    return;
  }
  llmload::validation::ApplyDefaults(&spec);
  Check(llmload::validation::ValidateRunSpec(spec).ok(), "defaults keep a valid spec valid");
  v1::RunSpec again = spec;
  llmload::validation::ApplyDefaults(&again);
  Check(DeterministicBytes(again) == DeterministicBytes(spec), "ApplyDefaults is idempotent");
  absl::StatusOr<std::vector<ShardPlan>> plan = llmload::planning::PlanForSpec(spec, Workers());
  if (plan.ok()) {
    CheckPlan(spec, *plan);
  }
  CheckPrompts(spec.target());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // JSON text: a StartRunRequest ({"spec": ...}, the examples' shape) or a
  // bare RunSpec, as `llmload run -f` reads it.
  v1::StartRunRequest request;
  if (google::protobuf::util::JsonStringToMessage(text, &request).ok()) {
    Exercise(request.spec());
  }
  v1::RunSpec spec;
  if (google::protobuf::util::JsonStringToMessage(text, &spec).ok()) {
    Exercise(spec);
  }
  // The same bytes as StartRun's wire format.
  if (request.ParseFromString(text)) {
    Exercise(request.spec());
  }
  return 0;
}
