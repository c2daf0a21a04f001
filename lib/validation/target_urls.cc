#include "lib/validation/target_urls.h"

#include "absl/strings/str_cat.h"

namespace llmload::validation {

std::vector<TargetUrl> TargetUrls(const v1::Target& target) {
  std::vector<TargetUrl> out;
  if (target.urls_size() == 0) {
    out.push_back(TargetUrl{"spec.target.url", &target.url()});
    return out;
  }
  out.reserve(static_cast<size_t>(target.urls_size()));
  for (int i = 0; i < target.urls_size(); ++i) {
    out.push_back(TargetUrl{absl::StrCat("spec.target.urls[", i, "]"), &target.urls(i)});
  }
  return out;
}

size_t UrlIndexForClient(int64_t client_id, size_t count) {
  if (count == 0 || client_id < 0) {
    return 0;
  }
  return static_cast<size_t>(static_cast<uint64_t>(client_id) % count);
}

}  // namespace llmload::validation
