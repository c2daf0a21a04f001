// File: jwt.h
//
// HS256 JSON Web Tokens as the Centrifugo connection token uses them
// (shared/protocols/centrifugo.md §5): base64url without padding, header
// {"alg":"HS256","typ":"JWT"}, HMAC-SHA256 over "<header>.<payload>".
//
// Only the claims the emulator needs are typed (sub, exp, channels); other
// claims are ignored. Verification checks the format, the header's alg and
// the signature (in constant time); expiry is a separate check because
// Centrifugo answers an expired but well-signed token differently (reply
// error 109) from a bad one (close 3500).
//
//   std::string token = jwt::SignHs256(jwt::EncodeClaims(claims), secret);
//   absl::StatusOr<jwt::Claims> c = jwt::VerifyHs256(token, secret);
//   if (!c.ok()) { /* close 3500 */ }
//   else if (jwt::IsExpired(*c, now_unix_seconds)) { /* error 109 */ }
//
// Pure: no I/O, no clock, no globals. Thread-safe.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace llmload::protocol::jwt {

// RFC 4648 §5 alphabet, no '=' padding (as JWS requires).
std::string Base64UrlEncode(std::string_view data);
// Rejects padding, characters outside the alphabet and impossible lengths
// (len % 4 == 1) with INVALID_ARGUMENT.
absl::StatusOr<std::string> Base64UrlDecode(std::string_view text);

struct Claims {
  std::string sub;                    // empty = anonymous
  std::optional<int64_t> exp;         // unix seconds
  std::vector<std::string> channels;  // server-side subscriptions
};

// {"sub":"…","exp":N,"channels":["…"]} in PyJWT's key order (the order the
// original llm-emulator produced); exp is omitted when unset.
std::string EncodeClaims(const Claims& claims);

// "<b64url(header)>.<b64url(payload_json)>.<b64url(hmac)>" with header
// {"alg":"HS256","typ":"JWT"}. payload_json is used byte for byte.
std::string SignHs256(std::string_view payload_json, std::string_view secret);

// Checks the token's shape, that the header names alg HS256, and the
// signature; then decodes the claims. INVALID_ARGUMENT for a malformed
// token or claims of the wrong type, UNAUTHENTICATED for a bad signature.
// Does not look at exp: see IsExpired.
absl::StatusOr<Claims> VerifyHs256(std::string_view token, std::string_view secret);

// True when the token carries exp and now >= exp (RFC 7519 §4.1.4: the token
// must not be accepted "on or after" its expiration time).
bool IsExpired(const Claims& claims, int64_t now_unix_seconds);

}  // namespace llmload::protocol::jwt
