#include "lib/common/env.h"

#include <cstdlib>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace llmload {
namespace {

const char* Get(const char* name) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : nullptr;
}

}  // namespace

std::string EnvOr(const char* name, const char* fallback) {
  const char* v = Get(name);
  return v != nullptr ? std::string(v) : std::string(fallback);
}

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = Get(name);
  return v != nullptr ? std::string(v) : fallback;
}

int32_t EnvOr(const char* name, int32_t fallback) {
  int32_t out = 0;
  const char* v = Get(name);
  return (v != nullptr && absl::SimpleAtoi(v, &out)) ? out : fallback;
}

int64_t EnvOr(const char* name, int64_t fallback) {
  int64_t out = 0;
  const char* v = Get(name);
  return (v != nullptr && absl::SimpleAtoi(v, &out)) ? out : fallback;
}

uint16_t EnvOr(const char* name, uint16_t fallback) {
  uint32_t out = 0;
  const char* v = Get(name);
  return (v != nullptr && absl::SimpleAtoi(v, &out) && out <= 65535) ? static_cast<uint16_t>(out)
                                                                     : fallback;
}

double EnvOr(const char* name, double fallback) {
  double out = 0;
  const char* v = Get(name);
  return (v != nullptr && absl::SimpleAtod(v, &out)) ? out : fallback;
}

bool EnvOr(const char* name, bool fallback) {
  bool out = false;
  const char* v = Get(name);
  return (v != nullptr && absl::SimpleAtob(v, &out)) ? out : fallback;
}

}  // namespace llmload
