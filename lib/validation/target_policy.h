// File: target_policy.h
//
// Which targets a run may load: the orchestrator's allowlist, so that an
// exposed llmload is not a free traffic cannon. The orchestrator checks a
// spec's URLs before it dispatches anything; the worker checks the
// addresses a name resolves to, so that DNS cannot lead a permitted name to
// a forbidden address.
//
// An allowlist is a comma-separated list of entries:
//   - a CIDR or a single address: 10.0.0.0/8, 2001:db8::/32, 192.0.2.7;
//   - a host name or a pattern with a leading "*." (any subdomain):
//     api.openai.com, *.example.com;
//   - "default": loopback (127.0.0.0/8, ::1), the private ranges
//     (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7) and
//     cluster-local names (localhost, single-label names such as a compose
//     service, *.local, *.internal, *.svc, *.svc.cluster.local,
//     *.cluster.local);
//   - "*": anything (for a trusted, unexposed deployment only).
//
// A name the operator lists explicitly is trusted wherever it resolves. A
// name allowed only by the default's cluster-local patterns must resolve to
// an allowed network, so a local-looking name cannot reach the internet.

#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/ip/address.hpp"
#include "llmload/v1/run.pb.h"

namespace llmload::validation {

class TargetPolicy {
 public:
  // The orchestrator flag that sets the list (named in refusals).
  static constexpr const char* kFlag = "--allow_targets";

  // Parses a list as described above. INVALID_ARGUMENT names a bad entry.
  static absl::StatusOr<TargetPolicy> Parse(std::string_view list);
  static TargetPolicy Default();

  // The spec's target URLs (url or every one of urls, wsUrl, and
  // targetMetrics.url):
  // PERMISSION_DENIED naming the field (spec.target.urls[1]), the host
  // and the flag that would allow it. Hosts are taken from URLs that
  // validation has accepted; an unparsable URL is INVALID_ARGUMENT.
  absl::Status CheckSpec(const v1::RunSpec& spec) const;

  // One host, as it appears in a URL: an IP literal ([...] for IPv6) or a
  // name.
  absl::Status CheckHost(std::string_view host) const;

  // The addresses `host` resolved to (the worker, after resolution).
  absl::Status CheckResolved(std::string_view host,
                             const std::vector<boost::asio::ip::address>& addresses) const;

  // The list in canonical form (what Parse accepts; sent to workers).
  std::string ToString() const;

  bool allows_everything() const { return any_; }

 private:
  struct Network {
    boost::asio::ip::address base;
    int prefix = 0;
  };
  enum class NameTrust { kNone, kExplicit, kLocalPattern };

  bool AllowsAddress(const boost::asio::ip::address& a) const;
  NameTrust TrustOf(std::string_view name) const;
  absl::Status Refuse(std::string_view host, std::string_view why) const;

  bool any_ = false;
  bool defaults_ = false;
  std::vector<Network> networks_;
  std::vector<std::string> names_;  // lower case; "*.x" patterns kept as is
  std::vector<std::string> entries_;
};

}  // namespace llmload::validation
