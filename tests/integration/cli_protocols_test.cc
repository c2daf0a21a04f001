// `llmload local --protocol X` for every protocol: the CLI builds the spec,
// targets the built-in emulator's endpoint for X, and the run completes with
// exact counts. Bad target flags exit 2 before anything starts.

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::RunShell;
using testing_util::ShellResult;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A field of proto JSON as text: 64-bit integers are strings there, others
// numbers; a missing field is "".
std::string Field(const boost::json::value& v, std::initializer_list<const char*> path) {
  const boost::json::value* at = &v;
  for (const char* key : path) {
    const boost::json::object* obj = at->if_object();
    if (obj == nullptr || !obj->contains(key)) {
      return "";
    }
    at = &obj->at(key);
  }
  if (const boost::json::string* s = at->if_string()) {
    return std::string(s->data(), s->size());
  }
  return boost::json::serialize(*at);
}

struct ProtocolCase {
  const char* name;      // proto enum name
  const char* url_head;  // the target URL the CLI must build, before the port
  const char* url_tail;  // and after it
};

// Test names show the protocol, not the struct's bytes.
void PrintTo(const ProtocolCase& c, std::ostream* os) { *os << c.name; }

class CliProtocolTest : public ::testing::TestWithParam<ProtocolCase> {};

TEST_P(CliProtocolTest, LocalRunsTheProtocolAgainstTheEmulatorToCompletion) {
  const ProtocolCase& c = GetParam();
  const std::string dir = testing_util::MakeTempDir("cli-protocol");
  ASSERT_FALSE(dir.empty());
  const std::string prompts = dir + "/prompts.jsonl";
  {
    std::ofstream out(prompts);
    out << "\"What is a token?\"\n{\"prompt\": \"Count to three.\"}\n";
  }
  constexpr int kClients = 3;
  constexpr int kCycles = 2;
  constexpr int kLength = 7;
  // Lower case on purpose: the flag takes any case.
  const std::string protocol = absl::AsciiStrToLower(c.name);
  const ShellResult r = RunShell(
      absl::StrCat("timeout 120 ", BinPath("llmload"), " local --protocol ", protocol,
                   " --clients ", kClients, " --cycles ", kCycles, " --length ", kLength,
                   " --max-tokens ", kLength,
                   " --delay 0.001 --workers 1 --model test-model --prompts-file ", prompts,
                   " --header x-request-source=llmload-test --json --progress-interval 0.5",
                   " --state-dir ", dir, "/state 2>", dir, "/stderr.log"),
      /*with_stderr=*/false);
  const std::string stderr_text = ReadFile(dir + "/stderr.log");
  ASSERT_EQ(r.exit_code, 0) << r.output << "\n---- stderr ----\n" << stderr_text;

  boost::system::error_code ec;
  const boost::json::value run = boost::json::parse(r.output, ec);
  ASSERT_FALSE(ec) << ec.message() << ": " << r.output;
  EXPECT_EQ(Field(run, {"state"}), "COMPLETED") << r.output;

  // The spec the CLI built: the protocol, the emulator's endpoint for it,
  // the target flags.
  EXPECT_EQ(Field(run, {"spec", "target", "protocol"}), c.name);
  const std::string url = Field(run, {"spec", "target", "url"});
  EXPECT_TRUE(absl::StartsWith(url, c.url_head)) << url;
  EXPECT_TRUE(absl::EndsWith(url, c.url_tail)) << url;
  EXPECT_EQ(url.find('/', std::string(c.url_head).size()),
            std::string(c.url_tail).empty() ? std::string::npos
                                            : url.size() - std::string(c.url_tail).size())
      << url;
  EXPECT_EQ(Field(run, {"spec", "target", "model"}), "test-model");
  EXPECT_EQ(Field(run, {"spec", "target", "maxTokens"}), std::to_string(kLength));
  EXPECT_EQ(Field(run, {"spec", "target", "prompts"}),
            R"(["What is a token?","Count to three."])");
  EXPECT_EQ(Field(run, {"spec", "target", "headers", "x-request-source"}), "llmload-test");

  // The workers spoke that protocol, and every request went through.
  EXPECT_EQ(Field(run, {"stats", "protocol"}), c.name);
  const std::string ok = std::to_string(kClients * kCycles);
  const std::string tokens = std::to_string(kClients * kCycles * kLength);
  EXPECT_EQ(Field(run, {"progress", "requestsOk"}), ok) << r.output;
  EXPECT_EQ(Field(run, {"progress", "tokens"}), tokens) << r.output;
  EXPECT_EQ(Field(run, {"stats", "counters", "requests_ok"}), ok) << r.output;
  EXPECT_EQ(Field(run, {"stats", "counters", "tokens"}), tokens) << r.output;
  EXPECT_EQ(Field(run, {"stats", "counters", "cycles"}), ok) << r.output;
  EXPECT_EQ(Field(run, {"stats", "counters", "sessions_opened"}), std::to_string(kClients));
  for (const char* failure : {"connect_failed", "http_4xx", "http_5xx", "rate_limited",
                              "protocol_error", "timeout", "disconnected", "sessions_failed",
                              "lost", "unfinished"}) {
    EXPECT_EQ(Field(run, {"stats", "counters", failure}), "0") << failure;
  }
  EXPECT_NE(stderr_text.find(absl::StrCat("protocol=", c.name)), std::string::npos)
      << stderr_text;
}

