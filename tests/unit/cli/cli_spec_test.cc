// The run spec `llmload run` and `llmload local` build from their flags:
// every protocol, the target flags, and validation's errors named by flag.

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/validation/validation.h"
#include "tools/llmload/cli_args.h"

namespace llmload::cli {
namespace {

absl::StatusOr<Options> Parse(std::vector<std::string> args,
                              std::map<std::string, std::string> env = {}) {
  return ParseArgs(args, [&env](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  });
}

// Every protocol the proto declares, but PROTOCOL_UNSPECIFIED.
std::vector<v1::Protocol> AllProtocols() {
  std::vector<v1::Protocol> out;
  for (int i = v1::Protocol_MIN; i <= v1::Protocol_MAX; ++i) {
    if (v1::Protocol_IsValid(i) && i != v1::PROTOCOL_UNSPECIFIED) {
      out.push_back(static_cast<v1::Protocol>(i));
    }
  }
  return out;
}

// The message of the error BuildRunSpec gives for these `local` flags, or
// "ok".
std::string BuildError(std::vector<std::string> args, const std::string& url = "http://h:1") {
  args.insert(args.begin(), "local");
  absl::StatusOr<Options> o = Parse(args);
  if (!o.ok()) {
    return absl::StrCat("parse: ", o.status().message());
  }
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, url);
  return spec.ok() ? "ok" : std::string(spec.status().message());
}

TEST(CliSpecTest, ProtocolNamesParseInAnyCase) {
  ASSERT_EQ(AllProtocols().size(), 8u);
  for (v1::Protocol p : AllProtocols()) {
    const std::string name = v1::Protocol_Name(p);
    std::string dashed = absl::AsciiStrToLower(name);
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    for (const std::string& spelling : {name, absl::AsciiStrToLower(name), dashed}) {
      absl::StatusOr<v1::Protocol> parsed = ParseProtocol(spelling);
      ASSERT_TRUE(parsed.ok()) << spelling << ": " << parsed.status();
      EXPECT_EQ(*parsed, p) << spelling;
    }
  }
  for (const char* bad : {"", "openai", "PROTOCOL_UNSPECIFIED", "1", "grpc"}) {
    absl::StatusOr<v1::Protocol> parsed = ParseProtocol(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().message(),
              absl::StrCat("--protocol: unknown protocol '", bad,
                           "'; one of CENTRIFUGO_EMULATOR, REALM, WS_CHAT, OPENAI_CHAT, "
                           "ANTHROPIC_MESSAGES, GEMINI, HTTP_JSON, OPENAI_RESPONSES"));
  }
  auto o = Parse({"local", "--protocol", "frobnicate"});
  ASSERT_FALSE(o.ok());
  EXPECT_TRUE(absl::StartsWith(o.status().message(), "--protocol: unknown protocol 'frobnicate'"));
  // The default is the original emulator client's protocol.
  EXPECT_EQ(Parse({"local"})->protocol, v1::CENTRIFUGO_EMULATOR);
}

TEST(CliSpecTest, EmulatorEndpointPerProtocol) {
  // README, "Running the emulator alone": where the emulator serves each.
  const std::map<v1::Protocol, std::string> want = {
      {v1::CENTRIFUGO_EMULATOR, "http://127.0.0.1:9"},  // + /api/..., /connection/websocket
      {v1::REALM, "ws://127.0.0.1:9/"},
      {v1::WS_CHAT, "ws://127.0.0.1:9/api/ws"},
      {v1::OPENAI_CHAT, "http://127.0.0.1:9"},         // + /v1/chat/completions
      {v1::ANTHROPIC_MESSAGES, "http://127.0.0.1:9"},  // + /v1/messages
      {v1::GEMINI, "http://127.0.0.1:9"},              // + /v1beta/models/...
      {v1::HTTP_JSON, "http://127.0.0.1:9/v1/generate"},
      {v1::OPENAI_RESPONSES, "http://127.0.0.1:9"},    // + /v1/responses
  };
  for (v1::Protocol p : AllProtocols()) {
    ASSERT_EQ(want.count(p), 1u) << v1::Protocol_Name(p) << " has no expected endpoint";
    EXPECT_EQ(EmulatorTargetUrl(p, "127.0.0.1:9"), want.at(p)) << v1::Protocol_Name(p);
  }
}

TEST(CliSpecTest, TargetFlagsBuildAValidSpecForEveryProtocol) {
  for (v1::Protocol p : AllProtocols()) {
    auto o = Parse({"local", "--protocol", v1::Protocol_Name(p), "--model", "m-1", "--prompt",
                    "Say hi.", "--max-tokens", "12", "--api-key-env", "TARGET_KEY", "--header",
                    "x-request-source=llmload", "--header", "x-trace=a=b", "--header-from-env",
                    "api-key=AZURE_KEY", "--clients", "3", "--cycles", "2", "--length", "12"});
    ASSERT_TRUE(o.ok()) << o.status();
    const std::string url = EmulatorTargetUrl(p, "127.0.0.1:8080");
    absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, url);
    ASSERT_TRUE(spec.ok()) << v1::Protocol_Name(p) << ": " << spec.status();
    const v1::Target& t = spec->target();
    EXPECT_EQ(t.protocol(), p);
    EXPECT_EQ(t.url(), url);
    EXPECT_EQ(t.model(), "m-1");
    EXPECT_EQ(t.prompt(), "Say hi.");
    EXPECT_EQ(t.prompts_size(), 0);
    EXPECT_EQ(t.max_tokens(), 12);
    EXPECT_EQ(t.api_key_env(), "TARGET_KEY");
    ASSERT_EQ(t.headers_size(), 2);
    EXPECT_EQ(t.headers().at("x-request-source"), "llmload");
    EXPECT_EQ(t.headers().at("x-trace"), "a=b");  // split at the first '='
    ASSERT_EQ(t.headers_from_env_size(), 1);
    EXPECT_EQ(t.headers_from_env().at("api-key"), "AZURE_KEY");
    EXPECT_EQ(spec->load().closed().clients(), 3);
    EXPECT_EQ(spec->load().closed().cycles_per_client(), 2);
    EXPECT_EQ(spec->emulation().length_words(), 12);
  }
}

