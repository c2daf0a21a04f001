#include "lib/validation/validation.h"

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "lib/validation/target_urls.h"

namespace llmload::validation {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::RunSpec FromJson(const std::string& json) {
  v1::RunSpec spec;
  auto status = google::protobuf::util::JsonStringToMessage(json, &spec);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return spec;
}

// The DESIGN.md example with only the closed load model.
constexpr char kDesignExample[] = R"json({
  "name": "smoke",
  "target": {"protocol": "CENTRIFUGO_EMULATOR", "url": "http://127.0.0.1:8080",
             "model": "", "prompt": "", "maxTokens": 0, "headers": {},
             "apiKeyEnv": ""},
  "load": {"closed": {"clients": 10, "cyclesPerClient": 5, "maxConcurrent": 50}},
  "emulation": {"lengthWords": 100, "tokenDelay": "0.010s"},
  "thresholds": [{"metric": "ttft", "percentile": 95, "below": "0.5s"}],
  "labels": {"team": "infra"}})json";

v1::RunSpec ValidSpec() { return FromJson(kDesignExample); }

TEST(ValidateRunSpecTest, DesignExamplePasses) {
  EXPECT_TRUE(ValidateRunSpec(ValidSpec()).ok()) << ValidateRunSpec(ValidSpec());
}

TEST(ValidateRunSpecTest, MinimalSpecPasses) {
  const v1::RunSpec spec = FromJson(R"json({
    "target": {"protocol": "CENTRIFUGO_EMULATOR", "url": "http://localhost:8080"},
    "load": {"closed": {"clients": 1, "cyclesPerClient": 1}}})json");
  EXPECT_TRUE(ValidateRunSpec(spec).ok()) << ValidateRunSpec(spec);
}

TEST(ValidateRunSpecTest, RichValidSpecPasses) {
  const v1::RunSpec spec = FromJson(R"json({
    "name": "nightly soak — ü",
    "target": {"protocol": "CENTRIFUGO_EMULATOR", "url": "ws://[::1]:8443/base?x=1",
               "wsUrl": "ws://10.0.0.2/connection/websocket", "maxTokens": 256,
               "headers": {"X-Request-Id": "abc"},
               "headersFromEnv": {"Authorization": "GATEWAY_BEARER"},
               "apiKeyEnv": "OPENAI_API_KEY", "requestTimeout": "3600s"},
    "load": {"closed": {"clients": 1000000, "cyclesPerClient": 1000000, "maxConcurrent": 0}},
    "emulation": {"lengthWords": 0, "tokenDelay": "60s"},
    "thresholds": [{"metric": "e2e", "percentile": 100, "below": "0.000001s"},
                   {"metric": "session_setup", "percentile": 0.1, "below": "1s"}],
    "labels": {"_team": "", "env2": "x"},
    "maxWorkers": 3})json");
  EXPECT_TRUE(ValidateRunSpec(spec).ok()) << ValidateRunSpec(spec);
}

TEST(ValidateRunSpecTest, ApplyDefaultsFillsMaxConcurrent) {
  v1::RunSpec spec = ValidSpec();
  spec.mutable_load()->mutable_closed()->set_max_concurrent(0);
  ApplyDefaults(&spec);
  EXPECT_EQ(spec.load().closed().max_concurrent(), 10);
  spec.mutable_load()->mutable_closed()->set_max_concurrent(3);
  ApplyDefaults(&spec);
  EXPECT_EQ(spec.load().closed().max_concurrent(), 3);
}

TEST(ValidateRunSpecTest, ExampleMessageFromBrief) {
  v1::RunSpec spec = ValidSpec();
  spec.mutable_load()->mutable_closed()->set_clients(0);
  const absl::Status s = ValidateRunSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "spec.load.closed.clients: must be between 1 and 1000000, got 0");
}

TEST(ValidateRunSpecTest, InvalidIsReportedBeforeUnimplemented) {
  v1::RunSpec spec = ValidSpec();
  spec.mutable_target()->set_url("https://127.0.0.1:8443");
  spec.set_max_workers(-1);
  const absl::Status s = ValidateRunSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("spec.maxWorkers: "));
}

TEST(ValidateRunSpecTest, EveryProtocolIsAccepted) {
  for (v1::Protocol p : {v1::CENTRIFUGO_EMULATOR, v1::REALM, v1::WS_CHAT, v1::OPENAI_CHAT,
                         v1::ANTHROPIC_MESSAGES, v1::GEMINI, v1::HTTP_JSON,
                         v1::OPENAI_RESPONSES}) {
    v1::RunSpec spec = ValidSpec();
    spec.mutable_target()->set_protocol(p);
    EXPECT_TRUE(ValidateRunSpec(spec).ok()) << v1::Protocol_Name(p);
  }
}

TEST(ValidateRunSpecTest, WsChatToolsPass) {
  v1::RunSpec spec = ValidSpec();
  spec.mutable_target()->set_protocol(v1::WS_CHAT);
  spec.mutable_target()->add_tools("web.search");
  spec.mutable_target()->add_tools("calc_2");
  EXPECT_TRUE(ValidateRunSpec(spec).ok()) << ValidateRunSpec(spec);
}

