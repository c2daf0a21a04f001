#include "tools/llmload/health.h"

#include <map>

#include "gtest/gtest.h"

namespace llmload::cli {
namespace {

std::function<std::optional<std::string>(const std::string&)> Env(
    std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

TEST(HealthArgsTest, DefaultsToTheOrchestratorOnLoopback) {
  auto o = ParseHealthArgs({}, Env({}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->address, "127.0.0.1:50051");
  EXPECT_EQ(o->service, "");
  EXPECT_EQ(o->http_path, "");
  EXPECT_DOUBLE_EQ(o->timeout_seconds, 3);
}

TEST(HealthArgsTest, FlagsWinOverTheEnvironment) {
  auto o = ParseHealthArgs({"--address", "collector:50052", "--service=llmload.v1.Collector",
                            "--timeout", "0.5", "-q"},
                           Env({{"LLMLOAD_HEALTH_ADDRESS", "x:1"},
                                {"LLMLOAD_HEALTH_SERVICE", "y"}}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->address, "collector:50052");
  EXPECT_EQ(o->service, "llmload.v1.Collector");
  EXPECT_DOUBLE_EQ(o->timeout_seconds, 0.5);
  EXPECT_TRUE(o->quiet);
}

TEST(HealthArgsTest, TheEnvironmentSetsTheProbeOfAContainer) {
  auto o = ParseHealthArgs(
      {}, Env({{"LLMLOAD_HEALTH_ADDRESS", "127.0.0.1:9103"}, {"LLMLOAD_HEALTH_HTTP", "/metrics"}}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->address, "127.0.0.1:9103");
  EXPECT_EQ(o->http_path, "/metrics");
}

TEST(HealthArgsTest, RejectsBadArgumentsPrecisely) {
  EXPECT_NE(ParseHealthArgs({"--address", "nohost"}, Env({})).status().message().find(
                "expected HOST:PORT"),
            std::string::npos);
  EXPECT_NE(ParseHealthArgs({"--timeout", "0"}, Env({})).status().message().find("--timeout"),
            std::string::npos);
  EXPECT_NE(ParseHealthArgs({"--http", "health"}, Env({})).status().message().find("'/'"),
            std::string::npos);
  EXPECT_NE(ParseHealthArgs({"--frob"}, Env({})).status().message().find("unknown flag '--frob'"),
            std::string::npos);
  EXPECT_NE(ParseHealthArgs({"--service"}, Env({})).status().message().find("needs a value"),
            std::string::npos);
  EXPECT_FALSE(ParseHealthArgs({"extra"}, Env({})).ok());
}

TEST(HealthCodecTest, EncodesTheServiceNameAsFieldOne) {
  EXPECT_EQ(EncodeHealthCheckRequest(""), "");
  EXPECT_EQ(EncodeHealthCheckRequest("ab"), std::string("\x0a\x02" "ab", 4));
  const std::string long_name(200, 'x');
  const std::string encoded = EncodeHealthCheckRequest(long_name);
  ASSERT_EQ(encoded.size(), 203u);  // tag, two-byte varint length, name
  EXPECT_EQ(encoded.substr(0, 3), std::string("\x0a\xc8\x01", 3));
}

TEST(HealthCodecTest, DecodesTheStatusAndSkipsUnknownFields) {
  EXPECT_EQ(*DecodeHealthCheckResponse(""), 0);                          // UNKNOWN
  EXPECT_EQ(*DecodeHealthCheckResponse(std::string("\x08\x01", 2)), 1);  // SERVING
  EXPECT_EQ(*DecodeHealthCheckResponse(std::string("\x08\x02", 2)), 2);  // NOT_SERVING
  // Unknown fields of each wire type before the status.
  const std::string with_unknown =
      std::string("\x12\x03xyz", 5) + std::string("\x19", 1) + std::string(8, '\0') +
      std::string("\x25", 1) + std::string(4, '\0') + std::string("\x10\x96\x01", 3) +
      std::string("\x08\x01", 2);
  auto s = DecodeHealthCheckResponse(with_unknown);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, 1);
}

TEST(HealthCodecTest, RejectsTruncatedMessages) {
  EXPECT_FALSE(DecodeHealthCheckResponse(std::string("\x08", 1)).ok());
  EXPECT_FALSE(DecodeHealthCheckResponse(std::string("\x12\x05xy", 4)).ok());
  EXPECT_FALSE(DecodeHealthCheckResponse(std::string("\x0b", 1)).ok());  // group: unsupported
  EXPECT_EQ(ServingStatusName(1), "SERVING");
  EXPECT_EQ(ServingStatusName(3), "SERVICE_UNKNOWN");
}

}  // namespace
}  // namespace llmload::cli