TEST(CliSpecTest, TargetFlagsTakeEnvironmentDefaults) {
  const std::map<std::string, std::string> env = {
      {"LLMLOAD_PROTOCOL", "gemini"},       {"LLMLOAD_MODEL", "gemini-2.0-flash"},
      {"LLMLOAD_PROMPT", "from env"},       {"LLMLOAD_MAX_TOKENS", "64"},
      {"LLMLOAD_API_KEY_ENV", "GEMINI_KEY"}};
  auto o = Parse({"local"}, env);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->protocol, v1::GEMINI);
  EXPECT_EQ(o->model, "gemini-2.0-flash");
  EXPECT_EQ(o->prompt, "from env");
  EXPECT_EQ(o->max_tokens, 64);
  EXPECT_EQ(o->api_key_env, "GEMINI_KEY");
  EXPECT_TRUE(o->given.empty());  // nothing came from the command line
  // Flags win over the environment.
  o = Parse({"local", "--protocol", "REALM", "--max-tokens", "5"}, env);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->protocol, v1::REALM);
  EXPECT_EQ(o->max_tokens, 5);
  EXPECT_EQ(o->model, "gemini-2.0-flash");
  EXPECT_EQ(o->given, (std::set<std::string>{"protocol", "max-tokens"}));
  // A bad environment value names the variable.
  o = Parse({"local"}, {{"LLMLOAD_PROTOCOL", "carrier-pigeon"}});
  ASSERT_FALSE(o.ok());
  EXPECT_TRUE(absl::StartsWith(o.status().message(),
                               "environment variable LLMLOAD_PROTOCOL: --protocol: unknown"))
      << o.status();
  // --prompt and --prompts-file: the command line beats the environment,
  // and both on the command line clash.
  o = Parse({"local", "--prompts-file", "p.jsonl"}, {{"LLMLOAD_PROMPT", "env prompt"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->prompt, "");
  EXPECT_EQ(o->prompts_file, "p.jsonl");
  o = Parse({"local", "--prompt", "flag prompt"}, {{"LLMLOAD_PROMPTS_FILE", "p.jsonl"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->prompt, "flag prompt");
  EXPECT_EQ(o->prompts_file, "");
  o = Parse({"local", "--prompt", "a", "--prompts-file", "p.jsonl"});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().message(), "--prompt and --prompts-file: give one of them");
}

TEST(CliSpecTest, HeaderFlagsNeedNameEqualsValueAndNeverEchoIt) {
  auto o = Parse({"local", "--header", "Authorization: Bearer sk-live-123"});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(o.status().message(), "--header: expected NAME=VALUE"))
      << o.status();
  EXPECT_TRUE(absl::StrContains(o.status().message(), "not NAME: VALUE")) << o.status();
  EXPECT_FALSE(absl::StrContains(o.status().message(), "sk-live-123")) << o.status();
  o = Parse({"local", "--header-from-env", "api-key"});
  ASSERT_FALSE(o.ok());
  EXPECT_TRUE(absl::StartsWith(o.status().message(), "--header-from-env: expected NAME=ENVVAR"))
      << o.status();
  o = Parse({"local", "--header", "x-a=1", "--header", "x-a=2"});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().message(), "--header: header \"x-a\" given twice");
  // An empty value is a header sent empty.
  o = Parse({"local", "--header", "x-empty="});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->headers.at("x-empty"), "");
}