TEST(ValidateRunSpecTest, TlsTargetsExceptTheCentrifugoFlow) {
  for (const char* url : {"https://127.0.0.1:8443", "wss://127.0.0.1:8443/api/ws"}) {
    v1::RunSpec spec = ValidSpec();
    spec.mutable_target()->set_url(url);
    const absl::Status s = ValidateRunSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << url;
    EXPECT_THAT(std::string(s.message()), StartsWith("spec.target.url: TLS is not supported"));
    spec.mutable_target()->set_protocol(v1::OPENAI_CHAT);
    EXPECT_TRUE(ValidateRunSpec(spec).ok()) << url;
  }
}

// Several targets: every URL is checked as `url` is, named by its index.
v1::RunSpec WithUrls(std::vector<std::string> urls) {
  v1::RunSpec spec = ValidSpec();
  spec.mutable_target()->clear_url();
  for (std::string& u : urls) {
    spec.mutable_target()->add_urls(std::move(u));
  }
  return spec;
}

TEST(ValidateRunSpecTest, SeveralUrlsPass) {
  const v1::RunSpec spec = FromJson(R"json({
    "target": {"protocol": "WS_CHAT",
               "urls": ["http://127.0.0.1:8081", "ws://10.0.0.7:9000/chat?room=1",
                        "http://emulator-2:8080", "http://127.0.0.1:8081"]},
    "load": {"closed": {"clients": 9, "cyclesPerClient": 1}}})json");
  EXPECT_TRUE(ValidateRunSpec(spec).ok()) << ValidateRunSpec(spec);
  EXPECT_EQ(spec.target().urls_size(), 4);
}

TEST(ValidateRunSpecTest, EachOfSeveralUrlsIsCheckedLikeUrl) {
  struct Case {
    std::vector<std::string> urls;
    std::string path;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {{"http://127.0.0.1:1", ""}, "spec.target.urls[1]", "empty: every entry is a target"},
      {{"", "http://127.0.0.1:1"}, "spec.target.urls[0]", "empty"},
      {{"http://a:1", "http://user:pw@b:2/"}, "spec.target.urls[1]", "must not carry credentials"},
      {{"http://127.0.0.1:1", "http://127.0.0.1:2", "ftp://x/"}, "spec.target.urls[2]",
       "scheme must be http, https, ws or wss"},
      {{"/relative"}, "spec.target.urls[0]", "not a valid absolute URL"},
      {{"http://a:1", "http://localhost:99999/"}, "spec.target.urls[1]",
       "port must be between 1 and 65535"},
      {{"http://a:1", "http://b/v1#frag"}, "spec.target.urls[1]", "#fragment"},
      {{"http://a:1", "http://b/v1?api_key=k"}, "spec.target.urls[1]", "carries a credential"},
  };
  for (const Case& c : cases) {
    const absl::Status s = ValidateRunSpec(WithUrls(c.urls));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.path << " " << s;
    EXPECT_THAT(std::string(s.message()), StartsWith(c.path + ": ")) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.mentions)) << s;
  }
}

TEST(ValidateRunSpecTest, UrlAndUrlsAreNotCombined) {
  v1::RunSpec both = WithUrls({"http://127.0.0.1:1"});
  both.mutable_target()->set_url("http://127.0.0.1:2");
  absl::Status s = ValidateRunSpec(both);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("spec.target.urls: give spec.target.url"));

  v1::RunSpec with_ws = WithUrls({"http://127.0.0.1:1", "http://127.0.0.1:2"});
  with_ws.mutable_target()->set_ws_url("ws://127.0.0.1:3");
  s = ValidateRunSpec(with_ws);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("spec.target.wsUrl: cannot be combined"));

  v1::RunSpec neither = ValidSpec();
  neither.mutable_target()->clear_url();
  s = ValidateRunSpec(neither);
  EXPECT_THAT(std::string(s.message()), StartsWith("spec.target.url: required"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("spec.target.urls"));

  std::vector<std::string> many(kMaxTargetUrls + 1, "http://127.0.0.1:1");
  s = ValidateRunSpec(WithUrls(many));
  EXPECT_THAT(std::string(s.message()), StartsWith("spec.target.urls: at most 1000 URLs"));
  many.pop_back();
  EXPECT_TRUE(ValidateRunSpec(WithUrls(many)).ok());
}

TEST(ValidateRunSpecTest, TlsInAnyOfSeveralUrlsIsNamedForCentrifugo) {
  v1::RunSpec spec = WithUrls({"http://127.0.0.1:1", "https://127.0.0.1:2"});
  const absl::Status s = ValidateRunSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(s.message()), StartsWith("spec.target.urls[1]: TLS is not supported"));
  spec.mutable_target()->set_protocol(v1::OPENAI_CHAT);
  EXPECT_TRUE(ValidateRunSpec(spec).ok());
}

