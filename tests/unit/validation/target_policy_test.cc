#include "lib/validation/target_policy.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llmload::validation {
namespace {

using boost::asio::ip::make_address;
using ::testing::HasSubstr;

v1::RunSpec SpecFor(const std::string& url, const std::string& ws_url = "") {
  v1::RunSpec spec;
  spec.mutable_target()->set_url(url);
  spec.mutable_target()->set_ws_url(ws_url);
  return spec;
}

TEST(TargetPolicyTest, DefaultAllowsLoopbackPrivateAndClusterLocalTargetsOnly) {
  const TargetPolicy p = TargetPolicy::Default();
  for (const char* url :
       {"http://127.0.0.1:8080", "ws://[::1]:9000/ws", "http://localhost:8080/v1",
        "http://emulator:8080", "http://llm.team-a.svc.cluster.local/v1", "https://10.2.3.4",
        "http://172.31.255.1", "http://192.168.1.20", "http://[fd00::1]:80", "http://box.local"}) {
    EXPECT_TRUE(p.CheckSpec(SpecFor(url)).ok()) << url;
  }
  // Public addresses and names, and documentation addresses: refused before
  // anything is dispatched, naming the host and the flag.
  for (const char* url : {"https://api.openai.com/v1", "http://192.0.2.10:8080",
                          "http://[2001:db8::1]/", "http://172.32.0.1", "http://8.8.8.8",
                          "https://target.example.invalid/v1"}) {
    const absl::Status s = p.CheckSpec(SpecFor(url));
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << url;
    EXPECT_THAT(std::string(s.message()), HasSubstr("--allow_targets")) << url;
    EXPECT_THAT(std::string(s.message()), HasSubstr("spec.target.url: target host")) << url;
  }
  // The WebSocket URL is a target too.
  const absl::Status ws = p.CheckSpec(SpecFor("http://127.0.0.1:80", "wss://ws.example.invalid"));
  EXPECT_EQ(ws.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(ws.message()), HasSubstr("spec.target.wsUrl"));
  EXPECT_THAT(std::string(ws.message()), HasSubstr("ws.example.invalid"));
}

// With several target URLs every one must be allowed; a refusal names the
// URL by its index.
TEST(TargetPolicyTest, EveryOneOfSeveralUrlsIsChecked) {
  const TargetPolicy p = TargetPolicy::Default();
  v1::RunSpec spec;
  spec.mutable_target()->add_urls("http://127.0.0.1:8081");
  spec.mutable_target()->add_urls("http://10.0.0.2:8082");
  EXPECT_TRUE(p.CheckSpec(spec).ok()) << p.CheckSpec(spec);
  spec.mutable_target()->add_urls("https://api.example.invalid/v1");
  spec.mutable_target()->add_urls("http://127.0.0.1:8083");
  const absl::Status s = p.CheckSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), HasSubstr("spec.target.urls[2]: target host"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("api.example.invalid"));
  // Refused in second place too: no URL hides behind an allowed first one.
  v1::RunSpec second;
  second.mutable_target()->add_urls("http://127.0.0.1:8081");
  second.mutable_target()->add_urls("http://8.8.8.8:80");
  EXPECT_THAT(std::string(p.CheckSpec(second).message()), HasSubstr("spec.target.urls[1]: "));
  auto listed = TargetPolicy::Parse("default,8.8.8.8");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->CheckSpec(second).ok());
}

TEST(TargetPolicyTest, ListedNamesPatternsAndNetworksAreAllowed) {
  auto p = TargetPolicy::Parse(" default , api.example.invalid,*.corp.example.invalid,192.0.2.0/28,"
                               "2001:db8::/64 ");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->CheckHost("API.Example.Invalid").ok());
  EXPECT_TRUE(p->CheckHost("llm.corp.example.invalid").ok());
  EXPECT_FALSE(p->CheckHost("corp.example.invalid").ok());  // *.x is subdomains only
  EXPECT_FALSE(p->CheckHost("xapi.example.invalid").ok());
  EXPECT_TRUE(p->CheckHost("192.0.2.15").ok());
  EXPECT_FALSE(p->CheckHost("192.0.2.16").ok());
  EXPECT_TRUE(p->CheckHost("[2001:db8::ffff]").ok());
  EXPECT_FALSE(p->CheckHost("[2001:db8:0:1::1]").ok());
  EXPECT_EQ(p->ToString(),
            "default,api.example.invalid,*.corp.example.invalid,192.0.2.0/28,2001:db8::/64");
  // Without "default" nothing local is implied.
  auto only = TargetPolicy::Parse("api.example.invalid");
  ASSERT_TRUE(only.ok());
  EXPECT_FALSE(only->CheckHost("127.0.0.1").ok());
  EXPECT_FALSE(only->CheckHost("emulator").ok());
  auto any = TargetPolicy::Parse("*");
  ASSERT_TRUE(any.ok());
  EXPECT_TRUE(any->CheckHost("8.8.8.8").ok());
  EXPECT_TRUE(any->CheckResolved("x.example.invalid", {make_address("192.0.2.1")}).ok());
}

TEST(TargetPolicyTest, ANameMustResolveInsideTheAllowedNetworksUnlessListed) {
  const TargetPolicy p = TargetPolicy::Default();
  // A cluster-local name resolving to a private address: fine.
  EXPECT_TRUE(p.CheckResolved("emulator", {make_address("10.89.0.5")}).ok());
  // DNS rebinding: a local-looking name resolving to a public address.
  for (const char* addr : {"192.0.2.1", "2001:db8::5", "::ffff:192.0.2.1"}) {
    const absl::Status s =
        p.CheckResolved("rebind.local", {make_address("127.0.0.1"), make_address(addr)});
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << addr;
    EXPECT_THAT(std::string(s.message()), HasSubstr("resolves to")) << s;
  }
  // A mapped loopback address is loopback.
  EXPECT_TRUE(p.CheckResolved("emulator", {make_address("::ffff:127.0.0.1")}).ok());
  // A name the operator listed is trusted wherever it resolves.
  auto listed = TargetPolicy::Parse("default,api.example.invalid");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->CheckResolved("api.example.invalid", {make_address("192.0.2.1")}).ok());
  // A name not allowed at all is refused whatever it resolves to.
  EXPECT_FALSE(p.CheckResolved("api.example.invalid", {make_address("127.0.0.1")}).ok());
}

TEST(TargetPolicyTest, BadEntriesAreRefusedByName) {
  for (const char* bad : {"10.0.0.0/33", "::/129", "a b", "*", "http://x", "a..b", "*.", "x/8"}) {
    auto p = TargetPolicy::Parse(bad);
    if (std::string(bad) == "*") {
      EXPECT_TRUE(p.ok());
      continue;
    }
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("--allow_targets")) << bad;
  }
  EXPECT_TRUE(TargetPolicy::Parse("").ok());  // empty: nothing allowed
  EXPECT_FALSE(TargetPolicy::Parse("")->CheckHost("127.0.0.1").ok());
}

}  // namespace
}  // namespace llmload::validation