TEST(CliSpecTest, LiteralCredentialHeadersAreRefusedWithoutTheValue) {
  for (const char* name : {"Authorization", "x-api-key", "api-key", "X-Goog-Api-Key", "Cookie",
                           "x-session-token"}) {
    const std::string msg = BuildError({"--header", absl::StrCat(name, "=sk-live-123")});
    EXPECT_TRUE(absl::StartsWith(msg, absl::StrCat("--header \"", name, "\": carries a credential")))
        << msg;
    EXPECT_TRUE(absl::StrContains(msg, "--api-key-env ENVVAR or --header-from-env NAME=ENVVAR"))
        << msg;
    EXPECT_TRUE(absl::EndsWith(msg, absl::StrCat("[spec.target.headers[\"", name, "\"]]"))) << msg;
    EXPECT_FALSE(absl::StrContains(msg, "sk-live-123")) << msg;
  }
  // By name, the same header is fine.
  EXPECT_EQ(BuildError({"--header-from-env", "Authorization=TARGET_AUTH"}), "ok");
  EXPECT_EQ(BuildError({"--header-from-env", "x-a=1BAD"}).substr(0, 23), "--header-from-env \"x-a\"");
  EXPECT_TRUE(absl::StartsWith(BuildError({"--header", "x-a=1", "--header-from-env", "x-a=ENV"}),
                               "--header-from-env \"x-a\": also set in spec.target.headers"));
  EXPECT_TRUE(absl::StartsWith(BuildError({"--header", "bad name=1"}),
                               "--header \"bad name\": header name must be an HTTP token"));
  // A name holding ": " or a quote still comes out whole.
  EXPECT_TRUE(absl::StartsWith(BuildError({"--header", "x: \"y=1"}),
                               "--header \"x: \\\"y\": header name must be an HTTP token"))
      << BuildError({"--header", "x: \"y=1"});
}

// Each spec limit is checked once, by validation, and reported against the
// flag that set it.
TEST(CliSpecTest, CancellationFlagsFillTheSpec) {
  absl::StatusOr<Options> o =
      Parse({"local", "--protocol", "openai_chat", "--cancel", "0.25", "--cancel-after-tokens",
             "4", "--cancel-after", "1.5", "--cancel-seed", "9"});
  ASSERT_TRUE(o.ok()) << o.status();
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, "http://h:1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_DOUBLE_EQ(spec->cancellation().share(), 0.25);
  EXPECT_EQ(spec->cancellation().after_tokens(), 4);
  EXPECT_EQ(spec->cancellation().after().seconds(), 1);
  EXPECT_EQ(spec->cancellation().after().nanos(), 500000000);
  EXPECT_EQ(spec->cancellation().seed(), 9u);
  // Without the flags the spec has no cancellation.
  o = Parse({"local"});
  ASSERT_TRUE(o.ok());
  spec = BuildRunSpec(*o, "http://h:1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(spec->has_cancellation());
  EXPECT_FALSE(Parse({"local", "--cancel-seed", "x"}).ok());
}

TEST(CliSpecTest, ValidationErrorsNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string flag;  // the message's start
    std::string path;  // the field named at its end
  };
  const std::vector<Case> cases = {
      {{"--clients", "0"}, "--clients", "spec.load.closed.clients"},
      {{"--clients", "1000001"}, "--clients", "spec.load.closed.clients"},
      {{"--cycles", "0"}, "--cycles", "spec.load.closed.cyclesPerClient"},
      {{"--max-concurrent", "-1"}, "--max-concurrent", "spec.load.closed.maxConcurrent"},
      {{"--think", "-1"}, "--think", "spec.load.closed.thinkTime.min"},
      {{"--length", "-1"}, "--length", "spec.emulation.lengthWords"},
      {{"--length", "100001"}, "--length", "spec.emulation.lengthWords"},
      {{"--delay", "61"}, "--delay", "spec.emulation.tokenDelay"},
      {{"--delay", "1e300"}, "--delay", "spec.emulation.tokenDelay"},
      {{"--duration", "0"}, "--duration", "spec.load.duration.duration"},
      {{"--duration", "10", "--clients", "0"}, "--clients", "spec.load.duration.connections"},
      {{"--rate", "0", "--duration", "10"}, "--rate", "spec.load.open.ratePerSecond"},
      {{"--rate", "5", "--duration", "90000"}, "--duration", "spec.load.open.duration"},
      {{"--ramp", "5:0"}, "--ramp", "spec.load.open.stages[0].duration"},
      {{"--ramp", "0:5"}, "--ramp", "spec.load.open.stages"},
      {{"--rate", "5", "--duration", "10", "--max-in-flight", "-1"}, "--max-in-flight",
       "spec.load.open.maxInFlight"},
      {{"--slo-ttft", "0"}, "--slo-ttft", "spec.objectives.ttft"},
      {{"--slo-itl", "4000"}, "--slo-itl", "spec.objectives.meanItl"},
      {{"--slo-e2e", "-1"}, "--slo-e2e", "spec.objectives.e2e"},
      {{"--name", std::string(200, 'n')}, "--name", "spec.name"},
      {{"--max-tokens", "-1"}, "--max-tokens", "spec.target.maxTokens"},
      {{"--api-key-env", "not-a-name"}, "--api-key-env", "spec.target.apiKeyEnv"},
      {{"--cancel", "1.5", "--cancel-after-tokens", "3"}, "--cancel", "spec.cancellation.share"},
      {{"--cancel", "0.2"}, "--cancel", "spec.cancellation"},
      {{"--cancel", "0.2", "--cancel-after-tokens", "-2"}, "--cancel-after-tokens",
       "spec.cancellation.afterTokens"},
      {{"--cancel", "0.2", "--cancel-after", "0"}, "--cancel-after", "spec.cancellation.after"},
  };
  for (const Case& c : cases) {
    const std::string msg = BuildError(c.args);
    EXPECT_TRUE(absl::StartsWith(msg, c.flag + ": ")) << c.args[0] << " -> " << msg;
    EXPECT_TRUE(absl::EndsWith(msg, " [" + c.path + "]")) << c.args[0] << " -> " << msg;
  }
  // The bounds are validation's: its largest load is accepted.
  EXPECT_EQ(BuildError({"--clients", std::to_string(validation::kMaxLoadUnits), "--cycles", "1",
                        "--max-concurrent", "1"}),
            "ok");
  EXPECT_EQ(BuildError({"--length", std::to_string(validation::kMaxLengthWords)}), "ok");
  EXPECT_EQ(BuildError({"--length", "0"}), "ok");  // 0: the target's default
  // `run`'s URL.
  auto o = Parse({"run", "--url", "ftp://h/x"});
  ASSERT_TRUE(o.ok()) << o.status();
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, o->url);
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::StartsWith(spec.status().message(), "--url: scheme must be http"))
      << spec.status();
  o = Parse({"run", "--url", "http://user:pw@h:1"});
  ASSERT_TRUE(o.ok());
  spec = BuildRunSpec(*o, o->url);
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::StartsWith(spec.status().message(), "--url: must not carry credentials"));
  EXPECT_FALSE(absl::StrContains(spec.status().message(), "pw")) << spec.status();
  // An error keeps validation's code (UNIMPLEMENTED for what is not built).
  o = Parse({"run", "--url", "https://h:1"});
  ASSERT_TRUE(o.ok());
  spec = BuildRunSpec(*o, o->url);
  const absl::Status direct = validation::ValidateRunSpec(SpecFromOptions(*o, o->url));
  EXPECT_EQ(spec.status().code(), direct.code());
  if (!direct.ok()) {
    EXPECT_TRUE(absl::StartsWith(spec.status().message(), "--url: ")) << spec.status();
  }
}

