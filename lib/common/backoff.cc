#include "lib/common/backoff.h"

#include <unistd.h>

#include <chrono>
#include <random>

namespace llmload {

uint64_t BackoffSeed(const void* salt) {
  std::random_device rd;
  const uint64_t t = static_cast<uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
  return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ t ^
         (static_cast<uint64_t>(::getpid()) << 17) ^ reinterpret_cast<uintptr_t>(salt);
}

}  // namespace llmload