struct BadField {
  std::string test_name;
  std::function<void(v1::RunSpec&)> mutate;
  absl::StatusCode code;
  std::string path;       // the message starts with "<path>: "
  std::string mentions;   // and contains this
};

void PrintTo(const BadField& f, std::ostream* os) { *os << f.test_name; }

class BadFieldTest : public ::testing::TestWithParam<BadField> {};

TEST_P(BadFieldTest, IsRejectedNamingTheField) {
  const BadField& param = GetParam();
  v1::RunSpec spec = ValidSpec();
  param.mutate(spec);
  const absl::Status s = ValidateRunSpec(spec);
  EXPECT_EQ(s.code(), param.code) << s;
  EXPECT_THAT(std::string(s.message()), StartsWith(param.path + ": "));
  EXPECT_THAT(std::string(s.message()), HasSubstr(param.mentions));
}

// A credential given the ways validation refuses never appears in the error.
TEST(ValidationSecretsTest, RefusedCredentialsAreNotQuotedBack) {
  const std::string key = "sk-live-4f9c2a7e1b3d5f6a8c0e2d4b6a8c0e2f4a6b";
  const std::vector<std::function<void(v1::RunSpec&)>> ways = {
      [&](v1::RunSpec& s) { (*s.mutable_target()->mutable_headers())["authorization"] = key; },
      [&](v1::RunSpec& s) { (*s.mutable_target()->mutable_headers())["x-goog-api-key"] = key; },
      [&](v1::RunSpec& s) { s.mutable_target()->set_url("https://u:" + key + "@h.invalid/v1"); },
      [&](v1::RunSpec& s) { s.mutable_target()->set_url("https://h.invalid/v1?api_key=" + key); },
      // Other errors that quote the URL hide its credentials too.
      [&](v1::RunSpec& s) { s.mutable_target()->set_url("ftp://h.invalid/?sig=" + key); },
      [&](v1::RunSpec& s) { s.mutable_target()->set_url("http://h.invalid:99999/?token=" + key); },
      // In any of several URLs.
      [&](v1::RunSpec& s) {
        s.mutable_target()->clear_url();
        s.mutable_target()->add_urls("http://127.0.0.1:1");
        s.mutable_target()->add_urls("https://u:" + key + "@h.invalid/v1");
      },
      [&](v1::RunSpec& s) {
        s.mutable_target()->clear_url();
        s.mutable_target()->add_urls("http://127.0.0.1:1");
        s.mutable_target()->add_urls("ftp://h.invalid/?sig=" + key);
      },
  };
  for (size_t i = 0; i < ways.size(); ++i) {
    v1::RunSpec spec = ValidSpec();
    ways[i](spec);
    const absl::Status s = ValidateRunSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << i;
    EXPECT_EQ(std::string(s.message()).find(key), std::string::npos) << i << ": " << s;
  }
}