TEST(CliSpecTest, FlagForSpecPath) {
  EXPECT_EQ(FlagForSpecPath("spec.load.closed.clients"), "--clients");
  EXPECT_EQ(FlagForSpecPath("spec.load.duration.connections"), "--clients");
  EXPECT_EQ(FlagForSpecPath("spec.target.prompt"), "--prompt");
  EXPECT_EQ(FlagForSpecPath("spec.target.prompts"), "--prompts-file");
  EXPECT_EQ(FlagForSpecPath("spec.target.headers[\"X-A\"]"), "--header \"X-A\"");
  EXPECT_EQ(FlagForSpecPath("spec.target.headersFromEnv[\"k\"]"), "--header-from-env \"k\"");
  EXPECT_EQ(FlagForSpecPath("spec.thresholds[3].below"), "--threshold");
  EXPECT_EQ(FlagForSpecPath("spec.load.open.stages[1].targetRate"), "--ramp");
  // Fields no flag sets, and look-alike prefixes.
  EXPECT_EQ(FlagForSpecPath("spec.labels[\"a\"]"), "");
  EXPECT_EQ(FlagForSpecPath("spec.target.wsUrl"), "");
  EXPECT_EQ(FlagForSpecPath("spec.target.urls"), "--url");  // --url given several times
  EXPECT_EQ(FlagForSpecPath("spec.target.urls[2]"), "--url");
  EXPECT_EQ(FlagForSpecPath("spec.target.tenant"), "");
  EXPECT_EQ(FlagForSpecPath("spec.names"), "");
}

TEST(CliSpecTest, SpecFileErrorsKeepTheirFieldUnlessAFlagSetIt) {
  v1::RunSpec spec;
  spec.mutable_target()->set_protocol(v1::OPENAI_CHAT);
  spec.mutable_target()->set_url("http://h:1");
  spec.mutable_load()->mutable_closed()->set_clients(0);
  spec.mutable_load()->mutable_closed()->set_cycles_per_client(1);
  const auto none = [](const std::string&) { return false; };
  absl::Status s = ValidateSpecForCli(spec, none);
  EXPECT_EQ(s.message(), "spec.load.closed.clients: must be between 1 and 1000000, got 0");
  s = ValidateSpecForCli(spec, [](const std::string& flag) { return flag == "clients"; });
  EXPECT_EQ(s.message(),
            "--clients: must be between 1 and 1000000, got 0 [spec.load.closed.clients]");
  spec.mutable_load()->mutable_closed()->set_clients(1);
  (*spec.mutable_labels())["bad label"] = "x";
  s = ValidateSpecForCli(spec);  // no flag sets labels
  EXPECT_TRUE(absl::StartsWith(s.message(), "spec.labels[\"bad label\"]: ")) << s;
}

