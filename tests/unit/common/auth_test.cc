// Token sources and the role check, without a network: files with comments
// and several tokens, rotation, clear start-up errors, and which token
// passes which check.

#include "services/common/auth.h"

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace llmload {
namespace {

std::string Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
  return path;
}

TEST(TokenSourceTest, ReadsEveryTokenOfAFileAndTheEnvironmentsList) {
  const std::string dir = testing_util::MakeTempDir("auth");
  const std::string file = Write(dir + "/tokens", "# rotated monthly\n\n  alpha  \nbeta\n");
  auto source = TokenSource::Create("--operator_token_file", "gamma, delta", file);
  ASSERT_TRUE(source.ok()) << source.status();
  for (const char* t : {"alpha", "beta", "gamma", "delta"}) {
    EXPECT_TRUE((*source)->Matches(t)) << t;
  }
  for (const char* t : {"", "alph", "alpha ", "# rotated monthly", "ALPHA"}) {
    EXPECT_FALSE((*source)->Matches(t)) << t;
  }
  EXPECT_EQ((*source)->First(), "gamma");
}

TEST(TokenSourceTest, AFileThatChangesIsReadAgain) {
  const std::string dir = testing_util::MakeTempDir("auth");
  const std::string file = Write(dir + "/tokens", "first\n");
  auto source = TokenSource::Create("--join_token_file", "", file, absl::ZeroDuration());
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_TRUE((*source)->Matches("first"));
  Write(file, "second-and-longer\n");
  EXPECT_TRUE((*source)->Matches("second-and-longer"));
  EXPECT_FALSE((*source)->Matches("first"));
  // Emptied by mistake: the last good tokens stay.
  Write(file, "");
  EXPECT_TRUE((*source)->Matches("second-and-longer"));
}

TEST(TokenSourceTest, AMissingOrEmptyFileIsAStartUpErrorNamingTheFlag) {
  const std::string dir = testing_util::MakeTempDir("auth");
  auto missing = TokenSource::Create("--read_token_file", "", dir + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--read_token_file"), std::string::npos);
  auto empty = TokenSource::Create("--read_token_file", "", Write(dir + "/empty", "# none\n"));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("holds no token"), std::string::npos);
  auto none = TokenSource::Create("--read_token_file", "", "");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE((*none)->configured());
  EXPECT_FALSE((*none)->Matches(""));
}

TEST(ServerAuthTest, AReadTokenWithoutAnOperatorTokenIsRefused) {
  auto read = TokenSource::Create("--read_token_file", "r", "");
  ASSERT_TRUE(read.ok());
  auto auth = ServerAuth::Create(nullptr, *std::move(read), nullptr);
  ASSERT_FALSE(auth.ok());
  EXPECT_NE(auth.status().message().find("operator"), std::string::npos);
}

TEST(ServerAuthTest, UnconfiguredSourcesLeaveTheirRpcsOpen) {
  auto join = TokenSource::Create("--join_token_file", "j", "");
  auto empty = TokenSource::Create("--operator_token_file", "", "");
  ASSERT_TRUE(join.ok() && empty.ok());
  auto auth = ServerAuth::Create(*std::move(empty), nullptr, *std::move(join));
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE((*auth)->control_open());
  EXPECT_FALSE((*auth)->join_open());
  EXPECT_TRUE(ServerAuth::Open()->control_open());
  EXPECT_TRUE(ServerAuth::Open()->join_open());
}

}  // namespace
}  // namespace llmload
