#include "services/emulator/config.h"

#include "gtest/gtest.h"

namespace llmload::emulator {
namespace {

TEST(ConfigTest, DefaultsAreValid) { EXPECT_TRUE(Validate(EmulatorConfig{}).ok()); }

TEST(ConfigTest, RejectsOutOfRangeValuesNamingTheField) {
  struct Case {
    void (*mutate)(EmulatorConfig&);
    const char* field;
  };
  const Case cases[] = {
      {[](EmulatorConfig& c) { c.threads = 0; }, "threads"},
      {[](EmulatorConfig& c) { c.processes = 0; }, "processes"},
      {[](EmulatorConfig& c) { c.processes = kMaxProcesses + 1; }, "processes"},
      {[](EmulatorConfig& c) { c.length_words = 0; }, "length_words"},
      {[](EmulatorConfig& c) { c.length_words = 100001; }, "length_words"},
      {[](EmulatorConfig& c) { c.token_delay_seconds = -0.1; }, "token_delay_seconds"},
      {[](EmulatorConfig& c) { c.token_delay_seconds = 61; }, "token_delay_seconds"},
      {[](EmulatorConfig& c) { c.jwt_secret.clear(); }, "jwt_secret"},
      {[](EmulatorConfig& c) { c.token_ttl_seconds = 0; }, "token_ttl_seconds"},
      {[](EmulatorConfig& c) { c.ping_interval_seconds = 0; }, "ping_interval_seconds"},
      {[](EmulatorConfig& c) { c.pong_timeout_seconds = 25; }, "pong_timeout_seconds"},
      {[](EmulatorConfig& c) { c.max_connections = 0; }, "max_connections"},
      {[](EmulatorConfig& c) { c.host.clear(); }, "host"},
  };
  for (const Case& c : cases) {
    EmulatorConfig config;
    c.mutate(config);
    absl::Status s = Validate(config);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(s.message().find(c.field), absl::string_view::npos) << s.message();
  }
}

TEST(ConfigTest, AcceptsBoundaryValues) {
  EmulatorConfig c;
  c.length_words = 100000;
  c.token_delay_seconds = 0;
  c.ping_interval_seconds = 0.2;
  c.pong_timeout_seconds = 0.1;
  c.processes = kMaxProcesses;
  EXPECT_TRUE(Validate(c).ok());
  c.token_delay_seconds = 60;
  c.length_words = 1;
  EXPECT_TRUE(Validate(c).ok());
}

}  // namespace
}  // namespace llmload::emulator