TEST(CliSpecTest, FlagsGivenOnTheCommandLineOverrideASpecFile) {
  v1::RunSpec file;
  file.set_name("from-file");
  v1::Target* t = file.mutable_target();
  t->set_protocol(v1::OPENAI_CHAT);
  t->set_url("http://emulator:8080");
  t->set_model("file-model");
  t->set_prompt("file prompt");
  t->set_max_tokens(64);
  t->set_api_key_env("FILE_KEY");
  (*t->mutable_headers())["x-file"] = "1";
  file.mutable_load()->mutable_closed()->set_clients(4);
  file.mutable_load()->mutable_closed()->set_cycles_per_client(2);

  // Values from the environment do not touch the file.
  auto o = Parse({"run", "-f", "spec.json"},
                 {{"LLMLOAD_MODEL", "env-model"}, {"LLMLOAD_TARGET_URL", "http://env:1"},
                  {"LLMLOAD_PROTOCOL", "GEMINI"}, {"NUM_CLIENTS", "99"}});
  ASSERT_TRUE(o.ok()) << o.status();
  v1::RunSpec spec = file;
  ApplyFlagsToFileSpec(*o, &spec);
  EXPECT_EQ(spec.SerializeAsString(), file.SerializeAsString());

  o = Parse({"run", "-f", "spec.json", "--url", "http://127.0.0.1:9", "--protocol",
             "anthropic_messages", "--model", "claude", "--max-tokens", "16", "--api-key-env",
             "ANTHROPIC_KEY", "--header", "x-cli=2", "--header-from-env", "x-env=CLI_ENV",
             "--name", "renamed", "--threshold", "ttft:p95<1s"});
  ASSERT_TRUE(o.ok()) << o.status();
  o->prompts = {"p1", "p2"};  // as if from --prompts-file, which was not given
  spec = file;
  ApplyFlagsToFileSpec(*o, &spec);
  EXPECT_EQ(spec.name(), "renamed");
  EXPECT_EQ(spec.target().url(), "http://127.0.0.1:9");
  EXPECT_EQ(spec.target().protocol(), v1::ANTHROPIC_MESSAGES);
  EXPECT_EQ(spec.target().model(), "claude");
  EXPECT_EQ(spec.target().prompt(), "file prompt");  // --prompt not given
  EXPECT_EQ(spec.target().prompts_size(), 0);        // --prompts-file not given
  EXPECT_EQ(spec.target().max_tokens(), 16);
  EXPECT_EQ(spec.target().api_key_env(), "ANTHROPIC_KEY");
  EXPECT_EQ(spec.target().headers().at("x-file"), "1");
  EXPECT_EQ(spec.target().headers().at("x-cli"), "2");
  EXPECT_EQ(spec.target().headers_from_env().at("x-env"), "CLI_ENV");
  EXPECT_EQ(spec.load().closed().clients(), 4);  // load comes from the file
  ASSERT_EQ(spec.thresholds_size(), 1);
  EXPECT_EQ(spec.thresholds(0).metric(), "ttft");

  o = Parse({"run", "-f", "spec.json", "--prompts-file", "p.jsonl"});
  ASSERT_TRUE(o.ok()) << o.status();
  o->prompts = {"p1", "p2"};
  spec = file;
  ApplyFlagsToFileSpec(*o, &spec);
  ASSERT_EQ(spec.target().prompts_size(), 2);
  EXPECT_EQ(spec.target().prompts(1), "p2");
}

