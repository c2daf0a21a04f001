#include "lib/validation/validation.h"

#include <tuple>

#include <boost/asio/ip/address.hpp>
#include <utility>

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "boost/url/parse.hpp"
#include "lib/common/redact.h"
#include "lib/load/verdict.h"
#include "lib/metrics/metrics.h"
#include "lib/metrics/prom_text.h"
#include "lib/validation/target_urls.h"

namespace llmload::validation {
namespace {


// Collects the first invalid field and the first unimplemented feature.
class Checker {
 public:
  void Invalid(std::string_view path, std::string_view reason) {
    if (invalid_.ok()) {
      invalid_ = absl::InvalidArgumentError(
          absl::StrCat(absl::string_view(path.data(), path.size()), ": ",
                       absl::string_view(reason.data(), reason.size())));
    }
  }
  void Unimplemented(std::string_view path, std::string_view reason) {
    if (unimplemented_.ok()) {
      unimplemented_ = absl::UnimplementedError(
          absl::StrCat(absl::string_view(path.data(), path.size()), ": ",
                       absl::string_view(reason.data(), reason.size())));
    }
  }
  absl::Status Result() const { return !invalid_.ok() ? invalid_ : unimplemented_; }

 private:
  absl::Status invalid_;
  absl::Status unimplemented_;
};

// "value" quoted, with control and non-ASCII bytes escaped, and cut short.
std::string Quote(std::string_view value) {
  constexpr size_t kMax = 80;
  std::string out = absl::StrCat(
      "\"", absl::CHexEscape(absl::string_view(value.data(), std::min(value.size(), kMax))), "\"");
  if (value.size() > kMax) {
    absl::StrAppend(&out, "...");
  }
  return out;
}

std::string MapPath(std::string_view prefix, std::string_view key) {
  return absl::StrCat(absl::string_view(prefix.data(), prefix.size()), "[", Quote(key), "]");
}

bool HasControlChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// RFC 9110 token: 1*tchar.
bool IsHttpToken(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           kExtra.find(c) != std::string_view::npos;
  });
}

