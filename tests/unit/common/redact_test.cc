#include "lib/common/redact.h"

#include <string>

#include "gtest/gtest.h"

namespace llmload {
namespace {

TEST(RedactUrlTest, HidesUserinfoAndCredentialParametersOnly) {
  EXPECT_EQ(RedactUrl("https://user:s3cret@api.example.invalid:8443/v1?model=m&key=abc123"),
            "https://REDACTED@api.example.invalid:8443/v1?model=m&key=REDACTED");
  EXPECT_EQ(RedactUrl("https://h/deploy/x/chat/completions?api-version=2024-10-21&sig=zz#f"),
            "https://h/deploy/x/chat/completions?api-version=2024-10-21&sig=REDACTED#f");
  EXPECT_EQ(RedactUrl("wss://h/ws?Access_Token=t&projectId=p7&API_KEY=k"),
            "wss://h/ws?Access_Token=REDACTED&projectId=p7&API_KEY=REDACTED");
  EXPECT_EQ(RedactUrl("http://127.0.0.1:8080/v1?projectId=p7"), "http://127.0.0.1:8080/v1?projectId=p7");
  EXPECT_EQ(RedactUrl("http://h"), "http://h");
  // An '@' in the path is not userinfo.
  EXPECT_EQ(RedactUrl("http://h/a@b"), "http://h/a@b");
}

TEST(RedactUrlTest, NeverFailsOnMalformedText) {
  EXPECT_EQ(RedactUrl(""), "");
  EXPECT_EQ(RedactUrl("://@"), "://REDACTED@");
  EXPECT_EQ(RedactUrl("not a url?token=x&&="), "not a url?token=REDACTED&&=");
  EXPECT_EQ(RedactUrl("?"), "?");
  EXPECT_EQ(RedactUrl("u:p@h?key"), "u:p@h?key");  // no scheme, no value: nothing to hide
}

TEST(CredentialNamesTest, KnowsTheProvidersHeadersAndParameters) {
  for (const char* h : {"Authorization", "x-api-key", "API-Key", "x-goog-api-key", "Cookie",
                        "X-Auth-Token", "my-session-token", "X-Client-Secret"}) {
    EXPECT_TRUE(IsCredentialHeader(h)) << h;
  }
  for (const char* h : {"content-type", "anthropic-version", "x-request-id", "accept"}) {
    EXPECT_FALSE(IsCredentialHeader(h)) << h;
  }
  for (const char* p : {"key", "api_key", "sig", "Token", "access_token", "code"}) {
    EXPECT_TRUE(IsCredentialQueryParam(p)) << p;
  }
  for (const char* p : {"api-version", "projectId", "alt", "model"}) {
    EXPECT_FALSE(IsCredentialQueryParam(p)) << p;
  }
}

}  // namespace
}  // namespace llmload