// --url more than once: the URLs in order fill spec.target.urls (url stays
// empty); once, spec.target.url as before. The command line's replace the
// environment's, with or without -f.
TEST(CliSpecTest, RepeatedUrlFillsTargetUrls) {
  auto o = Parse({"run", "--protocol", "openai_chat", "--url", "http://127.0.0.1:1",
                  "--url=http://127.0.0.1:2", "--url", "http://127.0.0.1:3"},
                 {{"LLMLOAD_TARGET_URL", "http://env:9"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->urls, (std::vector<std::string>{"http://127.0.0.1:1", "http://127.0.0.1:2",
                                               "http://127.0.0.1:3"}));
  EXPECT_EQ(o->url, "http://127.0.0.1:1");
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, o->urls);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->target().url(), "");
  ASSERT_EQ(spec->target().urls_size(), 3);
  EXPECT_EQ(spec->target().urls(0), "http://127.0.0.1:1");
  EXPECT_EQ(spec->target().urls(2), "http://127.0.0.1:3");

  // Once, or only from the environment: spec.target.url.
  o = Parse({"run", "--url", "http://127.0.0.1:1"}, {{"LLMLOAD_TARGET_URL", "http://env:9"}});
  ASSERT_TRUE(o.ok()) << o.status();
  spec = BuildRunSpec(*o, o->urls);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->target().url(), "http://127.0.0.1:1");
  EXPECT_EQ(spec->target().urls_size(), 0);
  o = Parse({"run"}, {{"LLMLOAD_TARGET_URL", "http://127.0.0.1:7"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->urls, std::vector<std::string>{"http://127.0.0.1:7"});
  EXPECT_EQ(BuildRunSpec(*o, o->urls)->target().url(), "http://127.0.0.1:7");

  // A bad one is named by the flag and its index.
  o = Parse({"run", "--url", "http://127.0.0.1:1", "--url", "ftp://127.0.0.1:2/"});
  ASSERT_TRUE(o.ok()) << o.status();
  spec = BuildRunSpec(*o, o->urls);
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::StartsWith(spec.status().message(), "--url: scheme must be")) << spec.status();
  EXPECT_TRUE(absl::EndsWith(spec.status().message(), "[spec.target.urls[1]]")) << spec.status();

  // With -f the flags replace the file's target, one URL or several.
  v1::RunSpec file;
  file.mutable_target()->set_protocol(v1::OPENAI_CHAT);
  file.mutable_target()->set_url("http://emulator:8080");
  file.mutable_load()->mutable_closed()->set_clients(4);
  file.mutable_load()->mutable_closed()->set_cycles_per_client(1);
  o = Parse(
      {"run", "-f", "spec.json", "--url", "http://127.0.0.1:1", "--url", "http://127.0.0.1:2"});
  ASSERT_TRUE(o.ok()) << o.status();
  v1::RunSpec several = file;
  ApplyFlagsToFileSpec(*o, &several);
  EXPECT_EQ(several.target().url(), "");
  ASSERT_EQ(several.target().urls_size(), 2);
  EXPECT_EQ(several.target().urls(1), "http://127.0.0.1:2");
  EXPECT_TRUE(ValidateSpecForCli(several).ok()) << ValidateSpecForCli(several);
  // A file with urls, and one --url: the file's urls go.
  v1::RunSpec file_urls = several;
  o = Parse({"run", "-f", "spec.json", "--url", "http://127.0.0.1:5"});
  ASSERT_TRUE(o.ok()) << o.status();
  ApplyFlagsToFileSpec(*o, &file_urls);
  EXPECT_EQ(file_urls.target().url(), "http://127.0.0.1:5");
  EXPECT_EQ(file_urls.target().urls_size(), 0);
  EXPECT_TRUE(ValidateSpecForCli(file_urls).ok()) << ValidateSpecForCli(file_urls);
}

TEST(CliSpecTest, PromptsFromJsonLines) {
  absl::StatusOr<PromptDataset> p = ParsePrompts(
      "\"What is TCP?\"\n\n  {\"prompt\": \"Tell me a joke.\", \"id\": 7}  \n"
      "\"caf\\u00e9 \\\"quoted\\\"\\nnewline\"\r\n",
      "p.jsonl");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->prompts, (std::vector<std::string>{"What is TCP?", "Tell me a joke.",
                                                  "caf\xc3\xa9 \"quoted\"\nnewline"}));
  EXPECT_TRUE(p->conversations.empty());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"\"ok\"\nnot json\n", "--prompts-file p.jsonl:2: not JSON"},
      {"42\n", "--prompts-file p.jsonl:1: expected a JSON string, {\"prompt\": \"...\"} or "
                "{\"messages\": [...]}"},
      {"{\"prompt\": 5}\n", "--prompts-file p.jsonl:1: \"prompt\" must be a string"},
      {"{\"text\": \"x\"}\n",
       "--prompts-file p.jsonl:1: an object needs a string \"prompt\" or a \"messages\" list"},
      {"\"a\"\n\"b\"\n{\"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}]}\n",
       "--prompts-file p.jsonl:3: message 0: role must be system, user or assistant"},
      {"{\"messages\": []}\n", "--prompts-file p.jsonl:1: \"messages\" must be a non-empty list"},
      {"[{\"role\": \"user\"}]\n",
       "--prompts-file p.jsonl:1: message 0 needs a string \"role\" and a \"content\""},
      {"[{\"role\": \"system\", \"content\": \"s\"}]\n",
       "--prompts-file p.jsonl:1: a message list needs a message with role user"},
      {"\n  \n", "--prompts-file p.jsonl: no prompts"},
  };
  for (const auto& [text, want] : bad) {
    p = ParsePrompts(text, "p.jsonl");
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_TRUE(absl::StartsWith(p.status().message(), want)) << p.status();
  }
}