google::protobuf::Duration Dur(int64_t seconds, int32_t nanos) {
  google::protobuf::Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

const auto kInvalid = absl::StatusCode::kInvalidArgument;
const auto kUnimplemented = absl::StatusCode::kUnimplemented;

INSTANTIATE_TEST_SUITE_P(
    Fields, BadFieldTest,
    ::testing::Values(
        BadField{"NameTooLong", [](v1::RunSpec& s) { s.set_name(std::string(129, 'a')); },
                 kInvalid, "spec.name", "at most 128 characters, got 129"},
        BadField{"NameControlChar", [](v1::RunSpec& s) { s.set_name("a\nb"); }, kInvalid,
                 "spec.name", "printable"},
        BadField{"ProtocolUnspecified",
                 [](v1::RunSpec& s) { s.mutable_target()->set_protocol(v1::PROTOCOL_UNSPECIFIED); },
                 kInvalid, "spec.target.protocol", "required, one of CENTRIFUGO_EMULATOR"},
        BadField{"TargetMissing", [](v1::RunSpec& s) { s.clear_target(); }, kInvalid,
                 "spec.target.protocol", "required"},
        BadField{"ProtocolUnknownValue",
                 [](v1::RunSpec& s) {
                   s.mutable_target()->set_protocol(static_cast<v1::Protocol>(42));
                 },
                 kInvalid, "spec.target.protocol", "unknown value 42"},
        BadField{"UrlTls",
                 [](v1::RunSpec& s) { s.mutable_target()->set_url("https://127.0.0.1:1"); },
                 kUnimplemented, "spec.target.url", "TLS is not supported"},
        BadField{"ConnectTimeoutNegative",
                 [](v1::RunSpec& s) { s.mutable_target()->mutable_connect_timeout()->set_seconds(-1); },
                 kInvalid, "spec.target.connectTimeout", "between 0 (default) and 1h"},
        BadField{"IdleTimeoutTooLong",
                 [](v1::RunSpec& s) { s.mutable_target()->mutable_idle_timeout()->set_seconds(7200); },
                 kInvalid, "spec.target.idleTimeout", "between 0 (default) and 1h"},
        BadField{"ReconnectAttemptsBelowMinusOne",
                 [](v1::RunSpec& s) { s.mutable_target()->set_reconnect_attempts(-2); },
                 kInvalid, "spec.target.reconnectAttempts", "got -2"},
        // target.tools (WS_CHAT options.tools).
        BadField{"ToolsOnANonWsChatProtocol",
                 [](v1::RunSpec& s) {
                   s.mutable_target()->set_protocol(v1::OPENAI_CHAT);
                   s.mutable_target()->add_tools("search");
                 },
                 kInvalid, "spec.target.tools", "only WS_CHAT sends tools"},
        BadField{"ToolsTooMany",
                 [](v1::RunSpec& s) {
                   s.mutable_target()->set_protocol(v1::WS_CHAT);
                   for (int i = 0; i < 17; ++i) {
                     s.mutable_target()->add_tools(absl::StrCat("t", i));
                   }
                 },
                 kInvalid, "spec.target.tools", "at most 16 tools, got 17"},
        BadField{"ToolNameBadChars",
                 [](v1::RunSpec& s) {
                   s.mutable_target()->set_protocol(v1::WS_CHAT);
                   s.mutable_target()->add_tools("ok");
                   s.mutable_target()->add_tools("a b");
                 },
                 kInvalid, "spec.target.tools[1]", "[A-Za-z0-9_.-]"},
        BadField{"ToolNameEmpty",
                 [](v1::RunSpec& s) {
                   s.mutable_target()->set_protocol(v1::WS_CHAT);
                   s.mutable_target()->add_tools("");
                 },
                 kInvalid, "spec.target.tools[0]", "must be 1-64 characters"},
        BadField{"ToolNameRepeated",
                 [](v1::RunSpec& s) {
                   s.mutable_target()->set_protocol(v1::WS_CHAT);
                   s.mutable_target()->add_tools("calc");
                   s.mutable_target()->add_tools("calc");
                 },
                 kInvalid, "spec.target.tools[1]", "repeats \"calc\""},
        BadField{"TenantBadChars",
                 [](v1::RunSpec& s) { s.mutable_target()->set_tenant("a b c"); },
                 kInvalid, "spec.target.tenant", "[A-Za-z0-9_-]"},
        BadField{"SourceAddressNotAnIp",
                 [](v1::RunSpec& s) { s.mutable_target()->add_source_addresses("localhost"); },
                 kInvalid, "spec.target.sourceAddresses[0]", "not an IP address"},
        BadField{"UrlMissing", [](v1::RunSpec& s) { s.mutable_target()->clear_url(); }, kInvalid,
                 "spec.target.url", "required"},
        BadField{"UrlNotAUrl", [](v1::RunSpec& s) { s.mutable_target()->set_url("127.0.0.1:8080"); },
                 kInvalid, "spec.target.url", "127.0.0.1:8080"},
        BadField{"UrlRelative", [](v1::RunSpec& s) { s.mutable_target()->set_url("/api"); },
                 kInvalid, "spec.target.url", "not a valid absolute URL"},
        BadField{"UrlBadScheme",
                 [](v1::RunSpec& s) { s.mutable_target()->set_url("ftp://example.com/"); },
                 kInvalid, "spec.target.url", "scheme must be http, https, ws or wss"},
        BadField{"UrlNoHost", [](v1::RunSpec& s) { s.mutable_target()->set_url("http:///x"); },
                 kInvalid, "spec.target.url", "host is required"},
        BadField{"UrlBadPort",
                 [](v1::RunSpec& s) { s.mutable_target()->set_url("http://localhost:99999/"); },
                 kInvalid, "spec.target.url", "port must be between 1 and 65535"},
        BadField{"UrlWithSpace",
                 [](v1::RunSpec& s) { s.mutable_target()->set_url("http://local host/"); },
                 kInvalid, "spec.target.url", "spaces"},
        BadField{"UrlWithCredentials",
                 [](v1::RunSpec& s) { s.mutable_target()->set_url("http://u:secret@host/"); },
                 kInvalid, "spec.target.url", "credentials"},
        BadField{"UrlWithFragment",
                 [](v1::RunSpec& s) { s.mutable_target()->set_url("http://host/v1?a=1#part"); },
                 kInvalid, "spec.target.url", "#fragment"},
        BadField{"WsUrlBadScheme",
                 [](v1::RunSpec& s) { s.mutable_target()->set_ws_url("mailto:x@y"); }, kInvalid,
                 "spec.target.wsUrl", "scheme"},
        BadField{"MaxTokensNegative",
                 [](v1::RunSpec& s) { s.mutable_target()->set_max_tokens(-1); }, kInvalid,
                 "spec.target.maxTokens", "got -1"},
        BadField{"HeaderNameWithSpace",
                 [](v1::RunSpec& s) { (*s.mutable_target()->mutable_headers())["X Bad"] = "v"; },
                 kInvalid, "spec.target.headers[\"X Bad\"]", "HTTP token"},
        BadField{"HeaderNameEmpty",
                 [](v1::RunSpec& s) { (*s.mutable_target()->mutable_headers())[""] = "v"; },
                 kInvalid, "spec.target.headers[\"\"]", "HTTP token"},
        BadField{"HeaderValueWithNewline",
                 [](v1::RunSpec& s) {
                   (*s.mutable_target()->mutable_headers())["X-Ok"] = "a\r\nInjected: 1";
                 },
                 kInvalid, "spec.target.headers[\"X-Ok\"]", "CR, LF or NUL"},
        BadField{"LiteralAuthorizationHeader",
                 [](v1::RunSpec& s) {
                   (*s.mutable_target()->mutable_headers())["Authorization"] = "Bearer sk-1";
                 },
                 kInvalid, "spec.target.headers[\"Authorization\"]", "headersFromEnv"},
        BadField{"LiteralAzureKeyHeader",
                 [](v1::RunSpec& s) { (*s.mutable_target()->mutable_headers())["api-key"] = "k"; },
                 kInvalid, "spec.target.headers[\"api-key\"]", "carries a credential"},
        BadField{"UrlQueryWithKey",
                 [](v1::RunSpec& s) {
                   s.mutable_target()->set_url("https://h.invalid/v1beta?alt=sse&key=AIza1");
                 },
                 kInvalid, "spec.target.url", "query parameter \"key\" carries a credential"},
        BadField{"WsUrlQueryWithToken",
                 [](v1::RunSpec& s) { s.mutable_target()->set_ws_url("ws://h.invalid/ws?token=t"); },
                 kInvalid, "spec.target.wsUrl", "apiKeyEnv"},
        BadField{"HeadersFromEnvBadVariable",
                 [](v1::RunSpec& s) {
                   (*s.mutable_target()->mutable_headers_from_env())["api-key"] = "AZURE KEY";
                 },
                 kInvalid, "spec.target.headersFromEnv[\"api-key\"]", "environment variable"},
        BadField{"HeadersFromEnvBadName",
                 [](v1::RunSpec& s) {
                   (*s.mutable_target()->mutable_headers_from_env())["a b"] = "KEY";
                 },
                 kInvalid, "spec.target.headersFromEnv[\"a b\"]", "HTTP token"},
        BadField{"HeadersFromEnvAlsoLiteral",
                 [](v1::RunSpec& s) {
                   (*s.mutable_target()->mutable_headers_from_env())["x-team"] = "TEAM";
                   (*s.mutable_target()->mutable_headers())["x-team"] = "blue";
                 },
                 kInvalid, "spec.target.headersFromEnv[\"x-team\"]", "one source"},
        BadField{"ApiKeyEnvBadSyntax",
                 [](v1::RunSpec& s) { s.mutable_target()->set_api_key_env("1-KEY"); }, kInvalid,
                 "spec.target.apiKeyEnv", "environment variable name"},
        BadField{"RequestTimeoutTooLong",
                 [](v1::RunSpec& s) {
                   *s.mutable_target()->mutable_request_timeout() = Dur(7200, 0);
                 },
                 kInvalid, "spec.target.requestTimeout", "got 2h"},
        BadField{"RequestTimeoutTooShort",
                 [](v1::RunSpec& s) {
                   *s.mutable_target()->mutable_request_timeout() = Dur(0, 1000);
                 },
                 kInvalid, "spec.target.requestTimeout", "between 1ms and 1h"},
        BadField{"RequestTimeoutNegative",
                 [](v1::RunSpec& s) {
                   *s.mutable_target()->mutable_request_timeout() = Dur(-1, 0);
                 },
                 kInvalid, "spec.target.requestTimeout", "got -1s"},
        BadField{"RequestTimeoutMalformed",
                 [](v1::RunSpec& s) {
                   *s.mutable_target()->mutable_request_timeout() = Dur(1, -5);
                 },
                 kInvalid, "spec.target.requestTimeout", "not a valid duration"},
        BadField{"LoadMissing", [](v1::RunSpec& s) { s.clear_load(); }, kInvalid, "spec.load",
                 "exactly one of closed, duration, open"},
        BadField{"ClosedClientsZero",
                 [](v1::RunSpec& s) { s.mutable_load()->mutable_closed()->set_clients(0); },
                 kInvalid, "spec.load.closed.clients", "must be between 1 and 1000000, got 0"},
        BadField{"ClosedClientsTooMany",
                 [](v1::RunSpec& s) { s.mutable_load()->mutable_closed()->set_clients(1000001); },
                 kInvalid, "spec.load.closed.clients", "got 1000001"},
        BadField{"ClosedCyclesZero",
                 [](v1::RunSpec& s) {
                   s.mutable_load()->mutable_closed()->set_cycles_per_client(0);
                 },
                 kInvalid, "spec.load.closed.cyclesPerClient", "between 1 and 1000000"},
        BadField{"ClosedMaxConcurrentNegative",
                 [](v1::RunSpec& s) {
                   s.mutable_load()->mutable_closed()->set_max_concurrent(-1);
                 },
                 kInvalid, "spec.load.closed.maxConcurrent", "0 (same as clients)"},
        BadField{"ClosedMaxConcurrentTooMany",
                 [](v1::RunSpec& s) {
                   s.mutable_load()->mutable_closed()->set_max_concurrent(1000001);
                 },
                 kInvalid, "spec.load.closed.maxConcurrent", "got 1000001"},
        BadField{"DurationThinkMaxBelowMin",
                 [](v1::RunSpec& s) {
                   auto* d = s.mutable_load()->mutable_duration();
                   d->set_connections(10);
                   *d->mutable_duration() = Dur(30, 0);
                   *d->mutable_think_time()->mutable_min() = Dur(2, 0);
                   *d->mutable_think_time()->mutable_max() = Dur(1, 0);
                 },
                 kInvalid, "spec.load.duration.thinkTime.max", "must be >= min (2s), got 1s"},
        BadField{"ClosedThinkNegative",
                 [](v1::RunSpec& s) {
                   *s.mutable_load()->mutable_closed()->mutable_think_time()->mutable_min() =
                       Dur(-1, 0);
                 },
                 kInvalid, "spec.load.closed.thinkTime.min", "between 0s and 1h"},
        BadField{"DurationConnectionsZero",
                 [](v1::RunSpec& s) {
                   *s.mutable_load()->mutable_duration()->mutable_duration() = Dur(30, 0);
                 },
                 kInvalid, "spec.load.duration.connections", "got 0"},
        BadField{"DurationDurationMissing",
                 [](v1::RunSpec& s) {
                   s.mutable_load()->mutable_duration()->set_connections(10);
                 },
                 kInvalid, "spec.load.duration.duration", "required"},
        BadField{"OpenStageWithoutDuration",
                 [](v1::RunSpec& s) {
                   auto* o = s.mutable_load()->mutable_open();
                   o->set_rate_per_second(20);
                   o->add_stages()->set_target_rate(50);
                 },
                 kInvalid, "spec.load.open.stages[0].duration", "required"},
        BadField{"OpenStageNegativeRate",
                 [](v1::RunSpec& s) {
                   auto* o = s.mutable_load()->mutable_open();
                   auto* st = o->add_stages();
                   st->set_target_rate(-1);
                   *st->mutable_duration() = Dur(10, 0);
                 },
                 kInvalid, "spec.load.open.stages[0].targetRate", "must be >= 0"},
        BadField{"OpenStagesAllZero",
                 [](v1::RunSpec& s) {
                   auto* st = s.mutable_load()->mutable_open()->add_stages();
                   *st->mutable_duration() = Dur(10, 0);
                 },
                 kInvalid, "spec.load.open.stages", "every rate is 0"},
        BadField{"OpenMaxInFlightNegative",
                 [](v1::RunSpec& s) {
                   auto* o = s.mutable_load()->mutable_open();
                   o->set_rate_per_second(20);
                   *o->mutable_duration() = Dur(60, 0);
                   o->set_max_in_flight(-1);
                 },
                 kInvalid, "spec.load.open.maxInFlight", "got -1"},
        BadField{"OpenDistributionUnknown",
                 [](v1::RunSpec& s) {
                   auto* o = s.mutable_load()->mutable_open();
                   o->set_rate_per_second(20);
                   *o->mutable_duration() = Dur(60, 0);
                   o->set_distribution(static_cast<v1::ArrivalDistribution>(9));
                 },
                 kInvalid, "spec.load.open.distribution", "one of POISSON, UNIFORM"},
        BadField{"OpenRateZero",
                 [](v1::RunSpec& s) {
                   *s.mutable_load()->mutable_open()->mutable_duration() = Dur(60, 0);
                 },
                 kInvalid, "spec.load.open.ratePerSecond", "must be > 0"},
        BadField{"LengthWordsNegative",
                 [](v1::RunSpec& s) { s.mutable_emulation()->set_length_words(-1); }, kInvalid,
                 "spec.emulation.lengthWords", "between 0 and 100000"},
        BadField{"LengthWordsTooMany",
                 [](v1::RunSpec& s) { s.mutable_emulation()->set_length_words(100001); },
                 kInvalid, "spec.emulation.lengthWords", "got 100001"},
        BadField{"TokenDelayNegative",
                 [](v1::RunSpec& s) {
                   *s.mutable_emulation()->mutable_token_delay() = Dur(0, -10000000);
                 },
                 kInvalid, "spec.emulation.tokenDelay", "between 0s and 60s, got -10ms"},
        BadField{"TokenDelayTooLong",
                 [](v1::RunSpec& s) {
                   *s.mutable_emulation()->mutable_token_delay() = Dur(61, 0);
                 },
                 kInvalid, "spec.emulation.tokenDelay", "got 1m1s"},
        BadField{"ThresholdUnknownMetric",
                 [](v1::RunSpec& s) { s.mutable_thresholds(0)->set_metric("p95"); }, kInvalid,
                 "spec.thresholds[0].metric", "unknown metric \"p95\"; one of connect"},
        BadField{"ThresholdMetricMissing",
                 [](v1::RunSpec& s) { s.add_thresholds()->set_percentile(50); }, kInvalid,
                 "spec.thresholds[1].metric", "required"},
        BadField{"ThresholdPercentileZero",
                 [](v1::RunSpec& s) { s.mutable_thresholds(0)->set_percentile(0); }, kInvalid,
                 "spec.thresholds[0].percentile", "(0, 100]"},
        BadField{"ThresholdPercentileAbove100",
                 [](v1::RunSpec& s) { s.mutable_thresholds(0)->set_percentile(100.5); },
                 kInvalid, "spec.thresholds[0].percentile", "got 100.5"},
        BadField{"ThresholdBelowZero",
                 [](v1::RunSpec& s) {
                   *s.mutable_thresholds(0)->mutable_below() = Dur(0, 0);
                 },
                 kInvalid, "spec.thresholds[0].below", "must be > 0"},
        BadField{"ThresholdBelowMissing",
                 [](v1::RunSpec& s) { s.mutable_thresholds(0)->clear_below(); }, kInvalid,
                 "spec.thresholds[0].below", "required"},
        BadField{"ErrorRateBoundOutOfRange",
                 [](v1::RunSpec& s) {
                   auto* t = s.add_thresholds();
                   t->set_metric("error_rate");
                   t->set_below_value(5);
                 },
                 kInvalid, "spec.thresholds[1].belowValue", "fraction in (0, 1]"},
        BadField{"ThroughputNegative",
                 [](v1::RunSpec& s) {
                   auto* t = s.add_thresholds();
                   t->set_metric("requests_per_sec");
                   t->set_above(-1);
                 },
                 kInvalid, "spec.thresholds[1].above", "must be >= 0"},
        BadField{"KindDoesNotFitMetric",
                 [](v1::RunSpec& s) { s.mutable_thresholds(0)->set_kind(v1::THROUGHPUT); },
                 kInvalid, "spec.thresholds[0].kind", "THROUGHPUT does not apply to metric \"ttft\""},
        BadField{"ObjectiveZero",
                 [](v1::RunSpec& s) { *s.mutable_objectives()->mutable_ttft() = Dur(0, 0); },
                 kInvalid, "spec.objectives.ttft", "must be > 0"},
        BadField{"LabelKeyBadSyntax",
                 [](v1::RunSpec& s) { (*s.mutable_labels())["1team"] = "x"; }, kInvalid,
                 "spec.labels[\"1team\"]", "label name"},
        BadField{"LabelKeyDash", [](v1::RunSpec& s) { (*s.mutable_labels())["a-b"] = "x"; },
                 kInvalid, "spec.labels[\"a-b\"]", "[a-zA-Z_][a-zA-Z0-9_]*"},
        BadField{"LabelKeyReserved",
                 [](v1::RunSpec& s) { (*s.mutable_labels())["__name__"] = "x"; }, kInvalid,
                 "spec.labels[\"__name__\"]", "reserved"},
        BadField{"LabelValueTooLong",
                 [](v1::RunSpec& s) { (*s.mutable_labels())["team"] = std::string(257, 'v'); },
                 kInvalid, "spec.labels[\"team\"]", "at most 256 characters, got 257"},
        BadField{"TooManyLabels",
                 [](v1::RunSpec& s) {
                   for (int i = 0; i < 65; ++i) {
                     (*s.mutable_labels())["k" + std::to_string(i)] = "v";
                   }
                 },
                 kInvalid, "spec.labels", "at most 64 entries"},
        BadField{"MaxWorkersNegative", [](v1::RunSpec& s) { s.set_max_workers(-2); }, kInvalid,
                 "spec.maxWorkers", "must be >= 0"},
        BadField{"CancelShareAboveOne",
                 [](v1::RunSpec& s) {
                   s.mutable_cancellation()->set_share(1.5);
                   s.mutable_cancellation()->set_after_tokens(3);
                 },
                 kInvalid, "spec.cancellation.share", "got 1.5"},
        BadField{"CancelShareNaN",
                 [](v1::RunSpec& s) {
                   s.mutable_cancellation()->set_share(std::nan(""));
                   s.mutable_cancellation()->set_after_tokens(3);
                 },
                 kInvalid, "spec.cancellation.share", "[0, 1]"},
        BadField{"CancelWithoutShare",
                 [](v1::RunSpec& s) { s.mutable_cancellation()->set_after_tokens(3); }, kInvalid,
                 "spec.cancellation.share", "required"},
        BadField{"CancelWithoutWhen",
                 [](v1::RunSpec& s) { s.mutable_cancellation()->set_share(0.2); }, kInvalid,
                 "spec.cancellation", "afterTokens, after, or both"},
        BadField{"CancelAfterTokensNegative",
                 [](v1::RunSpec& s) {
                   s.mutable_cancellation()->set_share(0.2);
                   s.mutable_cancellation()->set_after_tokens(-1);
                 },
                 kInvalid, "spec.cancellation.afterTokens", "got -1"},
        BadField{"CancelAfterTokensUnstreamed",
                 [](v1::RunSpec& s) {
                   s.mutable_target()->set_protocol(v1::OPENAI_CHAT);
                   s.mutable_target()->set_no_stream(true);
                   s.mutable_cancellation()->set_share(0.2);
                   s.mutable_cancellation()->set_after_tokens(2);
                 },
                 kInvalid, "spec.cancellation.afterTokens", "use cancellation.after"},
        BadField{"CancelAfterZero",
                 [](v1::RunSpec& s) {
                   s.mutable_cancellation()->set_share(0.2);
                   *s.mutable_cancellation()->mutable_after() = Dur(0, 0);
                 },
                 kInvalid, "spec.cancellation.after", "must be > 0"},
        BadField{"CancelAfterOverAnHour",
                 [](v1::RunSpec& s) {
                   s.mutable_cancellation()->set_share(0.2);
                   *s.mutable_cancellation()->mutable_after() = Dur(3601, 0);
                 },
                 kInvalid, "spec.cancellation.after", "at most 1h"}),
    [](const ::testing::TestParamInfo<BadField>& info) { return info.param.test_name; });

}  // namespace

