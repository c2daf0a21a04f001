#include "services/emulator/provider_http.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "services/emulator/config.h"

namespace llmload::emulator {
namespace {

namespace http = boost::beast::http;

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string_view Header(const HttpRequest& request, std::string_view name) {
  auto it = request.find(boost::beast::string_view(name.data(), name.size()));
  if (it == request.end()) {
    return {};
  }
  return std::string_view(it->value().data(), it->value().size());
}

absl::Status BadHeader(std::string_view name, std::string_view value, std::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat("header ", Av(name), ": '", Av(value), "' is not ", Av(want)));
}

}  // namespace

absl::StatusOr<RequestOverrides> OverridesFromHeaders(const HttpRequest& request) {
  RequestOverrides o;
  if (std::string_view v = Header(request, kHeaderFault); !v.empty()) {
    std::optional<Fault> fault = ParseFault(v);
    if (!fault.has_value()) {
      return BadHeader(kHeaderFault, v, "one of 500, 429, error_event, disconnect, malformed");
    }
    o.fault = *fault;
  }
  if (std::string_view v = Header(request, kHeaderLengthWords); !v.empty()) {
    int32_t words = 0;
    if (!absl::SimpleAtoi(Av(v), &words) || words < kMinLengthWords || words > kMaxLengthWords) {
      return BadHeader(kHeaderLengthWords, v, "an integer in [1, 100000]");
    }
    o.length_words = words;
  }
  const std::pair<std::string_view, std::optional<double>*> ms_headers[] = {
      {kHeaderTokenDelayMs, &o.token_delay_seconds},
      {kHeaderTtftMs, &o.ttft_seconds},
  };
  for (const auto& [name, out] : ms_headers) {
    if (std::string_view v = Header(request, name); !v.empty()) {
      double ms = 0;
      if (!absl::SimpleAtod(Av(v), &ms) || !std::isfinite(ms) || ms < 0 ||
          ms > kMaxTokenDelaySeconds * 1000) {
        return BadHeader(name, v, "a number of milliseconds in [0, 60000]");
      }
      *out = ms / 1000.0;
    }
  }
  return o;
}

HttpResponse TypedResponse(http::status status, std::string_view content_type, std::string body) {
  HttpResponse r;
  r.message.result(status);
  r.message.version(11);
  r.message.set(http::field::content_type,
                boost::beast::string_view(content_type.data(), content_type.size()));
  r.message.body() = std::move(body);
  r.message.prepare_payload();
  return r;
}

HttpResponse SseResponse(std::unique_ptr<StreamSource> source) {
  HttpResponse r;
  r.message.result(http::status::ok);
  r.message.version(11);
  r.message.set(http::field::content_type, "text/event-stream");
  r.message.set(http::field::cache_control, "no-cache");
  r.stream = std::move(source);
  return r;
}

std::string QueryParam(const HttpRequest& request, std::string_view key) {
  const std::string_view target(request.target().data(), request.target().size());
  const size_t q = target.find('?');
  if (q == std::string_view::npos) {
    return "";
  }
  for (absl::string_view pair : absl::StrSplit(Av(target.substr(q + 1)), '&')) {
    const size_t eq = pair.find('=');
    const absl::string_view name = pair.substr(0, eq);
    if (name == Av(key)) {
      return eq == absl::string_view::npos ? std::string() : std::string(pair.substr(eq + 1));
    }
  }
  return "";
}

}  // namespace llmload::emulator
