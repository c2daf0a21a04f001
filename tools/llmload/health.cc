#include "tools/llmload/health.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"

namespace llmload::cli {
namespace {

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in->empty()) {
      return false;
    }
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      return true;
    }
  }
  return false;
}

bool Skip(std::string_view* in, size_t n) {
  if (in->size() < n) {
    return false;
  }
  in->remove_prefix(n);
  return true;
}

}  // namespace

absl::StatusOr<HealthOptions> ParseHealthArgs(
    const std::vector<std::string>& args,
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  HealthOptions o;
  if (auto v = getenv("LLMLOAD_HEALTH_ADDRESS"); v && !v->empty()) {
    o.address = *v;
  }
  if (auto v = getenv("LLMLOAD_HEALTH_SERVICE"); v) {
    o.service = *v;
  }
  if (auto v = getenv("LLMLOAD_HEALTH_HTTP"); v) {
    o.http_path = *v;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::optional<std::string> value;
    if (name == "-h" || name == "--help") {
      o.help = true;
      continue;
    }
    if (name == "-q" || name == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (!absl::StartsWith(name, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("health: unexpected argument '", name, "'"));
    }
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name != "--address" && name != "--service" && name != "--http" && name != "--timeout") {
      return absl::InvalidArgumentError(absl::StrCat("health: unknown flag '", name, "'"));
    }
    if (!value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("health: ", name, " needs a value"));
      }
      value = args[++i];
    }
    if (name == "--address") {
      if (value->empty() || value->find(':') == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("health: --address: expected HOST:PORT, got '", *value, "'"));
      }
      o.address = *value;
    } else if (name == "--service") {
      o.service = *value;
    } else if (name == "--http") {
      if (!value->empty() && !absl::StartsWith(*value, "/")) {
        return absl::InvalidArgumentError(
            absl::StrCat("health: --http: expected a path starting with '/', got '", *value, "'"));
      }
      o.http_path = *value;
    } else {
      double t = 0;
      if (!absl::SimpleAtod(*value, &t) || !(t > 0) || !(t <= 3600)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "health: --timeout: expected seconds above 0 and at most 3600, got '", *value, "'"));
      }
      o.timeout_seconds = t;
    }
  }
  return o;
}

std::string HealthUsageText() {
  return R"(usage: llmload health [--address HOST:PORT] [--service NAME] [--http PATH] [--timeout S] [--quiet]

Asks the gRPC health service (grpc.health.v1.Health/Check) of a running
llmload service; with --http, GETs PATH over HTTP/1.1 instead (the emulator's
/health, a worker's /metrics).
Exit status: 0 SERVING (HTTP 2xx), 1 NOT_SERVING / unknown service / other
HTTP status, 2 unreachable within the deadline or bad arguments.

  --address HOST:PORT   [LLMLOAD_HEALTH_ADDRESS] 127.0.0.1:50051
  --service NAME        [LLMLOAD_HEALTH_SERVICE] "" (the whole server), e.g. llmload.v1.Orchestrator
  --http PATH           [LLMLOAD_HEALTH_HTTP]    "" (use gRPC)
  --timeout S                                    3 (deadline of the whole check)
  --quiet                                        print nothing
)";
}

std::string EncodeHealthCheckRequest(std::string_view service) {
  std::string out;
  if (service.empty()) {
    return out;  // proto3: the default value is not on the wire
  }
  out.push_back(static_cast<char>((1 << 3) | 2));  // field 1, length-delimited
  PutVarint(service.size(), &out);
  out.append(service);
  return out;
}

absl::StatusOr<int32_t> DecodeHealthCheckResponse(std::string_view bytes) {
  int32_t status = 0;  // proto3 default: UNKNOWN
  while (!bytes.empty()) {
    uint64_t tag = 0;
    if (!GetVarint(&bytes, &tag)) {
      return absl::DataLossError("HealthCheckResponse: truncated tag");
    }
    const uint64_t field = tag >> 3;
    const uint64_t wire_type = tag & 7;
    uint64_t v = 0;
    bool ok = false;
    switch (wire_type) {
      case 0:
        ok = GetVarint(&bytes, &v);
        if (ok && field == 1) {
          status = static_cast<int32_t>(v);
        }
        break;
      case 1:
        ok = Skip(&bytes, 8);
        break;
      case 2:
        ok = GetVarint(&bytes, &v) && Skip(&bytes, v);
        break;
      case 5:
        ok = Skip(&bytes, 4);
        break;
      default:
        ok = false;
    }
    if (!ok || field == 0) {
      return absl::DataLossError("HealthCheckResponse: malformed field");
    }
  }
  return status;
}

std::string ServingStatusName(int32_t status) {
  switch (status) {
    case 0:
      return "UNKNOWN";
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return absl::StrCat("STATUS_", status);
  }
}

}  // namespace llmload::cli