// [A-Za-z_][A-Za-z0-9_]*: environment variables and Prometheus label names.
bool IsIdentifier(std::string_view s) {
  if (s.empty() || absl::ascii_isdigit(static_cast<unsigned char>(s[0]))) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// Sorted keys, so the first error reported for a map is deterministic.
std::vector<std::string> SortedKeys(const google::protobuf::Map<std::string, std::string>& map) {
  std::vector<std::string> keys;
  keys.reserve(map.size());
  for (const auto& [k, v] : map) {
    keys.push_back(k);
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::string Range(int64_t lo, int64_t hi) { return absl::StrCat("between ", lo, " and ", hi); }

// Converts a proto Duration, reporting a malformed one (nanos out of range, or
// seconds and nanos of different signs).
bool ToDuration(const google::protobuf::Duration& d, std::string_view path, Checker& check,
                absl::Duration* out) {
  const bool nanos_ok = d.nanos() > -1000000000 && d.nanos() < 1000000000;
  const bool signs_ok = (d.seconds() >= 0 && d.nanos() >= 0) || (d.seconds() <= 0 && d.nanos() <= 0);
  if (!nanos_ok || !signs_ok) {
    check.Invalid(path, absl::StrCat("not a valid duration (seconds=", d.seconds(),
                                     ", nanos=", d.nanos(), ")"));
    return false;
  }
  *out = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  return true;
}

std::string Fmt(absl::Duration d) { return absl::FormatDuration(d); }

// A run spec is stored, listed and shown: secrets reach workers by name.
constexpr const char* kCredentialsByName =
    "a spec is stored and shown, so keys reach workers only by name: put the key in the "
    "workers' environment and name it in spec.target.apiKeyEnv or spec.target.headersFromEnv";

void CheckUrl(std::string_view path, const std::string& url, bool required, Checker& check) {
  if (url.empty()) {
    if (required) {
      check.Invalid(path, "required, e.g. \"http://127.0.0.1:8080\"");
    }
    return;
  }
  if (HasControlChar(url) || url.find(' ') != std::string::npos) {
    check.Invalid(path, absl::StrCat("must not contain spaces or control characters, got ",
                                     Quote(RedactUrl(url))));
    return;
  }
  boost::system::result<boost::urls::url_view> parsed =
      boost::urls::parse_uri(boost::urls::string_view(url.data(), url.size()));
  if (!parsed) {
    check.Invalid(path, absl::StrCat("not a valid absolute URL (", parsed.error().message(),
                                     "), got ", Quote(RedactUrl(url))));
    return;
  }
  const std::string scheme = absl::AsciiStrToLower(
      absl::string_view(parsed->scheme().data(), parsed->scheme().size()));
  if (scheme != "http" && scheme != "https" && scheme != "ws" && scheme != "wss") {
    check.Invalid(path, absl::StrCat("scheme must be http, https, ws or wss, got ", Quote(RedactUrl(url))));
    return;
  }
  if (!parsed->has_authority() || parsed->encoded_host().empty()) {
    check.Invalid(path, absl::StrCat("host is required, got ", Quote(RedactUrl(url))));
    return;
  }
  // port_number() wraps values above 65535, so parse the digits ourselves.
  uint32_t port = 0;
  if (parsed->has_port() &&
      (!absl::SimpleAtoi(absl::string_view(parsed->port().data(), parsed->port().size()), &port) ||
       port == 0 || port > 65535)) {
    check.Invalid(path, absl::StrCat("port must be between 1 and 65535, got ", Quote(RedactUrl(url))));
    return;
  }
  if (parsed->has_fragment()) {
    check.Invalid(path, "must not have a #fragment: a fragment is never sent to a server (the "
                        "path and ?query are)");
  }
  if (parsed->has_userinfo()) {
    check.Invalid(path, absl::StrCat("must not carry credentials (", kCredentialsByName, "), got ",
                                     Quote(RedactUrl(url))));
  }
  for (const auto& param : parsed->params()) {
    if (IsCredentialQueryParam(param.key)) {
      check.Invalid(path, absl::StrCat("query parameter ", Quote(param.key),
                                       " carries a credential (", kCredentialsByName, ")"));
    }
  }
}

// A LengthDistribution at `path` (spec.target.inputLength / outputLength).
void CheckLength(const std::string& path, const v1::LengthDistribution& d, Checker& check) {
  const auto in_range = [](int64_t v) { return v >= 1 && v <= kMaxLengthWords; };
  const std::string range = absl::StrCat("between 1 and ", kMaxLengthWords);
  switch (d.kind()) {
    case v1::LENGTH_FIXED:
      if (!in_range(d.value())) {
        check.Invalid(path + ".value", absl::StrCat("must be ", range, ", got ", d.value()));
      }
      return;
    case v1::LENGTH_UNIFORM:
      if (!in_range(d.min())) {
        check.Invalid(path + ".min", absl::StrCat("must be ", range, ", got ", d.min()));
      } else if (!in_range(d.max()) || d.max() < d.min()) {
        check.Invalid(path + ".max", absl::StrCat("must be between min (", d.min(), ") and ",
                                                  kMaxLengthWords, ", got ", d.max()));
      }
      return;
    case v1::LENGTH_NORMAL:
    case v1::LENGTH_LOGNORMAL: {
      if (!std::isfinite(d.mean()) || d.mean() < 1 || d.mean() > kMaxLengthWords) {
        check.Invalid(path + ".mean", absl::StrCat("must be ", range, ", got ", d.mean()));
      } else if (!std::isfinite(d.stddev()) || d.stddev() < 0 || d.stddev() > kMaxLengthWords) {
        check.Invalid(path + ".stddev",
                      absl::StrCat("must be between 0 and ", kMaxLengthWords, ", got ", d.stddev()));
      } else if (d.min() != 0 && !in_range(d.min())) {
        check.Invalid(path + ".min",
                      absl::StrCat("must be 0 (default 1) or ", range, ", got ", d.min()));
      } else if (d.max() != 0 && (!in_range(d.max()) || d.max() < std::max(1, d.min()))) {
        check.Invalid(path + ".max", absl::StrCat("must be 0 (default ", kMaxLengthWords,
                                                  ") or between min and ", kMaxLengthWords,
                                                  ", got ", d.max()));
      }
      return;
    }
    case v1::LENGTH_KIND_UNSPECIFIED:
      if (d.value() != 0 || d.min() != 0 || d.max() != 0 || d.mean() != 0 || d.stddev() != 0) {
        check.Invalid(path + ".kind",
                      "required: LENGTH_FIXED, LENGTH_UNIFORM, LENGTH_NORMAL or LENGTH_LOGNORMAL");
      }
      return;
    default:
      check.Invalid(path + ".kind", absl::StrCat("unknown value ", static_cast<int>(d.kind())));
      return;
  }
}

// The prompt sources: a dataset (prompts or promptMessages), its order and
// synthetic lengths.
void CheckPrompts(const v1::Target& target, Checker& check) {
  if (target.prompts_size() > kMaxPromptEntries) {
    check.Invalid("spec.target.prompts", absl::StrCat("at most ", kMaxPromptEntries,
                                                      " prompts, got ", target.prompts_size()));
  }
  if (target.prompt_messages_size() > kMaxPromptEntries) {
    check.Invalid("spec.target.promptMessages",
                  absl::StrCat("at most ", kMaxPromptEntries, " conversations, got ",
                               target.prompt_messages_size()));
  }
  if (target.prompt_messages_size() > 0 && target.prompts_size() > 0) {
    check.Invalid("spec.target.promptMessages",
                  "give prompts or promptMessages, not both (a plain prompt is a conversation "
                  "of one user message)");
  }
  int64_t bytes = 0;
  for (const std::string& p : target.prompts()) {
    bytes += static_cast<int64_t>(p.size());
  }
  for (int i = 0; i < target.prompt_messages_size(); ++i) {
    const v1::PromptConversation& c = target.prompt_messages(i);
    const std::string path = absl::StrCat("spec.target.promptMessages[", i, "].messages");
    if (c.messages_size() == 0) {
      check.Invalid(path, "needs at least one message");
      continue;
    }
    if (c.messages_size() > kMaxPromptMessages) {
      check.Invalid(path, absl::StrCat("at most ", kMaxPromptMessages, " messages, got ",
                                       c.messages_size()));
    }
    bool user = false;
    for (int j = 0; j < c.messages_size(); ++j) {
      const v1::PromptMessage& m = c.messages(j);
      bytes += static_cast<int64_t>(m.content().size());
      if (m.role() != "system" && m.role() != "user" && m.role() != "assistant") {
        check.Invalid(absl::StrCat(path, "[", j, "].role"),
                      absl::StrCat("must be system, user or assistant, got ", Quote(m.role())));
      }
      user = user || m.role() == "user";
    }
    if (!user) {
      check.Invalid(path, "needs a message with role user");
    }
  }
  if (bytes > kMaxPromptBytes) {
    check.Invalid(target.prompt_messages_size() > 0 ? "spec.target.promptMessages"
                                                    : "spec.target.prompts",
                  absl::StrCat("at most ", kMaxPromptBytes, " bytes of prompt text, got ", bytes));
  }
  if (!v1::PromptOrder_IsValid(target.prompt_order())) {
    check.Invalid("spec.target.promptOrder",
                  absl::StrCat("unknown value ", static_cast<int>(target.prompt_order())));
  }
  CheckLength("spec.target.inputLength", target.input_length(), check);
  CheckLength("spec.target.outputLength", target.output_length(), check);
  if (target.input_length().kind() != v1::LENGTH_KIND_UNSPECIFIED &&
      (target.prompts_size() > 0 || target.prompt_messages_size() > 0 ||
       !target.prompt().empty())) {
    check.Invalid("spec.target.inputLength",
                  "synthetic prompts replace prompt, prompts and promptMessages: give one source");
  }
  if (target.output_length().kind() != v1::LENGTH_KIND_UNSPECIFIED && target.max_tokens() != 0) {
    check.Invalid("spec.target.outputLength",
                  "draws each request's max_tokens: leave maxTokens unset (0)");
  }
}

// target.tools: ws-chat options.tools, names of [A-Za-z0-9_.-], at most
// kMaxTools distinct ones.
constexpr int kMaxTools = 16;
constexpr size_t kMaxToolName = 64;

void CheckTools(const v1::Target& target, Checker& check) {
  if (target.tools_size() == 0) {
    return;
  }
  if (target.protocol() != v1::WS_CHAT) {
    check.Invalid("spec.target.tools",
                  absl::StrCat("only WS_CHAT sends tools (options.tools), not ",
                               v1::Protocol_Name(target.protocol())));
    return;
  }
  if (target.tools_size() > kMaxTools) {
    check.Invalid("spec.target.tools",
                  absl::StrCat("at most ", kMaxTools, " tools, got ", target.tools_size()));
    return;
  }
  for (int i = 0; i < target.tools_size(); ++i) {
    const std::string& name = target.tools(i);
    const std::string path = absl::StrCat("spec.target.tools[", i, "]");
    if (name.empty() || name.size() > kMaxToolName ||
        name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789_.-") != std::string::npos) {
      check.Invalid(path, absl::StrCat("must be 1-", kMaxToolName,
                                       " characters of [A-Za-z0-9_.-], got ", Quote(name)));
      continue;
    }
    for (int j = 0; j < i; ++j) {
      if (target.tools(j) == name) {
        check.Invalid(path, absl::StrCat("repeats ", Quote(name)));
        break;
      }
    }
  }
}

// target.realmFunction and realmPipeline: REALM only; a pipeline needs its
// name (the same characters Realm's function names use).
constexpr size_t kMaxPipelineName = 64;

void CheckRealmFunction(const v1::Target& target, Checker& check) {
  if (!v1::RealmFunction_IsValid(target.realm_function())) {
    check.Invalid("spec.target.realmFunction",
                  absl::StrCat("unknown function ", target.realm_function()));
    return;
  }
  if (target.realm_function() != v1::REALM_GENERATE && target.protocol() != v1::REALM) {
    check.Invalid("spec.target.realmFunction",
                  absl::StrCat("only REALM calls functions, not ",
                               v1::Protocol_Name(target.protocol())));
    return;
  }
  const std::string& name = target.realm_pipeline();
  if (target.realm_function() != v1::REALM_PIPELINE) {
    if (!name.empty()) {
      check.Invalid("spec.target.realmPipeline",
                    "names the pipeline of realmFunction REALM_PIPELINE; set that too, or drop "
                    "realmPipeline");
    }
    if (target.no_stream() && target.realm_function() != v1::REALM_GENERATE) {
      check.Invalid("spec.target.noStream",
                    absl::StrCat(v1::RealmFunction_Name(target.realm_function()),
                                 " never streams: noStream applies to REALM_GENERATE"));
    }
    return;
  }
  if (name.empty() || name.size() > kMaxPipelineName ||
      name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "0123456789_.-") != std::string::npos) {
    check.Invalid("spec.target.realmPipeline",
                  absl::StrCat("REALM_PIPELINE needs the pipeline's name: 1-", kMaxPipelineName,
                               " characters of [A-Za-z0-9_.-], got ", Quote(name)));
  }
}

void CheckTarget(const v1::Target& target, Checker& check) {
  CheckTools(target, check);
  CheckRealmFunction(target, check);
  const v1::Protocol protocol = target.protocol();
  if (protocol == v1::PROTOCOL_UNSPECIFIED) {
    std::vector<std::string> names;
    for (int p = v1::Protocol_MIN + 1; p <= v1::Protocol_MAX; ++p) {
      if (v1::Protocol_IsValid(p)) {
        names.push_back(v1::Protocol_Name(static_cast<v1::Protocol>(p)));
      }
    }
    check.Invalid("spec.target.protocol",
                  absl::StrCat("required, one of ", absl::StrJoin(names, ", ")));
  } else if (!v1::Protocol_IsValid(protocol)) {
    check.Invalid("spec.target.protocol", absl::StrCat("unknown value ", static_cast<int>(protocol)));
  }

  // One URL or several (target_urls.h), never both.
  if (target.urls_size() > 0 && !target.url().empty()) {
    check.Invalid("spec.target.urls",
                  "give spec.target.url (one target) or spec.target.urls (several), not both");
  }
  if (target.urls_size() > kMaxTargetUrls) {
    check.Invalid("spec.target.urls",
                  absl::StrCat("at most ", kMaxTargetUrls, " URLs, got ", target.urls_size()));
  }
  if (target.urls_size() > 0 && !target.ws_url().empty()) {
    check.Invalid("spec.target.wsUrl",
                  "cannot be combined with spec.target.urls: each of the URLs serves its own "
                  "WebSocket");
  }
  std::vector<TargetUrl> urls = TargetUrls(target);
  if (target.urls_size() == 0 && target.url().empty()) {
    check.Invalid("spec.target.url",
                  "required, e.g. \"http://127.0.0.1:8080\" (or several in spec.target.urls)");
  }
  for (const TargetUrl& u : urls) {
    if (target.urls_size() > 0 && u.url->empty()) {
      check.Invalid(u.path, "empty: every entry is a target base URL, e.g. "
                            "\"http://127.0.0.1:8080\"");
      continue;
    }
    CheckUrl(u.path, *u.url, /*required=*/true, check);
  }
  CheckUrl("spec.target.wsUrl", target.ws_url(), /*required=*/false, check);
  urls.push_back(TargetUrl{"spec.target.wsUrl", &target.ws_url()});
  for (const TargetUrl& u : urls) {
    const std::string lower = absl::AsciiStrToLower(*u.url);
    if ((absl::StartsWith(lower, "https://") || absl::StartsWith(lower, "wss://")) &&
        target.protocol() == v1::CENTRIFUGO_EMULATOR) {
      check.Unimplemented(u.path, "TLS is not supported for CENTRIFUGO_EMULATOR targets yet");
    }
  }
  for (int i = 0; i < target.source_addresses_size(); ++i) {
    boost::system::error_code ec;
    (void)boost::asio::ip::make_address(target.source_addresses(i), ec);
    if (ec) {
      check.Invalid(absl::StrCat("spec.target.sourceAddresses[", i, "]"),
                    absl::StrCat("not an IP address, got ", Quote(target.source_addresses(i))));
    }
  }
  for (const auto& [path, d, has] :
       {std::tuple<const char*, const google::protobuf::Duration*, bool>{
            "spec.target.connectTimeout", &target.connect_timeout(), target.has_connect_timeout()},
        {"spec.target.ttftTimeout", &target.ttft_timeout(), target.has_ttft_timeout()},
        {"spec.target.idleTimeout", &target.idle_timeout(), target.has_idle_timeout()},
        {"spec.target.reconnectBackoff", &target.reconnect_backoff(),
         target.has_reconnect_backoff()}}) {
    if (!has) {
      continue;
    }
    const absl::Duration v = absl::Seconds(d->seconds()) + absl::Nanoseconds(d->nanos());
    if (v < absl::ZeroDuration() || v > absl::Hours(1)) {
      check.Invalid(path, absl::StrCat("must be between 0 (default) and 1h, got ",
                                       absl::FormatDuration(v)));
    }
  }
  if (target.reconnect_attempts() < -1 || target.reconnect_attempts() > 100) {
    check.Invalid("spec.target.reconnectAttempts",
                  absl::StrCat("must be between -1 (never) and 100 (0: default 3), got ",
                               target.reconnect_attempts()));
  }
  CheckPrompts(target, check);
  if (!target.tenant().empty() &&
      (target.tenant().size() < 3 || target.tenant().size() > 64 ||
       target.tenant().find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789_-") != std::string::npos)) {
    check.Invalid("spec.target.tenant",
                  absl::StrCat("must be 3-64 characters of [A-Za-z0-9_-], got ",
                               Quote(target.tenant())));
  }

  if (target.max_tokens() < 0) {
    check.Invalid("spec.target.maxTokens",
                  absl::StrCat("must be >= 0 (0: target default), got ", target.max_tokens()));
  }
  for (const std::string& name : SortedKeys(target.headers())) {
    const std::string path = MapPath("spec.target.headers", name);
    if (!IsHttpToken(name)) {
      check.Invalid(path,
                    "header name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)");
      continue;
    }
    const std::string& value = target.headers().at(name);
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      check.Invalid(path, "header value must not contain CR, LF or NUL");
    } else if (IsCredentialHeader(name) && !value.empty()) {
      check.Invalid(path, absl::StrCat("carries a credential (", kCredentialsByName, ")"));
    }
  }
  for (const std::string& name : SortedKeys(target.headers_from_env())) {
    const std::string path = MapPath("spec.target.headersFromEnv", name);
    if (!IsHttpToken(name)) {
      check.Invalid(path,
                    "header name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)");
    } else if (target.headers().contains(name)) {
      check.Invalid(path, "also set in spec.target.headers: give the header one source");
    }
    const std::string& env = target.headers_from_env().at(name);
    if (!IsIdentifier(env)) {
      check.Invalid(path,
                    absl::StrCat("must name an environment variable ([A-Za-z_][A-Za-z0-9_]*), got ",
                                 Quote(env)));
    }
  }
  if (!target.api_key_env().empty() && !IsIdentifier(target.api_key_env())) {
    check.Invalid("spec.target.apiKeyEnv",
                  absl::StrCat("must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*), got ",
                               Quote(target.api_key_env())));
  }
  if (target.has_request_timeout()) {
    absl::Duration d;
    if (ToDuration(target.request_timeout(), "spec.target.requestTimeout", check, &d) &&
        d != absl::ZeroDuration() && (d < absl::Milliseconds(1) || d > absl::Hours(1))) {
      check.Invalid("spec.target.requestTimeout",
                    absl::StrCat("must be 0 (default 120s) or between 1ms and 1h, got ", Fmt(d)));
    }
  }
}

void CheckCount(std::string_view path, int64_t value, int64_t lo, int64_t hi, Checker& check) {
  if (value < lo || value > hi) {
    check.Invalid(path, absl::StrCat("must be ", Range(lo, hi), ", got ", value));
  }
}

void CheckRunDuration(std::string_view path, bool present, const google::protobuf::Duration& proto,
                      Checker& check) {
  absl::Duration d;
  if (!present) {
    check.Invalid(path, "required, e.g. \"60s\"");
  } else if (ToDuration(proto, path, check, &d) && (d < absl::Seconds(1) || d > absl::Hours(24))) {
    check.Invalid(path, absl::StrCat("must be between 1s and 24h, got ", Fmt(d)));
  }
}

void CheckThinkTime(std::string_view prefix, const v1::ThinkTime& t, Checker& check) {
  const std::string base(prefix);
  absl::Duration lo = absl::ZeroDuration();
  absl::Duration hi = absl::ZeroDuration();
  const bool lo_ok = !t.has_min() || ToDuration(t.min(), base + ".min", check, &lo);
  const bool hi_ok = !t.has_max() || ToDuration(t.max(), base + ".max", check, &hi);
  if (!lo_ok || !hi_ok) {
    return;
  }
  if (lo < absl::ZeroDuration() || lo > absl::Hours(1)) {
    check.Invalid(base + ".min", absl::StrCat("must be between 0s and 1h, got ", Fmt(lo)));
  } else if (hi < absl::ZeroDuration() || hi > absl::Hours(1)) {
    check.Invalid(base + ".max", absl::StrCat("must be between 0s and 1h, got ", Fmt(hi)));
  } else if (t.has_max() && hi < lo) {
    check.Invalid(base + ".max",
                  absl::StrCat("must be >= min (", Fmt(lo), "), got ", Fmt(hi)));
  }
}

bool ValidRate(double r) { return r >= 0 && std::isfinite(r) && r <= kMaxLoadUnits; }

void CheckOpen(const v1::OpenLoad& o, Checker& check) {
  const bool staged = o.stages_size() > 0;
  if (!ValidRate(o.rate_per_second()) || (!staged && !(o.rate_per_second() > 0))) {
    check.Invalid("spec.load.open.ratePerSecond",
                  absl::StrCat(staged ? "must be >= 0" : "must be > 0", " and <= ",
                               kMaxLoadUnits, ", got ", o.rate_per_second()));
  }
  if (!staged || o.has_duration()) {
    CheckRunDuration("spec.load.open.duration", o.has_duration(), o.duration(), check);
  }
  if (!v1::ArrivalDistribution_IsValid(o.distribution())) {
    check.Invalid("spec.load.open.distribution",
                  absl::StrCat("unknown value ", static_cast<int>(o.distribution()),
                               "; one of POISSON, UNIFORM"));
  }
  if (o.stages_size() > kMaxStages) {
    check.Invalid("spec.load.open.stages",
                  absl::StrCat("at most ", kMaxStages, " entries, got ", o.stages_size()));
  }
  absl::Duration total = absl::ZeroDuration();
  double peak = o.rate_per_second();
  for (int i = 0; i < o.stages_size() && i < kMaxStages; ++i) {
    const v1::RateStage& st = o.stages(i);
    const std::string path = absl::StrCat("spec.load.open.stages[", i, "]");
    if (!ValidRate(st.target_rate())) {
      check.Invalid(path + ".targetRate", absl::StrCat("must be >= 0 and <= ", kMaxLoadUnits,
                                                       ", got ", st.target_rate()));
    }
    peak = std::max(peak, st.target_rate());
    absl::Duration d;
    if (!st.has_duration()) {
      check.Invalid(path + ".duration", "required, e.g. \"30s\"");
    } else if (ToDuration(st.duration(), path + ".duration", check, &d)) {
      if (d <= absl::ZeroDuration() || d > absl::Hours(24)) {
        check.Invalid(path + ".duration",
                      absl::StrCat("must be > 0s and at most 24h, got ", Fmt(d)));
      }
      total += d;
    }
  }
  if (total > absl::Hours(24)) {
    check.Invalid("spec.load.open.stages",
                  absl::StrCat("must last at most 24h in total, got ", Fmt(total)));
  }
  if (staged && !(peak > 0)) {
    check.Invalid("spec.load.open.stages", "every rate is 0: no request would start");
  }
  if (o.max_in_flight() < 0 || o.max_in_flight() > kMaxLoadUnits) {
    check.Invalid("spec.load.open.maxInFlight",
                  absl::StrCat("must be 0 (each worker's capacity) or ", Range(1, kMaxLoadUnits),
                               ", got ", o.max_in_flight()));
  }
}

void CheckLoad(const v1::RunSpec& spec, Checker& check) {
  const v1::Load& load = spec.load();
  switch (load.model_case()) {
    case v1::Load::kClosed: {
      const v1::ClosedLoad& c = load.closed();
      CheckCount("spec.load.closed.clients", c.clients(), 1, kMaxLoadUnits, check);
      CheckCount("spec.load.closed.cyclesPerClient", c.cycles_per_client(), 1, kMaxLoadUnits,
                 check);
      if (c.max_concurrent() < 0 || c.max_concurrent() > kMaxLoadUnits) {
        check.Invalid("spec.load.closed.maxConcurrent",
                      absl::StrCat("must be 0 (same as clients) or ", Range(1, kMaxLoadUnits),
                                   ", got ", c.max_concurrent()));
      }
      CheckThinkTime("spec.load.closed.thinkTime", c.think_time(), check);
      break;
    }
    case v1::Load::kDuration: {
      const v1::DurationLoad& d = load.duration();
      CheckCount("spec.load.duration.connections", d.connections(), 1, kMaxLoadUnits, check);
      CheckRunDuration("spec.load.duration.duration", d.has_duration(), d.duration(), check);
      CheckThinkTime("spec.load.duration.thinkTime", d.think_time(), check);
      break;
    }
    case v1::Load::kOpen:
      CheckOpen(load.open(), check);
      break;
    case v1::Load::MODEL_NOT_SET:
      check.Invalid("spec.load", "required: exactly one of closed, duration, open");
      break;
  }
}

void CheckEmulation(const v1::Emulation& e, Checker& check) {
  if (e.length_words() < 0 || e.length_words() > kMaxLengthWords) {
    check.Invalid("spec.emulation.lengthWords",
                  absl::StrCat("must be ", Range(0, kMaxLengthWords),
                               " (0: target default), got ", e.length_words()));
  }
  if (e.has_token_delay()) {
    absl::Duration d;
    if (ToDuration(e.token_delay(), "spec.emulation.tokenDelay", check, &d) &&
        (d < absl::ZeroDuration() || d > absl::Seconds(60))) {
      check.Invalid("spec.emulation.tokenDelay",
                    absl::StrCat("must be between 0s and 60s, got ", Fmt(d)));
    }
  }
}

std::string MetricNames() {
  std::vector<std::string> names;
  for (int m = 1; m < metrics::kNumMetrics; ++m) {
    const std::string_view n = metrics::MetricName(static_cast<v1::Metric>(m));
    names.emplace_back(n.data(), n.size());
  }
  names.emplace_back(load::kErrorRateMetric);
  for (std::string_view n : load::kThroughputMetrics) {
    names.emplace_back(n);
  }
  return absl::StrJoin(names, ", ");
}

void CheckThresholds(const v1::RunSpec& spec, Checker& check) {
  if (spec.thresholds_size() > kMaxThresholds) {
    check.Invalid("spec.thresholds", absl::StrCat("at most ", kMaxThresholds, " entries, got ",
                                                  spec.thresholds_size()));
    return;
  }
  for (int i = 0; i < spec.thresholds_size(); ++i) {
    const v1::Threshold& t = spec.thresholds(i);
    const std::string path = absl::StrCat("spec.thresholds[", i, "]");
    const bool is_latency = metrics::MetricFromName(t.metric()).has_value();
    const bool is_error_rate = t.metric() == load::kErrorRateMetric;
    const bool is_throughput =
        std::find(std::begin(load::kThroughputMetrics), std::end(load::kThroughputMetrics),
                  t.metric()) != std::end(load::kThroughputMetrics);
    if (!is_latency && !is_error_rate && !is_throughput) {
      const std::string what =
          t.metric().empty() ? std::string("required") : "unknown metric " + Quote(t.metric());
      check.Invalid(path + ".metric", absl::StrCat(what, "; one of ", MetricNames()));
      continue;
    }
    if (!v1::ThresholdKind_IsValid(t.kind())) {
      check.Invalid(path + ".kind", absl::StrCat("unknown value ", static_cast<int>(t.kind())));
      continue;
    }
    const v1::ThresholdKind kind = load::KindOf(t);
    const bool consistent = (kind == v1::PERCENTILE && is_latency) ||
                            (kind == v1::ERROR_RATE && is_error_rate) ||
                            (kind == v1::THROUGHPUT && is_throughput);
    if (!consistent) {
      check.Invalid(path + ".kind",
                    absl::StrCat(v1::ThresholdKind_Name(kind), " does not apply to metric ",
                                 Quote(t.metric())));
      continue;
    }
    switch (kind) {
      case v1::ERROR_RATE:
        if (!(t.below_value() > 0 && t.below_value() <= 1)) {
          check.Invalid(path + ".belowValue",
                        absl::StrCat("must be a fraction in (0, 1] (0.01 is 1 %), got ",
                                     t.below_value()));
        }
        break;
      case v1::THROUGHPUT:
        if (!(t.above() >= 0) || !std::isfinite(t.above())) {
          check.Invalid(path + ".above", absl::StrCat("must be >= 0, got ", t.above()));
        }
        break;
      default: {
        if (!(t.percentile() > 0 && t.percentile() <= 100)) {
          check.Invalid(path + ".percentile",
                        absl::StrCat("must be in (0, 100], got ", t.percentile()));
        }
        absl::Duration below;
        if (!t.has_below()) {
          check.Invalid(path + ".below", "required, e.g. \"0.5s\"");
        } else if (ToDuration(t.below(), path + ".below", check, &below) &&
                   below <= absl::ZeroDuration()) {
          check.Invalid(path + ".below", absl::StrCat("must be > 0, got ", Fmt(below)));
        }
        break;
      }
    }
  }
}

void CheckObjectives(const v1::Objectives& o, Checker& check) {
  const std::pair<const char*, const google::protobuf::Duration*> fields[] = {
      {"spec.objectives.ttft", o.has_ttft() ? &o.ttft() : nullptr},
      {"spec.objectives.meanItl", o.has_mean_itl() ? &o.mean_itl() : nullptr},
      {"spec.objectives.e2e", o.has_e2e() ? &o.e2e() : nullptr}};
  for (const auto& [path, d] : fields) {
    absl::Duration v;
    if (d != nullptr && ToDuration(*d, path, check, &v) &&
        (v <= absl::ZeroDuration() || v > absl::Hours(1))) {
      check.Invalid(path, absl::StrCat("must be > 0 and at most 1h, got ", Fmt(v)));
    }
  }
}

void CheckRecords(const v1::RecordsSpec& r, Checker& check) {
  if (!(r.sample_rate() >= 0 && r.sample_rate() <= 1)) {
    check.Invalid("spec.records.sampleRate",
                  absl::StrCat("must be in (0, 1] (0: no records), got ", r.sample_rate()));
  }
  if (r.max_records() < 0 || r.max_records() > kMaxRecords) {
    check.Invalid("spec.records.maxRecords",
                  absl::StrCat("must be between 1 and ", kMaxRecords, " (0: ",
                               kDefaultMaxRecords, "), got ", r.max_records()));
  }
}

void CheckCancellation(const v1::RunSpec& spec, Checker& check) {
  if (!spec.has_cancellation()) {
    return;
  }
  const v1::Cancellation& c = spec.cancellation();
  const bool has_after = c.has_after();
  if (!(c.share() >= 0 && c.share() <= 1)) {
    check.Invalid("spec.cancellation.share",
                  absl::StrCat("must be a fraction in [0, 1] (0.2: one request in five), got ",
                               c.share()));
  } else if (c.share() == 0 && (c.after_tokens() != 0 || has_after)) {
    check.Invalid("spec.cancellation.share",
                  "required: the fraction of requests to abandon, in (0, 1]");
  }
  if (c.after_tokens() < 0 || c.after_tokens() > kMaxCancelAfterTokens) {
    check.Invalid("spec.cancellation.afterTokens",
                  absl::StrCat("must be between 1 and ", kMaxCancelAfterTokens, ", got ",
                               c.after_tokens()));
  } else if (c.after_tokens() > 0 &&
             (spec.target().protocol() == v1::HTTP_JSON || spec.target().no_stream() ||
              (spec.target().protocol() == v1::REALM &&
               spec.target().realm_function() != v1::REALM_GENERATE))) {
    check.Invalid("spec.cancellation.afterTokens",
                  "a response that is not streamed has no tokens to count before it ends; "
                  "use cancellation.after");
  }
  absl::Duration after;
  if (has_after && ToDuration(c.after(), "spec.cancellation.after", check, &after) &&
      (after <= absl::ZeroDuration() || after > absl::Hours(1))) {
    check.Invalid("spec.cancellation.after",
                  absl::StrCat("must be > 0 and at most 1h, got ", Fmt(after)));
  }
  if (c.share() > 0 && c.after_tokens() == 0 && !has_after) {
    check.Invalid("spec.cancellation",
                  "say when a request is abandoned: afterTokens, after, or both (the first "
                  "reached wins)");
  }
}

// RunSpec.reconnect_storm: a share of the Centrifugo sessions drops its
// WebSocket at one moment and reconnects with history recovery.
void CheckReconnectStorm(const v1::RunSpec& spec, Checker& check) {
  if (!spec.has_reconnect_storm()) {
    return;
  }
  const v1::ReconnectStorm& r = spec.reconnect_storm();
  if (spec.target().protocol() != v1::CENTRIFUGO_EMULATOR) {
    check.Invalid("spec.reconnectStorm",
                  absl::StrCat("only CENTRIFUGO_EMULATOR recovers missed publications on "
                               "reconnect; the target is ",
                               v1::Protocol_Name(spec.target().protocol())));
  }
  if (!(r.share() > 0 && r.share() <= 1)) {
    check.Invalid("spec.reconnectStorm.share",
                  absl::StrCat("must be a fraction in (0, 1] (0.5: every other session), got ",
                               r.share()));
  }
  absl::Duration at;
  if (!r.has_at()) {
    check.Invalid("spec.reconnectStorm.at", "required: when the connections drop, from the "
                                            "start of the load (e.g. \"2s\")");
  } else if (ToDuration(r.at(), "spec.reconnectStorm.at", check, &at) &&
             (at < absl::ZeroDuration() || at > absl::Hours(24))) {
    check.Invalid("spec.reconnectStorm.at",
                  absl::StrCat("must be between 0 and 24h, got ", Fmt(at)));
  }
  absl::Duration after;
  if (r.has_reconnect_after() &&
      ToDuration(r.reconnect_after(), "spec.reconnectStorm.reconnectAfter", check, &after) &&
      (after < absl::ZeroDuration() || after > absl::Seconds(60))) {
    check.Invalid("spec.reconnectStorm.reconnectAfter",
                  absl::StrCat("must be between 0 and 60s, got ", Fmt(after)));
  }
}

// The target's own metrics (README "The target's own metrics"): an http
// endpoint, 1 to kMaxTargetSeries selectors that parse, a sane interval.
// The host's allow-list check is TargetPolicy::CheckSpec's.
void CheckTargetMetrics(const v1::RunSpec& spec, Checker& check) {
  if (!spec.has_target_metrics()) {
    return;
  }
  const v1::TargetMetrics& m = spec.target_metrics();
  if (m.url().empty()) {
    check.Invalid("spec.targetMetrics.url",
                  "required: the target's Prometheus endpoint, e.g. "
                  "\"http://127.0.0.1:8080/metrics\"");
  } else {
    Checker url_check;
    CheckUrl("spec.targetMetrics.url", m.url(), true, url_check);
    if (!url_check.Result().ok()) {
      CheckUrl("spec.targetMetrics.url", m.url(), true, check);
    } else if (absl::StartsWithIgnoreCase(m.url(), "https://")) {
      // The collector's scraper speaks plain HTTP only: refuse what it
      // could never scrape rather than fail every scrape of the run.
      check.Invalid("spec.targetMetrics.url",
                    absl::StrCat("https is not supported for the target's metrics (the "
                                 "collector scrapes plain http); got ",
                                 Quote(RedactUrl(m.url()))));
    } else if (!absl::StartsWithIgnoreCase(m.url(), "http://")) {
      check.Invalid("spec.targetMetrics.url",
                    absl::StrCat("scheme must be http, got ", Quote(RedactUrl(m.url()))));
    }
  }
  if (m.series_size() == 0) {
    check.Invalid("spec.targetMetrics.series",
                  "at least one selector, e.g. \"http_requests_total{code=\\\"200\\\"}\"");
  } else if (m.series_size() > kMaxTargetSeries) {
    check.Invalid("spec.targetMetrics.series",
                  absl::StrCat("at most ", kMaxTargetSeries, " selectors, got ", m.series_size()));
  }
  for (int i = 0; i < m.series_size() && i < kMaxTargetSeries; ++i) {
    const std::string path = absl::StrCat("spec.targetMetrics.series[", i, "]");
    const std::string& text = m.series(i);
    if (text.size() > 1024) {
      check.Invalid(path, absl::StrCat("at most 1024 characters, got ", text.size()));
      continue;
    }
    if (absl::StatusOr<metrics::PromSelector> sel = metrics::ParseSelector(text); !sel.ok()) {
      check.Invalid(path, absl::StrCat(sel.status().message(),
                                       " (name or name{label=\"value\",...}), got ",
                                       Quote(text)));
    }
  }
  absl::Duration interval;
  if (m.has_interval() &&
      ToDuration(m.interval(), "spec.targetMetrics.interval", check, &interval) &&
      interval != absl::ZeroDuration() &&  // 0: the default
      (interval < absl::Milliseconds(kMinTargetScrapeMs) ||
       interval > absl::Milliseconds(kMaxTargetScrapeMs))) {
    check.Invalid("spec.targetMetrics.interval",
                  absl::StrCat("must be between ", Fmt(absl::Milliseconds(kMinTargetScrapeMs)),
                               " and ", Fmt(absl::Milliseconds(kMaxTargetScrapeMs)),
                               " (0 or unset: 1s), got ", Fmt(interval)));
  }
}

// Multi-turn conversations (README "Multi-turn conversations").
void CheckTurns(const v1::RunSpec& spec, Checker& check) {
  const v1::Target& t = spec.target();
  if (t.turns() < 0 || t.turns() > metrics::kMaxTurns) {
    check.Invalid("spec.target.turns",
                  absl::StrCat("must be between 1 and ", metrics::kMaxTurns,
                               " (requests per conversation), got ", t.turns()));
    return;
  }
  if (t.turns() <= 1) {
    return;
  }
  switch (t.protocol()) {
    case v1::OPENAI_CHAT:
    case v1::ANTHROPIC_MESSAGES:
    case v1::GEMINI:
    case v1::WS_CHAT:  // the server keeps the connection's conversation
      return;
    case v1::REALM:
      check.Invalid("spec.target.turns",
                    "Realm's protocol keeps no conversation between requests (each generate "
                    "stands alone): turns must be 0 or 1");
      return;
    default:
      check.Invalid("spec.target.turns",
                    absl::StrCat(v1::Protocol_Name(t.protocol()),
                                 " has no conversation: turns must be 0 or 1"));
      return;
  }
}

absl::Duration Plain(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// How long requests keep starting in a duration or open load (0: closed).
absl::Duration LoadLength(const v1::Load& load) {
  if (load.has_duration()) {
    return Plain(load.duration().duration());
  }
  if (load.has_open()) {
    absl::Duration staged;
    for (const v1::RateStage& st : load.open().stages()) {
      staged += Plain(st.duration());
    }
    return std::max(Plain(load.open().duration()), staged);
  }
  return absl::ZeroDuration();
}

// Warm-up and cool-down (README "Warm-up and cool-down").
void CheckPhases(const v1::RunSpec& spec, Checker& check) {
  const absl::Duration length = LoadLength(spec.load());
  absl::Duration warm;
  if (spec.has_warmup()) {
    const v1::Warmup& w = spec.warmup();
    const bool has_duration = w.has_duration();
    if (w.requests() < 0 || w.requests() > kMaxLoadUnits) {
      check.Invalid("spec.warmup.requests",
                    absl::StrCat("must be between 1 and ", kMaxLoadUnits, ", got ", w.requests()));
    } else if (w.requests() > 0 && has_duration) {
      check.Invalid("spec.warmup", "give requests or duration, not both");
    } else if (w.requests() == 0 && !has_duration) {
      check.Invalid("spec.warmup",
                    "say how long: requests (e.g. 20, split over the clients) or duration "
                    "(e.g. \"5s\")");
    } else if (w.requests() > 0 && spec.load().has_open()) {
      check.Invalid("spec.warmup.requests",
                    "the open model has no clients to split warm-up requests over; use "
                    "warmup.duration");
    }
    if (has_duration && ToDuration(w.duration(), "spec.warmup.duration", check, &warm)) {
      if (warm <= absl::ZeroDuration() || warm > absl::Hours(24)) {
        check.Invalid("spec.warmup.duration",
                      absl::StrCat("must be > 0 and at most 24h, got ", Fmt(warm)));
      } else if (length > absl::ZeroDuration() && warm >= length) {
        check.Invalid("spec.warmup.duration",
                      absl::StrCat("must be shorter than the load (", Fmt(length), "), got ",
                                   Fmt(warm)));
      }
    }
  }
  if (spec.has_cooldown()) {
    absl::Duration cool;
    if (spec.load().has_closed()) {
      check.Invalid("spec.cooldown",
                    "a closed load ends when its cycles are done: cool-down needs a duration or "
                    "open load");
    } else if (!spec.cooldown().has_duration()) {
      check.Invalid("spec.cooldown.duration", "required, e.g. \"2s\"");
    } else if (ToDuration(spec.cooldown().duration(), "spec.cooldown.duration", check, &cool)) {
      if (cool <= absl::ZeroDuration() || cool > absl::Hours(24)) {
        check.Invalid("spec.cooldown.duration",
                      absl::StrCat("must be > 0 and at most 24h, got ", Fmt(cool)));
      } else if (length > absl::ZeroDuration() && warm + cool >= length) {
        check.Invalid("spec.cooldown.duration",
                      absl::StrCat("warm-up and cool-down must leave part of the load (",
                                   Fmt(length), ") counted, got ", Fmt(warm), " + ",
                                   Fmt(cool)));
      }
    }
  }
}

void CheckLabels(const v1::RunSpec& spec, Checker& check) {
  if (spec.labels_size() > kMaxLabels) {
    check.Invalid("spec.labels",
                  absl::StrCat("at most ", kMaxLabels, " entries, got ", spec.labels_size()));
    return;
  }
  for (const std::string& key : SortedKeys(spec.labels())) {
    const std::string path = MapPath("spec.labels", key);
    if (!IsIdentifier(key)) {
      check.Invalid(path, "label name must match [a-zA-Z_][a-zA-Z0-9_]*");
      continue;
    }
    if (key.rfind("__", 0) == 0) {
      check.Invalid(path, "label names starting with __ are reserved");
      continue;
    }
    const std::string& value = spec.labels().at(key);
    if (value.size() > static_cast<size_t>(kMaxLabelValueLength)) {
      check.Invalid(path, absl::StrCat("value must be at most ", kMaxLabelValueLength,
                                       " characters, got ", value.size()));
    } else if (HasControlChar(value)) {
      check.Invalid(path, "value must not contain control characters");
    }
  }
}

}  // namespace

absl::Status ValidateRunSpec(const v1::RunSpec& spec) {
  Checker check;
  if (spec.name().size() > static_cast<size_t>(kMaxNameLength)) {
    check.Invalid("spec.name", absl::StrCat("must be at most ", kMaxNameLength,
                                            " characters, got ", spec.name().size()));
  } else if (HasControlChar(spec.name())) {
    check.Invalid("spec.name",
                  absl::StrCat("must be printable (no control characters), got ",
                               Quote(spec.name())));
  }
  CheckTarget(spec.target(), check);
  CheckLoad(spec, check);
  CheckEmulation(spec.emulation(), check);
  CheckThresholds(spec, check);
  CheckObjectives(spec.objectives(), check);
  CheckLabels(spec, check);
  CheckRecords(spec.records(), check);
  CheckCancellation(spec, check);
  CheckReconnectStorm(spec, check);
  CheckTurns(spec, check);
  CheckPhases(spec, check);
  CheckTargetMetrics(spec, check);
  if (spec.max_workers() < 0) {
    check.Invalid("spec.maxWorkers",
                  absl::StrCat("must be >= 0 (0: all attached workers), got ", spec.max_workers()));
  }
  return check.Result();
}

void ApplyDefaults(v1::RunSpec* spec) {
  if (spec->load().has_closed() && spec->load().closed().max_concurrent() == 0) {
    v1::ClosedLoad* closed = spec->mutable_load()->mutable_closed();
    closed->set_max_concurrent(closed->clients());
  }
  if (spec->load().has_open() &&
      spec->load().open().distribution() == v1::ARRIVAL_DISTRIBUTION_UNSPECIFIED) {
    spec->mutable_load()->mutable_open()->set_distribution(v1::POISSON);
  }
  for (v1::Threshold& t : *spec->mutable_thresholds()) {
    t.set_kind(load::KindOf(t));
  }
  if (spec->records().sample_rate() > 0 && spec->records().max_records() == 0) {
    spec->mutable_records()->set_max_records(kDefaultMaxRecords);
  }
  if (spec->has_target_metrics() && spec->target_metrics().interval().seconds() == 0 &&
      spec->target_metrics().interval().nanos() == 0) {
    spec->mutable_target_metrics()->mutable_interval()->set_seconds(kDefaultTargetScrapeMs / 1000);
  }
}

}  // namespace llmload::validation
