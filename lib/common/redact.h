// File: redact.h
//
// Keeping credentials out of what llmload echoes. A run spec names its
// secrets (apiKeyEnv, headersFromEnv) and the worker reads them from its
// environment; these helpers recognise a credential that arrived anyway (a
// header, a URL's userinfo or query) so that validation can refuse it and
// every message that quotes a URL can hide it.

#pragma once

#include <string>
#include <string_view>

namespace llmload {

// The text that stands for a hidden credential.
inline constexpr std::string_view kRedacted = "REDACTED";

// True for header names (any case) that carry credentials: authorization,
// proxy-authorization, x-api-key, api-key, x-goog-api-key, cookie,
// x-auth-token, ... and any name containing "token", "secret" or "password".
bool IsCredentialHeader(std::string_view name);

// True for URL query parameter names (any case) that carry credentials:
// key, api_key, apikey, api-key, token, access_token, sig, signature,
// password, secret, client_secret, ... .
bool IsCredentialQueryParam(std::string_view name);

// `url` with the userinfo and the values of credential query parameters
// replaced by REDACTED. Works on any text (malformed URLs included), never
// fails, and leaves a URL without credentials unchanged.
std::string RedactUrl(std::string_view url);

}  // namespace llmload
