#include "lib/protocol/jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"

namespace llmload::protocol::jwt {
namespace {

// Debian's Abseil does not alias absl::string_view to std::string_view.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
// base64url of {"alg":"HS256","typ":"JWT"}, the header PyJWT writes.
constexpr std::string_view kHs256Header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

// -1 for characters outside the base64url alphabet.
constexpr std::array<int8_t, 256> MakeDecodeTable() {
  std::array<int8_t, 256> table{};
  for (auto& v : table) {
    v = -1;
  }
  for (int i = 0; i < 64; ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  }
  return table;
}
constexpr std::array<int8_t, 256> kDecode = MakeDecodeTable();

std::array<unsigned char, 32> HmacSha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return out;
}

absl::StatusOr<boost::json::object> ParseObject(std::string_view json, std::string_view what) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(boost::json::string_view(json.data(), json.size()), ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("jwt: ", Av(what), " is not JSON"));
  }
  if (!v.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("jwt: ", Av(what), " is not a JSON object"));
  }
  return std::move(v.get_object());
}

}  // namespace

std::string Base64UrlEncode(std::string_view data) {
  std::string out;
  out.reserve((data.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t n = (static_cast<uint32_t>(static_cast<unsigned char>(data[i])) << 16) |
                       (static_cast<uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8) |
                       static_cast<uint32_t>(static_cast<unsigned char>(data[i + 2]));
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(kAlphabet[(n >> 6) & 63]);
    out.push_back(kAlphabet[n & 63]);
  }
  const size_t rest = data.size() - i;
  if (rest == 1) {
    const uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(data[i])) << 16;
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
  } else if (rest == 2) {
    const uint32_t n = (static_cast<uint32_t>(static_cast<unsigned char>(data[i])) << 16) |
                       (static_cast<uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(kAlphabet[(n >> 6) & 63]);
  }
  return out;
}

absl::StatusOr<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) {
    return absl::InvalidArgumentError("base64url: impossible length");
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int8_t v = kDecode[static_cast<unsigned char>(c)];
    if (v < 0) {
      return absl::InvalidArgumentError("base64url: character outside the alphabet");
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero, or the text is not the canonical encoding.
  if ((acc & ((1u << bits) - 1)) != 0) {
    return absl::InvalidArgumentError("base64url: non-zero trailing bits");
  }
  return out;
}

std::string EncodeClaims(const Claims& claims) {
  boost::json::object obj;
  obj["sub"] = boost::json::string_view(claims.sub.data(), claims.sub.size());
  if (claims.exp.has_value()) {
    obj["exp"] = *claims.exp;
  }
  boost::json::array channels;
  for (const std::string& ch : claims.channels) {
    channels.emplace_back(boost::json::string_view(ch.data(), ch.size()));
  }
  obj["channels"] = std::move(channels);
  return boost::json::serialize(obj);
}

std::string SignHs256(std::string_view payload_json, std::string_view secret) {
  std::string token = absl::StrCat(Av(kHs256Header), ".", Base64UrlEncode(payload_json));
  const auto mac = HmacSha256(secret, token);
  token.push_back('.');
  token += Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
  return token;
}

absl::StatusOr<Claims> VerifyHs256(std::string_view token, std::string_view secret) {
  const size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) {
    return absl::InvalidArgumentError("jwt: expected three dot-separated parts");
  }
  const size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return absl::InvalidArgumentError("jwt: expected three dot-separated parts");
  }
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);

  absl::StatusOr<std::string> header = Base64UrlDecode(header_b64);
  if (!header.ok()) {
    return absl::InvalidArgumentError("jwt: header is not base64url");
  }
  absl::StatusOr<boost::json::object> header_obj = ParseObject(*header, "header");
  if (!header_obj.ok()) {
    return header_obj.status();
  }
  const boost::json::value* alg = header_obj->if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->get_string() != "HS256") {
    return absl::InvalidArgumentError("jwt: header alg is not HS256");
  }

  absl::StatusOr<std::string> signature = Base64UrlDecode(signature_b64);
  if (!signature.ok()) {
    return absl::InvalidArgumentError("jwt: signature is not base64url");
  }
  const auto expected = HmacSha256(secret, token.substr(0, dot2));
  if (signature->size() != expected.size() ||
      CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
    return absl::UnauthenticatedError("jwt: signature mismatch");
  }

  absl::StatusOr<std::string> payload = Base64UrlDecode(payload_b64);
  if (!payload.ok()) {
    return absl::InvalidArgumentError("jwt: payload is not base64url");
  }
  absl::StatusOr<boost::json::object> claims_obj = ParseObject(*payload, "payload");
  if (!claims_obj.ok()) {
    return claims_obj.status();
  }
  Claims claims;
  if (const boost::json::value* sub = claims_obj->if_contains("sub"); sub != nullptr) {
    if (!sub->is_string()) {
      return absl::InvalidArgumentError("jwt: sub is not a string");
    }
    claims.sub = std::string(sub->get_string());
  }
  if (const boost::json::value* exp = claims_obj->if_contains("exp"); exp != nullptr) {
    if (exp->is_int64()) {
      claims.exp = exp->get_int64();
    } else if (exp->is_uint64()) {
      claims.exp = std::numeric_limits<int64_t>::max();  // far beyond any clock
    } else if (exp->is_double() && std::isfinite(exp->get_double()) &&
               std::fabs(exp->get_double()) < 9.0e18) {
      claims.exp = static_cast<int64_t>(std::floor(exp->get_double()));
    } else {
      return absl::InvalidArgumentError("jwt: exp is not a number");
    }
  }
  if (const boost::json::value* channels = claims_obj->if_contains("channels");
      channels != nullptr) {
    if (!channels->is_array()) {
      return absl::InvalidArgumentError("jwt: channels is not an array");
    }
    for (const boost::json::value& ch : channels->get_array()) {
      if (!ch.is_string()) {
        return absl::InvalidArgumentError("jwt: channels holds a non-string");
      }
      claims.channels.emplace_back(ch.get_string());
    }
  }
  return claims;
}

bool IsExpired(const Claims& claims, int64_t now_unix_seconds) {
  return claims.exp.has_value() && now_unix_seconds >= *claims.exp;
}

}  // namespace llmload::protocol::jwt