INSTANTIATE_TEST_SUITE_P(
    EveryProtocol, CliProtocolTest,
    ::testing::Values(ProtocolCase{"CENTRIFUGO_EMULATOR", "http://127.0.0.1:", ""},
                      ProtocolCase{"REALM", "ws://127.0.0.1:", "/"},
                      ProtocolCase{"WS_CHAT", "ws://127.0.0.1:", "/api/ws"},
                      ProtocolCase{"OPENAI_CHAT", "http://127.0.0.1:", ""},
                      ProtocolCase{"ANTHROPIC_MESSAGES", "http://127.0.0.1:", ""},
                      ProtocolCase{"GEMINI", "http://127.0.0.1:", ""},
                      ProtocolCase{"HTTP_JSON", "http://127.0.0.1:", "/v1/generate"},
                      ProtocolCase{"OPENAI_RESPONSES", "http://127.0.0.1:", ""}),
    [](const ::testing::TestParamInfo<ProtocolCase>& info) {
      // OPENAI_CHAT -> OpenaiChat
      std::string name;
      bool upper = true;
      for (const char* p = info.param.name; *p != '\0'; ++p) {
        if (*p == '_') {
          upper = true;
          continue;
        }
        name += upper ? *p : absl::ascii_tolower(static_cast<unsigned char>(*p));
        upper = false;
      }
      return name;
    });

// Bad target flags: a clear message, exit 2, and nothing started (the state
// directory is made first thing when the services start).
TEST(CliProtocolErrorsTest, BadTargetFlagsExitTwoBeforeAnythingStarts) {
  const std::string dir = testing_util::MakeTempDir("cli-protocol-bad");
  ASSERT_FALSE(dir.empty());
  struct Case {
    std::string flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"--protocol carrier-pigeon",
       "llmload: --protocol: unknown protocol 'carrier-pigeon'; one of CENTRIFUGO_EMULATOR, "
       "REALM, WS_CHAT, OPENAI_CHAT, ANTHROPIC_MESSAGES, GEMINI, HTTP_JSON, OPENAI_RESPONSES"},
      {"--protocol openai_chat --header 'Authorization: Bearer sk-live-123'",
       "llmload: --header: expected NAME=VALUE"},
      {"--protocol openai_chat --header 'Authorization=Bearer sk-live-123'",
       "llmload: --header \"Authorization\": carries a credential"},
      {"--protocol gemini --header-from-env x-goog-api-key=LLMLOAD_TEST_UNSET_VARIABLE",
       "llmload: --header-from-env x-goog-api-key=LLMLOAD_TEST_UNSET_VARIABLE: the environment "
       "variable LLMLOAD_TEST_UNSET_VARIABLE is not set"},
      {"--protocol ws_chat --clients 0",
       "llmload: --clients: must be between 1 and 1000000, got 0 [spec.load.closed.clients]"},
      {"--protocol realm --prompts-file " + dir + "/missing.jsonl",
       "llmload: --prompts-file: cannot read " + dir + "/missing.jsonl"},
  };
  int n = 0;
  for (const Case& c : cases) {
    const std::string state = absl::StrCat(dir, "/state-", n++);
    const ShellResult r =
        RunShell(absl::StrCat("env -u LLMLOAD_TEST_UNSET_VARIABLE timeout 30 ", BinPath("llmload"),
                              " local ", c.flags, " --state-dir ", state));
    EXPECT_EQ(r.exit_code, 2) << c.flags << "\n" << r.output;
    EXPECT_TRUE(absl::StartsWith(r.output, c.message)) << c.flags << "\n" << r.output;
    EXPECT_EQ(r.output.find("sk-live-123"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("Emulator starting."), std::string::npos) << r.output;
    EXPECT_NE(::access(state.c_str(), F_OK), 0) << c.flags << ": " << state << " was created";
  }
  // `run` checks the spec before it dials the orchestrator (nothing listens
  // at this address: a connection error would show instead).
  const int nobody = testing_util::FreePort();
  const ShellResult r = RunShell(absl::StrCat(
      "timeout 30 ", BinPath("llmload"), " run --orchestrator 127.0.0.1:", nobody,
      " --url http://127.0.0.1:1 --protocol anthropic_messages --header x-api-key=sk-live-123"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(absl::StartsWith(r.output, "llmload: --header \"x-api-key\": carries a credential"))
      << r.output;
  EXPECT_EQ(r.output.find("sk-live-123"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("StartRun"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace llmload
