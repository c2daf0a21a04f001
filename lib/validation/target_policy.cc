#include "lib/validation/target_policy.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "boost/url/parse.hpp"
#include "lib/validation/target_urls.h"

namespace llmload::validation {
namespace {

namespace ip = boost::asio::ip;

constexpr std::array<const char*, 6> kDefaultNetworks = {
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7"};
// Cluster-local names: resolved, they must land in an allowed network.
constexpr std::array<const char*, 6> kLocalSuffixes = {".local",   ".internal", ".svc",
                                                       ".cluster.local", ".localhost",
                                                       ".home.arpa"};

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A host name as the list may hold it: labels of [a-z0-9-], an optional
// leading "*." wildcard.
bool IsHostPattern(std::string_view s) {
  if (s.substr(0, 2) == "*.") {
    s.remove_prefix(2);
  }
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') {
    return false;
  }
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) {
      return false;
    }
  }
  return s.find("..") == std::string_view::npos;
}

// An IPv4-mapped IPv6 address is checked as the IPv4 address it maps.
ip::address Canonical(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  }
  return a;
}

std::string StripBrackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::string(host);
}

}  // namespace

absl::StatusOr<TargetPolicy> TargetPolicy::Parse(std::string_view list) {
  TargetPolicy p;
  for (absl::string_view raw : absl::StrSplit(absl::string_view(list.data(), list.size()), ',')) {
    const absl::string_view stripped = absl::StripAsciiWhitespace(raw);
    std::string entry = Lower(std::string_view(stripped.data(), stripped.size()));
    if (entry.empty()) {
      continue;
    }
    p.entries_.push_back(entry);
    if (entry == "*") {
      p.any_ = true;
      continue;
    }
    if (entry == "default") {
      p.defaults_ = true;
      for (const char* net : kDefaultNetworks) {
        auto parsed = Parse(net);
        p.networks_.insert(p.networks_.end(), parsed->networks_.begin(), parsed->networks_.end());
      }
      continue;
    }
    const size_t slash = entry.find('/');
    boost::system::error_code ec;
    const ip::address base = ip::make_address(StripBrackets(entry.substr(0, slash)), ec);
    if (!ec) {
      const int max_prefix = base.is_v4() ? 32 : 128;
      int prefix = max_prefix;
      if (slash != std::string::npos &&
          (!absl::SimpleAtoi(entry.substr(slash + 1), &prefix) || prefix < 0 ||
           prefix > max_prefix)) {
        return absl::InvalidArgumentError(absl::StrCat(
            kFlag, ": \"", entry, "\": the prefix length must be between 0 and ", max_prefix));
      }
      p.networks_.push_back({Canonical(base), prefix});
      continue;
    }
    if (slash != std::string::npos || !IsHostPattern(entry)) {
      return absl::InvalidArgumentError(absl::StrCat(
          kFlag, ": \"", entry,
          "\" is neither an address, a CIDR (10.0.0.0/8), a host name (api.example.com), a "
          "pattern (*.example.com), \"default\" nor \"*\""));
    }
    p.names_.push_back(entry);
  }
  return p;
}

TargetPolicy TargetPolicy::Default() { return *Parse("default"); }

std::string TargetPolicy::ToString() const { return absl::StrJoin(entries_, ","); }

bool TargetPolicy::AllowsAddress(const ip::address& raw) const {
  const ip::address a = Canonical(raw);
  for (const Network& n : networks_) {
    if (n.base.is_v4() != a.is_v4()) {
      continue;
    }
    if (a.is_v4()) {
      const uint32_t mask = n.prefix == 0 ? 0 : ~uint32_t{0} << (32 - n.prefix);
      if ((a.to_v4().to_uint() & mask) == (n.base.to_v4().to_uint() & mask)) {
        return true;
      }
      continue;
    }
    const auto x = a.to_v6().to_bytes();
    const auto y = n.base.to_v6().to_bytes();
    int bits = n.prefix;
    bool same = true;
    for (size_t i = 0; i < x.size() && bits > 0 && same; ++i, bits -= 8) {
      const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
      same = (x[i] & mask) == (y[i] & mask);
    }
    if (same) {
      return true;
    }
  }
  return false;
}

TargetPolicy::NameTrust TargetPolicy::TrustOf(std::string_view raw) const {
  std::string name = Lower(raw);
  while (!name.empty() && name.back() == '.') {
    name.pop_back();
  }
  for (const std::string& n : names_) {
    if (n == name || (n.substr(0, 2) == "*." && EndsWith(name, std::string_view(n).substr(1)))) {
      return NameTrust::kExplicit;
    }
  }
  if (defaults_) {
    if (name == "localhost" || (!name.empty() && name.find('.') == std::string::npos)) {
      return NameTrust::kLocalPattern;
    }
    for (const char* suffix : kLocalSuffixes) {
      if (EndsWith(name, suffix)) {
        return NameTrust::kLocalPattern;
      }
    }
  }
  return NameTrust::kNone;
}

absl::Status TargetPolicy::Refuse(std::string_view host, std::string_view why) const {
  const std::string h(host);
  return absl::PermissionDeniedError(absl::StrCat(
      "target host \"", h, "\" is not allowed (", std::string(why), "); the orchestrator's ", kFlag,
      " (now \"", ToString(), "\") must list it, e.g. ", kFlag, "=",
      entries_.empty() ? std::string() : ToString() + ",", h));
}

absl::Status TargetPolicy::CheckHost(std::string_view host) const {
  if (any_) {
    return absl::OkStatus();
  }
  const std::string bare = StripBrackets(host);
  boost::system::error_code ec;
  const ip::address a = ip::make_address(bare, ec);
  if (!ec) {
    return AllowsAddress(a) ? absl::OkStatus() : Refuse(bare, "outside the allowed networks");
  }
  return TrustOf(bare) != NameTrust::kNone ? absl::OkStatus()
                                           : Refuse(bare, "not an allowed name");
}

absl::Status TargetPolicy::CheckResolved(std::string_view host,
                                         const std::vector<ip::address>& addresses) const {
  if (any_) {
    return absl::OkStatus();
  }
  if (absl::Status s = CheckHost(host); !s.ok()) {
    return s;
  }
  if (TrustOf(StripBrackets(host)) == NameTrust::kExplicit) {
    return absl::OkStatus();
  }
  for (const ip::address& a : addresses) {
    if (!AllowsAddress(a)) {
      return Refuse(host, absl::StrCat("it resolves to ", a.to_string(),
                                       ", outside the allowed networks"));
    }
  }
  return absl::OkStatus();
}

absl::Status TargetPolicy::CheckSpec(const v1::RunSpec& spec) const {
  std::vector<TargetUrl> urls = TargetUrls(spec.target());
  urls.push_back(TargetUrl{"spec.target.wsUrl", &spec.target().ws_url()});
  // The target's metrics endpoint is scraped by the collector: the same
  // rules keep it from being pointed anywhere the target could not be.
  urls.push_back(TargetUrl{"spec.targetMetrics.url", &spec.target_metrics().url()});
  for (const TargetUrl& u : urls) {
    if (u.url->empty()) {
      continue;
    }
    auto parsed = boost::urls::parse_uri(*u.url);
    if (!parsed) {
      return absl::InvalidArgumentError(absl::StrCat(u.path, ": not a valid absolute URL"));
    }
    if (absl::Status s = CheckHost(std::string(parsed->encoded_host())); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(u.path, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace llmload::validation
