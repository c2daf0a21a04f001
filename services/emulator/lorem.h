// File: lorem.h
//
// The llm-emulator's response text (shared/protocols/llm-emulator-api.md §3):
// N words drawn uniformly, with replacement, from a fixed 100-word lorem
// list, joined by single spaces, the first letter upper-cased and "."
// appended. A token is one word; the last token carries the ".".
//
// Unlike the original (Python's global random), the choice is a pure
// function of (seed, question, N), so a run is reproducible whatever the
// order in which concurrent requests arrive.
//
// Pure and thread-safe.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmload::emulator {

struct LoremText {
  std::vector<std::string> tokens;  // what is published, one per push
  std::string text;                 // tokens joined by ' ': the /api/run response
};

// words must be >= 1.
LoremText GenerateLorem(uint64_t seed, std::string_view question, int32_t words);

// The word list, lower-case.
const std::vector<std::string_view>& LoremWords();

}  // namespace llmload::emulator
