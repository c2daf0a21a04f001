// File: target_urls.h
//
// A spec names its target by one base URL (`target.url`) or several
// (`target.urls`: replicas, cluster nodes), never both. Everything that
// reads, checks or dials the target goes through these functions, so that
// "which URLs" and "which client uses which" are decided in one place.
//
// Sessions are spread evenly and deterministically: client i uses
// urls[i % n]. Client ids are unique across a run (each client runs on one
// worker), so the spread holds for the whole run however the orchestrator
// splits it: a closed run of 9 clients over 3 URLs opens exactly 3 sessions
// on each.
//
//   for (const TargetUrl& u : TargetUrls(spec.target())) Check(u.path, *u.url);
//   const std::string& mine = *TargetUrls(t)[UrlIndexForClient(client, n)].url;
//
// Pure and thread-safe.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "llmload/v1/run.pb.h"

namespace llmload::validation {

inline constexpr int kMaxTargetUrls = 1000;

struct TargetUrl {
  // Its field in proto3 JSON names, for errors: "spec.target.url" or
  // "spec.target.urls[2]".
  std::string path;
  const std::string* url = nullptr;  // points into the Target
};

// urls when given (even if url is set too: validation refuses that), else
// url alone (possibly empty). Valid while `target` is.
std::vector<TargetUrl> TargetUrls(const v1::Target& target);

// The URL (index into TargetUrls) client `client_id` uses out of `count`:
// client_id mod count; 0 when count is 0 or the id is negative.
size_t UrlIndexForClient(int64_t client_id, size_t count);

}  // namespace llmload::validation
