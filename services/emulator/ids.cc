#include "services/emulator/ids.h"

#include <openssl/rand.h>

#include <array>
#include <cstdint>
#include <cstdlib>

namespace llmload::emulator {
namespace {

template <size_t N>
std::array<unsigned char, N> RandomBytes() {
  std::array<unsigned char, N> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    // The system CSPRNG failing is not a state the emulator can serve in.
    std::abort();
  }
  return bytes;
}

}  // namespace

std::string NewUuid4() {
  auto b = RandomBytes<16>();
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out.push_back('-');
    }
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 0x0f]);
  }
  return out;
}

std::string NewEpoch() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  auto b = RandomBytes<4>();
  std::string out;
  for (unsigned char c : b) {
    out.push_back(kAlphabet[c % 62]);
  }
  return out;
}

}  // namespace llmload::emulator

namespace llmload::emulator {

std::string NewShortId(size_t length) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local uint64_t state = [] {
    auto b = RandomBytes<8>();
    uint64_t s = 0;
    for (unsigned char c : b) {
      s = (s << 8) | c;
    }
    return s;
  }();
  std::string out;
  out.reserve(length);
  uint64_t bits = 0;
  int left = 0;
  for (size_t i = 0; i < length; ++i) {
    if (left == 0) {
      uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      bits = z ^ (z >> 31);
      left = 10;  // 10 draws of 6 bits
    }
    out.push_back(kAlphabet[(bits & 63) % 62]);
    bits >>= 6;
    --left;
  }
  return out;
}

}  // namespace llmload::emulator
