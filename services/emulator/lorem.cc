#include "services/emulator/lorem.h"

#include <cctype>

namespace llmload::emulator {
namespace {

// Steele, Lea & Flood's SplitMix64: tiny, fast and the same on every
// platform (std::uniform_int_distribution is not).
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// FNV-1a, 64 bit: a stable hash (std::hash and absl::Hash are not stable
// across processes).
uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

const std::vector<std::string_view>& LoremWords() {
  static const auto* const kWords = new std::vector<std::string_view>{
      "lorem",      "ipsum",      "dolor",       "sit",          "amet",       "consectetur",
      "adipiscing", "elit",       "sed",         "do",           "eiusmod",    "tempor",
      "incididunt", "ut",         "labore",      "et",           "dolore",     "magna",
      "aliqua",     "enim",       "ad",          "minim",        "veniam",     "quis",
      "nostrud",    "exercitation", "ullamco",   "laboris",      "nisi",       "aliquip",
      "ex",         "ea",         "commodo",     "consequat",    "duis",       "aute",
      "irure",      "in",         "reprehenderit", "voluptate",  "velit",      "esse",
      "cillum",     "eu",         "fugiat",      "nulla",        "pariatur",   "excepteur",
      "sint",       "occaecat",   "cupidatat",   "non",          "proident",   "sunt",
      "culpa",      "qui",        "officia",     "deserunt",     "mollit",     "anim",
      "id",         "est",        "laborum",     "curabitur",    "pretium",    "tincidunt",
      "lacus",      "gravida",    "orci",        "a",            "odio",       "nullam",
      "varius",     "turpis",     "pharetra",    "eros",         "bibendum",   "nec",
      "luctus",     "felis",      "sollicitudin", "mauris",      "integer",    "dui",
      "suspendisse", "sagittis",  "justo",       "vel",          "augue",      "vestibulum",
      "ante",       "primis",     "faucibus",    "ultrices",     "posuere",    "cubilia",
      "morbi",      "tristique",  "senectus",    "netus",
  };
  return *kWords;
}

LoremText GenerateLorem(uint64_t seed, std::string_view question, int32_t words) {
  const std::vector<std::string_view>& list = LoremWords();
  uint64_t state = seed ^ Fnv1a64(question);
  LoremText out;
  const size_t n = words > 0 ? static_cast<size_t>(words) : 1;
  out.tokens.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // Multiply-shift maps 32 random bits onto [0, size) without modulo bias
    // worth mentioning for a 100-word list.
    const uint64_t r = SplitMix64(state) >> 32;
    out.tokens.emplace_back(list[(r * list.size()) >> 32]);
  }
  out.tokens.front()[0] =
      static_cast<char>(std::toupper(static_cast<unsigned char>(out.tokens.front()[0])));
  out.tokens.back().push_back('.');
  size_t len = n;  // spaces
  for (const std::string& t : out.tokens) {
    len += t.size();
  }
  out.text.reserve(len);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) {
      out.text.push_back(' ');
    }
    out.text += out.tokens[i];
  }
  return out;
}

}  // namespace llmload::emulator
