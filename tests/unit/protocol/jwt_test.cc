#include "lib/protocol/jwt.h"

#include <string>

#include "gtest/gtest.h"

namespace llmload::protocol::jwt {
namespace {

// From shared/protocols/fixtures/centrifugo-session.jsonl: signed with the
// demo secret, exp 1767229200 (2026-01-01, already in the past).
constexpr char kFixtureToken[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiI5ZjJjNmExZS00YjdkLTRjMmEtOWUxNS0zZDhmMGI2YTdjMjEiLCJleHAiOjE3NjcyMjkyMDAsImNoYW5u"
    "ZWxzIjpbInNlc3Npb246OWYyYzZhMWUtNGI3ZC00YzJhLTllMTUtM2Q4ZjBiNmE3YzIxIl19."
    "b6IPtxMAp9zlEa50oyOOPAWSIFGj1rJhTqBHTAPYHoM";
// centrifugo-error-invalid-token.jsonl: the same token with a broken signature.
constexpr char kFixtureBadSignature[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiI5ZjJjNmExZS00YjdkLTRjMmEtOWUxNS0zZDhmMGI2YTdjMjEiLCJleHAiOjE3NjcyMjkyMDAsImNoYW5u"
    "ZWxzIjpbInNlc3Npb246OWYyYzZhMWUtNGI3ZC00YzJhLTllMTUtM2Q4ZjBiNmE3YzIxIl19."
    "b6IPtxMAp9zlEa50oyOOPAWSIFGj1rJhTqBHTAPAAAA";
// centrifugo-error-token-expired.jsonl: exp 1700000000.
constexpr char kFixtureExpiredToken[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiI5ZjJjNmExZS00YjdkLTRjMmEtOWUxNS0zZDhmMGI2YTdjMjEiLCJleHAiOjE3MDAwMDAwMDAsImNoYW5u"
    "ZWxzIjpbInNlc3Npb246OWYyYzZhMWUtNGI3ZC00YzJhLTllMTUtM2Q4ZjBiNmE3YzIxIl19."
    "SnswtJm-Tf1cCF5NXHQTmGT_nWtQxq2XrNy7vO8Z0FE";
constexpr char kSecret[] = "super-secret-jwt-key";
constexpr char kSessionId[] = "9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21";
constexpr int64_t kFixtureExp = 1767229200;

TEST(Base64UrlTest, EncodesRfc4648Vectors) {
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("foob"), "Zm9vYg");
  EXPECT_EQ(Base64UrlEncode("fooba"), "Zm9vYmE");
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
  // The two characters that differ from standard base64.
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
}

TEST(Base64UrlTest, DecodeRoundTripsEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all.push_back(static_cast<char>(i));
  }
  for (size_t len = 0; len <= all.size(); len += 17) {
    const std::string part = all.substr(0, len);
    absl::StatusOr<std::string> back = Base64UrlDecode(Base64UrlEncode(part));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, part);
  }
}

TEST(Base64UrlTest, DecodeRejectsMalformedText) {
  EXPECT_FALSE(Base64UrlDecode("Zm9v=").ok());   // padding
  EXPECT_FALSE(Base64UrlDecode("Zm+v").ok());    // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("Zm9vY").ok());   // impossible length
  EXPECT_FALSE(Base64UrlDecode("Zh").ok());      // non-zero trailing bits
  EXPECT_FALSE(Base64UrlDecode("Zm 9v").ok());
}

TEST(JwtTest, VerifiesFixtureTokenWithDemoSecret) {
  absl::StatusOr<Claims> claims = VerifyHs256(kFixtureToken, kSecret);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->sub, kSessionId);
  ASSERT_TRUE(claims->exp.has_value());
  EXPECT_EQ(*claims->exp, kFixtureExp);
  ASSERT_EQ(claims->channels.size(), 1u);
  EXPECT_EQ(claims->channels[0], std::string("session:") + kSessionId);
}

TEST(JwtTest, FixtureTokenIsExpiredNow) {
  absl::StatusOr<Claims> claims = VerifyHs256(kFixtureToken, kSecret);
  ASSERT_TRUE(claims.ok());
  // 2026-11-21 and any later date.
  EXPECT_TRUE(IsExpired(*claims, 1795000000));
  EXPECT_TRUE(IsExpired(*claims, kFixtureExp));  // "on or after"
  EXPECT_FALSE(IsExpired(*claims, kFixtureExp - 1));
}

TEST(JwtTest, ExpiredFixtureHasValidSignature) {
  absl::StatusOr<Claims> claims = VerifyHs256(kFixtureExpiredToken, kSecret);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(*claims->exp, 1700000000);
  EXPECT_TRUE(IsExpired(*claims, 1700000000));
}

TEST(JwtTest, SigningFixtureClaimsReproducesFixtureTokenByteForByte) {
  Claims claims;
  claims.sub = kSessionId;
  claims.exp = kFixtureExp;
  claims.channels = {std::string("session:") + kSessionId};
  const std::string payload = EncodeClaims(claims);
  EXPECT_EQ(payload,
            "{\"sub\":\"9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21\",\"exp\":1767229200,"
            "\"channels\":[\"session:9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21\"]}");
  EXPECT_EQ(SignHs256(payload, kSecret), kFixtureToken);
}

TEST(JwtTest, RejectsBadSignatureAsUnauthenticated) {
  absl::StatusOr<Claims> claims = VerifyHs256(kFixtureBadSignature, kSecret);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(JwtTest, RejectsWrongSecret) {
  absl::StatusOr<Claims> claims = VerifyHs256(kFixtureToken, "another-secret");
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(JwtTest, RejectsTamperedPayload) {
  Claims claims;
  claims.sub = "a";
  claims.exp = 10;
  std::string token = SignHs256(EncodeClaims(claims), kSecret);
  claims.exp = 99999999999;
  const std::string forged_payload = Base64UrlEncode(EncodeClaims(claims));
  const size_t dot1 = token.find('.');
  const size_t dot2 = token.rfind('.');
  token = token.substr(0, dot1 + 1) + forged_payload + token.substr(dot2);
  EXPECT_EQ(VerifyHs256(token, kSecret).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(JwtTest, RejectsMalformedTokens) {
  for (const char* token : {"", "abc", "a.b", "a.b.c.d", "..", "!!.e30.x",
                            // {"alg":"none"} header, any signature.
                            "eyJhbGciOiJub25lIn0.e30.",
                            // HS256 header but payload not base64url.
                            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.***.abc"}) {
    absl::StatusOr<Claims> claims = VerifyHs256(token, kSecret);
    EXPECT_FALSE(claims.ok()) << token;
  }
}

TEST(JwtTest, RejectsAlgNoneEvenWithoutSignature) {
  const std::string token = Base64UrlEncode("{\"alg\":\"none\",\"typ\":\"JWT\"}") + "." +
                            Base64UrlEncode("{\"sub\":\"x\"}") + ".";
  EXPECT_EQ(VerifyHs256(token, kSecret).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(JwtTest, RejectsWellSignedButIllTypedClaims) {
  for (const char* payload : {"[1,2]", "{\"sub\":5}", "{\"exp\":\"soon\"}", "{\"channels\":\"a\"}",
                              "{\"channels\":[1]}", "not json"}) {
    absl::StatusOr<Claims> claims = VerifyHs256(SignHs256(payload, kSecret), kSecret);
    ASSERT_FALSE(claims.ok()) << payload;
    EXPECT_EQ(claims.status().code(), absl::StatusCode::kInvalidArgument) << payload;
  }
}

TEST(JwtTest, TokenWithoutExpNeverExpires) {
  absl::StatusOr<Claims> claims = VerifyHs256(SignHs256("{\"sub\":\"u\"}", kSecret), kSecret);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_FALSE(claims->exp.has_value());
  EXPECT_FALSE(IsExpired(*claims, 4000000000));
  EXPECT_TRUE(claims->channels.empty());
}

TEST(JwtTest, RoundTripsClaims) {
  Claims claims;
  claims.sub = "user \"quoted\"";
  claims.exp = 2000000000;
  claims.channels = {"session:a", "news"};
  absl::StatusOr<Claims> back = VerifyHs256(SignHs256(EncodeClaims(claims), "k"), "k");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->sub, claims.sub);
  EXPECT_EQ(back->exp, claims.exp);
  EXPECT_EQ(back->channels, claims.channels);
}

}  // namespace
}  // namespace llmload::protocol::jwt
