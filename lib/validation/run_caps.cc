#include "lib/validation/run_caps.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace llmload::validation {
namespace {

absl::Duration ToAbsl(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Status Over(const char* what, const std::string& value, const char* flag,
                  const std::string& cap) {
  return absl::InvalidArgumentError(absl::StrCat(what, " ", value, " is over this orchestrator's cap of ",
                                                 cap, " (", flag, ")"));
}

absl::Duration OpenRunLength(const v1::OpenLoad& open) {
  absl::Duration stages = absl::ZeroDuration();
  for (const v1::RateStage& st : open.stages()) {
    stages += ToAbsl(st.duration());
  }
  return std::max(ToAbsl(open.duration()), stages);
}

}  // namespace

double ExpectedOpenArrivals(const v1::OpenLoad& open) {
  double arrivals = 0;
  double rate = open.rate_per_second();
  absl::Duration elapsed = absl::ZeroDuration();
  for (const v1::RateStage& st : open.stages()) {
    const double seconds = absl::ToDoubleSeconds(ToAbsl(st.duration()));
    arrivals += (rate + st.target_rate()) / 2 * seconds;
    rate = st.target_rate();
    elapsed += ToAbsl(st.duration());
  }
  const absl::Duration rest = OpenRunLength(open) - elapsed;
  if (rest > absl::ZeroDuration()) {
    arrivals += rate * absl::ToDoubleSeconds(rest);
  }
  return arrivals;
}

absl::Status CheckRunCaps(const v1::RunSpec& spec, const RunCaps& caps) {
  const v1::Load& load = spec.load();
  int64_t sessions = 0;
  absl::Duration length = absl::ZeroDuration();
  double requests = 0;
  if (load.has_closed()) {
    sessions = load.closed().clients();
    requests = static_cast<double>(load.closed().clients()) *
               std::max(1, load.closed().cycles_per_client());
  } else if (load.has_duration()) {
    sessions = load.duration().connections();
    length = ToAbsl(load.duration().duration());
  } else if (load.has_open()) {
    const v1::OpenLoad& open = load.open();
    sessions = open.max_in_flight();
    length = OpenRunLength(open);
    double peak = open.rate_per_second();
    for (const v1::RateStage& st : open.stages()) {
      peak = std::max(peak, st.target_rate());
    }
    if (peak > caps.max_rate) {
      return Over("spec.load.open: an arrival rate of", absl::StrCat(peak, "/s"), "--max_run_rate",
                  absl::StrCat(caps.max_rate, "/s"));
    }
    requests = ExpectedOpenArrivals(open);
  }
  if (sessions > caps.max_clients) {
    return Over("spec.load: a session count of", absl::StrCat(sessions), "--max_run_clients",
                absl::StrCat(caps.max_clients));
  }
  if (length > caps.max_duration) {
    return Over("spec.load: a run length of", absl::FormatDuration(length), "--max_run_duration",
                absl::FormatDuration(caps.max_duration));
  }
  if (requests > static_cast<double>(caps.max_requests)) {
    return Over("spec.load: a request count of", absl::StrCat(static_cast<int64_t>(requests)),
                "--max_run_requests", absl::StrCat(caps.max_requests));
  }
  return absl::OkStatus();
}

}  // namespace llmload::validation