TEST(CliSpecTest, MessageListsMakeConversations) {
  absl::StatusOr<PromptDataset> p = ParsePrompts(
      "\"plain\"\n"
      "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
      " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Hi \"},"
      " {\"type\": \"text\", \"text\": \"there\"}]}]}\n"
      "[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"},"
      " {\"role\": \"user\", \"content\": \"c\"}]\n",
      "p.jsonl");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->prompts.empty());
  ASSERT_EQ(p->conversations.size(), 3u);
  // A plain line in a dataset with message lists is one user message.
  ASSERT_EQ(p->conversations[0].messages_size(), 1);
  EXPECT_EQ(p->conversations[0].messages(0).role(), "user");
  EXPECT_EQ(p->conversations[0].messages(0).content(), "plain");
  ASSERT_EQ(p->conversations[1].messages_size(), 2);
  EXPECT_EQ(p->conversations[1].messages(0).role(), "system");
  EXPECT_EQ(p->conversations[1].messages(1).content(), "Hi there");
  EXPECT_EQ(p->conversations[2].messages(2).content(), "c");

  auto o = Parse({"local", "--protocol", "openai_chat", "--prompt-order", "random",
                  "--prompt-seed", "9", "--output-length", "uniform:4:8"});
  ASSERT_TRUE(o.ok()) << o.status();
  o->prompt_messages = p->conversations;
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, "http://h:1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->target().prompt_messages_size(), 3);
  EXPECT_EQ(spec->target().prompts_size(), 0);
  EXPECT_EQ(spec->target().prompt_order(), v1::PROMPT_ORDER_RANDOM);
  EXPECT_EQ(spec->target().prompt_seed(), 9u);
  EXPECT_EQ(spec->target().output_length().kind(), v1::LENGTH_UNIFORM);
  EXPECT_EQ(spec->target().output_length().max(), 8);
}

TEST(CliSpecTest, TheExampleDatasetIsAValidSpec) {
  auto o = Parse({"local", "--protocol", "openai_chat", "--prompts-file",
                  std::string(LLMLOAD_SOURCE_DIR) + "/examples/prompts.jsonl"});
  ASSERT_TRUE(o.ok()) << o.status();
  ASSERT_TRUE(ReadPromptsFile(&*o).ok());
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, "http://h:1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->target().prompt_messages_size(), 5);
  EXPECT_EQ(spec->target().prompt_messages(4).messages(0).role(), "system");
}

TEST(CliSpecTest, DatasetsBeyondTheCapsAreRefused) {
  std::string big;
  for (int i = 0; i <= validation::kMaxPromptEntries; ++i) {
    big += "\"p\"\n";
  }
  absl::StatusOr<PromptDataset> p = ParsePrompts(big, "big.jsonl");
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::StartsWith(p.status().message(), "--prompts-file big.jsonl:100001: more than "
                                                     "100000 prompts"))
      << p.status();
  const std::string line = "\"" + std::string(1 << 20, 'x') + "\"\n";
  big.clear();
  for (int i = 0; i < 17; ++i) {
    big += line;
  }
  p = ParsePrompts(big, "big.jsonl");
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::StrContains(p.status().message(), "big.jsonl:17: more than 16777216 bytes"))
      << p.status();
}

TEST(CliSpecTest, LengthDistributionFlags) {
  struct Case {
    std::string text;
    v1::LengthKind kind;
    int32_t value, min, max;
    double mean, stddev;
  };
  for (const Case& c : std::vector<Case>{
           {"128", v1::LENGTH_FIXED, 128, 0, 0, 0, 0},
           {"fixed:5", v1::LENGTH_FIXED, 5, 0, 0, 0, 0},
           {"uniform:10:20", v1::LENGTH_UNIFORM, 0, 10, 20, 0, 0},
           {"normal:100:15.5", v1::LENGTH_NORMAL, 0, 0, 0, 100, 15.5},
           {"LogNormal:200:80:10:900", v1::LENGTH_LOGNORMAL, 0, 10, 900, 200, 80},
       }) {
    absl::StatusOr<v1::LengthDistribution> d = ParseLengthDistribution("input-length", c.text);
    ASSERT_TRUE(d.ok()) << c.text << ": " << d.status();
    EXPECT_EQ(d->kind(), c.kind) << c.text;
    EXPECT_EQ(d->value(), c.value) << c.text;
    EXPECT_EQ(d->min(), c.min) << c.text;
    EXPECT_EQ(d->max(), c.max) << c.text;
    EXPECT_DOUBLE_EQ(d->mean(), c.mean) << c.text;
    EXPECT_DOUBLE_EQ(d->stddev(), c.stddev) << c.text;
  }
  for (const char* text : {"", "x", "uniform:1", "normal:1:2:3", "gauss:1:2", "fixed:1.5",
                           "normal:nan:1"}) {
    absl::StatusOr<v1::LengthDistribution> d = ParseLengthDistribution("output-length", text);
    ASSERT_FALSE(d.ok()) << text;
    EXPECT_TRUE(absl::StartsWith(d.status().message(), "--output-length: expected N, fixed:N"))
        << d.status();
  }
  // Bounds are validation's, reported under the flag.
  auto o = Parse({"local", "--protocol", "openai_chat", "--input-length", "uniform:0:5"});
  ASSERT_TRUE(o.ok()) << o.status();
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, "http://h:1");
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::StartsWith(spec.status().message(), "--input-length")) << spec.status();
  EXPECT_TRUE(absl::StrContains(spec.status().message(), "spec.target.inputLength.min"))
      << spec.status();
  o = Parse({"local", "--prompt-order", "shuffled"});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().message(), "--prompt-order: cycle or random, got 'shuffled'");
  EXPECT_EQ(FlagForSpecPath("spec.target.promptMessages[3].messages[0].role"), "--prompts-file");
  EXPECT_EQ(FlagForSpecPath("spec.target.outputLength.max"), "--output-length");
}