TEST(ValidateRunSpecTest, CancellationPassesInJson) {
  v1::RunSpec spec = FromJson(R"json({
    "target": {"protocol": "OPENAI_CHAT", "url": "http://127.0.0.1:8080"},
    "load": {"closed": {"clients": 2, "cyclesPerClient": 3}},
    "cancellation": {"share": 0.25, "afterTokens": 5, "after": "1.5s", "seed": "9"}
  })json");
  EXPECT_TRUE(ValidateRunSpec(spec).ok()) << ValidateRunSpec(spec);
  EXPECT_EQ(spec.cancellation().after_tokens(), 5);
  EXPECT_EQ(spec.cancellation().seed(), 9u);
  // Not streamed: a time limit alone.
  spec.mutable_target()->set_no_stream(true);
  spec.mutable_cancellation()->set_after_tokens(0);
  EXPECT_TRUE(ValidateRunSpec(spec).ok()) << ValidateRunSpec(spec);
}

TEST(ValidateRunSpecTest, EveryLoadModelAndVerdictFieldPassesInJson) {
  // The JSON names users write for the duration and open models, think
  // time, ramp stages, every threshold kind and the goodput objectives.
  v1::RunSpec spec = FromJson(R"json({
    "target": {"protocol": "CENTRIFUGO_EMULATOR", "url": "http://127.0.0.1:8080"},
    "load": {"open": {"ratePerSecond": 20, "duration": "60s", "distribution": "UNIFORM",
                      "stages": [{"targetRate": 50, "duration": "30s"},
                                 {"targetRate": 0, "duration": "10s"}],
                      "maxInFlight": 100, "seed": "42"}},
    "thresholds": [{"metric": "ttft", "percentile": 95, "below": "0.5s"},
                   {"metric": "error_rate", "belowValue": 0.01, "abortOnFail": true},
                   {"metric": "requests_per_sec", "above": 10},
                   {"metric": "goodput_ratio", "kind": "THROUGHPUT", "above": 0.9}],
    "objectives": {"ttft": "0.5s", "meanItl": "0.05s", "e2e": "5s"}})json");
  EXPECT_TRUE(ValidateRunSpec(spec).ok()) << ValidateRunSpec(spec);
  ApplyDefaults(&spec);
  EXPECT_EQ(spec.thresholds(0).kind(), v1::PERCENTILE);
  EXPECT_EQ(spec.thresholds(1).kind(), v1::ERROR_RATE);
  EXPECT_EQ(spec.thresholds(2).kind(), v1::THROUGHPUT);
  EXPECT_EQ(spec.load().open().distribution(), v1::UNIFORM);

  const v1::RunSpec duration = FromJson(R"json({
    "target": {"protocol": "CENTRIFUGO_EMULATOR", "url": "http://127.0.0.1:8080"},
    "load": {"duration": {"connections": 10, "duration": "30s",
                          "thinkTime": {"min": "0.1s", "max": "0.5s"}}}})json");
  EXPECT_TRUE(ValidateRunSpec(duration).ok()) << ValidateRunSpec(duration);

  // Stages alone set the rate: ratePerSecond 0 and no duration are fine.
  v1::RunSpec ramp = FromJson(R"json({
    "target": {"protocol": "CENTRIFUGO_EMULATOR", "url": "http://127.0.0.1:8080"},
    "load": {"open": {"stages": [{"targetRate": 100, "duration": "20s"}]}}})json");
  EXPECT_TRUE(ValidateRunSpec(ramp).ok()) << ValidateRunSpec(ramp);
  ApplyDefaults(&ramp);
  EXPECT_EQ(ramp.load().open().distribution(), v1::POISSON);
}

}  // namespace llmload::validation
