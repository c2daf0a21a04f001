#include "services/emulator/lorem.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace llmload::emulator {
namespace {

TEST(LoremTest, WordListHasOneHundredDistinctLowerCaseWords) {
  const auto& words = LoremWords();
  EXPECT_EQ(words.size(), 100u);
  std::set<std::string_view> distinct(words.begin(), words.end());
  EXPECT_EQ(distinct.size(), words.size());
  for (std::string_view w : words) {
    ASSERT_FALSE(w.empty());
    for (char c : w) {
      EXPECT_TRUE(c >= 'a' && c <= 'z') << w;
    }
  }
}

TEST(LoremTest, TextFollowsTheOriginalShape) {
  const LoremText t = GenerateLorem(42, "Question 1 from client 0", 50);
  ASSERT_EQ(t.tokens.size(), 50u);
  // First letter upper-cased, "." on the last word, single spaces.
  EXPECT_TRUE(t.tokens.front()[0] >= 'A' && t.tokens.front()[0] <= 'Z');
  EXPECT_EQ(t.tokens.back().back(), '.');
  std::string joined;
  for (size_t i = 0; i < t.tokens.size(); ++i) {
    joined += (i > 0 ? " " : "") + t.tokens[i];
  }
  EXPECT_EQ(joined, t.text);
  EXPECT_EQ(t.text.find("  "), std::string::npos);
  // Every token is a list word (modulo the capital and the period).
  std::set<std::string_view> words(LoremWords().begin(), LoremWords().end());
  for (size_t i = 0; i < t.tokens.size(); ++i) {
    std::string w = t.tokens[i];
    if (i == 0) {
      w[0] = static_cast<char>(w[0] - 'A' + 'a');
    }
    if (i + 1 == t.tokens.size()) {
      w.pop_back();
    }
    EXPECT_TRUE(words.count(w) == 1) << w;
  }
}

TEST(LoremTest, SingleWordIsCapitalisedAndEndsWithPeriod) {
  const LoremText t = GenerateLorem(1, "", 1);
  ASSERT_EQ(t.tokens.size(), 1u);
  EXPECT_EQ(t.text, t.tokens[0]);
  EXPECT_TRUE(t.text[0] >= 'A' && t.text[0] <= 'Z');
  EXPECT_EQ(t.text.back(), '.');
}

TEST(LoremTest, IsAPureFunctionOfSeedQuestionAndLength) {
  EXPECT_EQ(GenerateLorem(7, "q", 200).text, GenerateLorem(7, "q", 200).text);
  EXPECT_NE(GenerateLorem(7, "q", 200).text, GenerateLorem(8, "q", 200).text);
  EXPECT_NE(GenerateLorem(7, "q", 200).text, GenerateLorem(7, "r", 200).text);
  // A shorter response is a prefix of a longer one (same random stream).
  const LoremText long_text = GenerateLorem(7, "q", 200);
  const LoremText short_text = GenerateLorem(7, "q", 10);
  for (size_t i = 1; i + 1 < short_text.tokens.size(); ++i) {
    EXPECT_EQ(short_text.tokens[i], long_text.tokens[i]);
  }
}

TEST(LoremTest, UsesTheWholeList) {
  const LoremText t = GenerateLorem(3, "coverage", 5000);
  std::set<std::string> seen;
  for (size_t i = 1; i + 1 < t.tokens.size(); ++i) {
    seen.insert(t.tokens[i]);
  }
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace llmload::emulator
