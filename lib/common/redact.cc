#include "lib/common/redact.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace llmload {
namespace {

constexpr std::array<std::string_view, 10> kCredentialHeaders = {
    "authorization", "proxy-authorization", "x-api-key",  "api-key",      "x-goog-api-key",
    "cookie",        "x-auth-token",        "x-amz-security-token", "ocp-apim-subscription-key",
    "x-functions-key"};

constexpr std::array<std::string_view, 14> kCredentialParams = {
    "key",      "api_key", "apikey",    "api-key",       "token",      "access_token", "sig",
    "signature", "password", "secret", "client_secret", "auth",       "x-goog-api-key", "code"};

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool ContainsAny(std::string_view lower, std::initializer_list<std::string_view> parts) {
  for (std::string_view p : parts) {
    if (lower.find(p) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool IsCredentialHeader(std::string_view name) {
  const std::string lower = Lower(name);
  for (std::string_view h : kCredentialHeaders) {
    if (lower == h) {
      return true;
    }
  }
  return ContainsAny(lower, {"token", "secret", "password", "api-key", "apikey"});
}

bool IsCredentialQueryParam(std::string_view name) {
  const std::string lower = Lower(name);
  for (std::string_view p : kCredentialParams) {
    if (lower == p) {
      return true;
    }
  }
  return ContainsAny(lower, {"token", "secret", "password", "apikey", "api_key"});
}

std::string RedactUrl(std::string_view url) {
  std::string out;
  out.reserve(url.size());
  // Userinfo: between "//" and the first '@' before the path, query or
  // fragment starts.
  std::string_view rest = url;
  if (const size_t scheme_end = url.find("://"); scheme_end != std::string_view::npos) {
    const size_t authority = scheme_end + 3;
    const size_t authority_end = url.find_first_of("/?#", authority);
    const std::string_view auth = url.substr(authority, authority_end == std::string_view::npos
                                                            ? std::string_view::npos
                                                            : authority_end - authority);
    if (const size_t at = auth.rfind('@'); at != std::string_view::npos) {
      out.append(url.substr(0, authority)).append(kRedacted).append("@").append(auth.substr(at + 1));
      rest = authority_end == std::string_view::npos ? std::string_view()
                                                     : url.substr(authority_end);
    } else {
      out.append(url.substr(0, authority));
      rest = url.substr(authority);
    }
  }
  // Query parameters, up to a fragment.
  const size_t q = rest.find('?');
  if (q == std::string_view::npos) {
    out.append(rest);
    return out;
  }
  out.append(rest.substr(0, q + 1));
  std::string_view query = rest.substr(q + 1);
  std::string_view fragment;
  if (const size_t hash = query.find('#'); hash != std::string_view::npos) {
    fragment = query.substr(hash);
    query = query.substr(0, hash);
  }
  bool first = true;
  while (true) {
    const size_t amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    if (!first) {
      out.push_back('&');
    }
    first = false;
    const size_t eq = param.find('=');
    if (eq != std::string_view::npos && IsCredentialQueryParam(param.substr(0, eq))) {
      out.append(param.substr(0, eq + 1)).append(kRedacted);
    } else {
      out.append(param);
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query = query.substr(amp + 1);
  }
  out.append(fragment);
  return out;
}

}  // namespace llmload