TEST(CliSpecTest, PromptsFileFillsTheSpecsPrompts) {
  char path[] = "/tmp/llmload-prompts-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = "\"first\"\n{\"prompt\": \"second\"}\n";
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  auto o = Parse({"local", "--protocol", "ws_chat", "--prompts-file", path});
  ASSERT_TRUE(o.ok()) << o.status();
  ASSERT_TRUE(ReadPromptsFile(&*o).ok());
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, EmulatorTargetUrl(v1::WS_CHAT, "h:1"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->target().prompts_size(), 2);
  EXPECT_EQ(spec->target().prompts(0), "first");
  EXPECT_EQ(spec->target().prompts(1), "second");
  EXPECT_EQ(spec->target().prompt(), "");
  std::remove(path);
  // A missing file is a clear error.
  o = Parse({"local", "--prompts-file", "/nonexistent/prompts.jsonl"});
  ASSERT_TRUE(o.ok());
  absl::Status s = ReadPromptsFile(&*o);
  EXPECT_EQ(s.message(), "--prompts-file: cannot read /nonexistent/prompts.jsonl");
  // Too many prompts: validation's limit, named by the flag.
  o = Parse({"local"});
  ASSERT_TRUE(o.ok());
  o->prompts.assign(100001, "p");
  spec = BuildRunSpec(*o, "http://h:1");
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::StartsWith(spec.status().message(), "--prompts-file: at most 100000 prompts"))
      << spec.status();
}

TEST(CliSpecTest, UsageTextDocumentsTheTargetFlags) {
  const std::string usage = UsageText();
  for (const char* flag : {"--protocol NAME", "--model NAME", "--prompt TEXT",
                           "--prompts-file FILE", "--max-tokens N", "--api-key-env NAME",
                           "--header NAME=VALUE", "--header-from-env NAME=ENVVAR",
                           "LLMLOAD_PROTOCOL", "LLMLOAD_MODEL", "LLMLOAD_PROMPT",
                           "LLMLOAD_PROMPTS_FILE", "LLMLOAD_MAX_TOKENS", "LLMLOAD_API_KEY_ENV"}) {
    EXPECT_TRUE(absl::StrContains(usage, flag)) << flag;
  }
  for (v1::Protocol p : AllProtocols()) {
    EXPECT_TRUE(absl::StrContains(usage, v1::Protocol_Name(p))) << v1::Protocol_Name(p);
  }
}

}  // namespace
}  // namespace llmload::cli

namespace llmload::cli {
namespace {

TEST(CliSpecTest, ToolsFlagSetsTargetTools) {
  auto o = Parse({"local", "--protocol", "ws_chat", "--tools", "search,calc"});
  ASSERT_TRUE(o.ok()) << o.status();
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(*o, "ws://h:1/api/ws");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->target().tools_size(), 2);
  EXPECT_EQ(spec->target().tools(0), "search");
  EXPECT_EQ(spec->target().tools(1), "calc");

  // From the environment too; an empty value sends none.
  auto env = Parse({"local", "--protocol", "ws_chat"}, {{"LLMLOAD_TOOLS", "lookup"}});
  ASSERT_TRUE(env.ok()) << env.status();
  spec = BuildRunSpec(*env, "ws://h:1/api/ws");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->target().tools_size(), 1);
  auto none = Parse({"local", "--protocol", "ws_chat", "--tools", ""});
  ASSERT_TRUE(none.ok()) << none.status();
  spec = BuildRunSpec(*none, "ws://h:1/api/ws");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->target().tools_size(), 0);

  // A bad name, or tools for another protocol, is refused naming the flag.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"local", "--protocol", "ws_chat", "--tools", "a b"},
        std::vector<std::string>{"local", "--protocol", "openai_chat", "--tools", "search"}}) {
    auto bad = Parse(args);
    ASSERT_TRUE(bad.ok()) << bad.status();
    absl::StatusOr<v1::RunSpec> refused = BuildRunSpec(*bad, "http://h:1");
    ASSERT_FALSE(refused.ok()) << args.back();
    EXPECT_TRUE(absl::StrContains(refused.status().message(), "--tools")) << refused.status();
  }
}

TEST(CliSpecTest, OpenAiResponsesIsAProtocol) {
  auto o = Parse({"local", "--protocol", "openai_responses"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->protocol, v1::OPENAI_RESPONSES);
  EXPECT_EQ(EmulatorTargetUrl(v1::OPENAI_RESPONSES, "127.0.0.1:9"), "http://127.0.0.1:9");
}

}  // namespace
}  // namespace llmload::cli
