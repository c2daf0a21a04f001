#include "services/worker/shard.h"

#include <latch>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/url/parse.hpp>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "services/common/grpc_util.h"
#include "services/worker/session_factory.h"

namespace llmload::worker {
namespace {

// Keep-alive HTTP connections per loop (idle or busy) to the target.
constexpr size_t kMaxHttpConnsPerLoop = 128;
constexpr auto kDefaultRequestTimeout = std::chrono::milliseconds(120000);

struct ParsedUrl {
  std::string scheme;
  std::string host;
  uint16_t port = 0;
  std::string path;
};

absl::StatusOr<ParsedUrl> ParseTargetUrl(const std::string& url, const char* field) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not a URL: ", url));
  }
  ParsedUrl out;
  out.scheme = std::string(parsed->scheme());
  if (out.scheme == "https" || out.scheme == "wss") {
    return absl::UnimplementedError(
        absl::StrCat(field, ": TLS targets (", out.scheme, ") are not supported by this worker yet"));
  }
  if (out.scheme != "http" && out.scheme != "ws") {
    return absl::InvalidArgumentError(absl::StrCat(field, ": unsupported scheme ", out.scheme));
  }
  out.host = std::string(parsed->host_address());
  out.port = parsed->has_port() ? parsed->port_number() : 80;
  out.path = std::string(parsed->encoded_path());
  while (!out.path.empty() && out.path.back() == '/') {
    out.path.pop_back();
  }
  return out;
}

absl::StatusOr<std::vector<tcp::endpoint>> Resolve(const ParsedUrl& url) {
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  boost::system::error_code ec;
  auto results = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", url.host, ": ", ec.message()));
  }
  std::vector<tcp::endpoint> out;
  for (const auto& r : results) {
    out.push_back(r.endpoint());
  }
  if (out.empty()) {
    return absl::UnavailableError(absl::StrCat("no address for ", url.host));
  }
  return out;
}

std::string HostHeader(const ParsedUrl& url) {
  return url.port == 80 ? url.host : absl::StrCat(url.host, ":", url.port);
}

}  // namespace

std::vector<int64_t> SplitEvenly(int64_t total, int parts) {
  std::vector<int64_t> out(static_cast<size_t>(std::max(parts, 0)), 0);
  if (parts <= 0) {
    return out;
  }
  for (int i = 0; i < parts; ++i) {
    out[static_cast<size_t>(i)] = total / parts + (i < total % parts ? 1 : 0);
  }
  return out;
}

LoopShard::LoopShard(net::io_context& ioc, std::shared_ptr<const ShardSettings> settings,
                     std::deque<int32_t> clients, int32_t limit, std::atomic<int>* loops_remaining,
                     std::atomic<int64_t>* active_sessions)
    : ioc_(ioc),
      settings_(std::move(settings)),
      pending_(std::move(clients)),
      limit_(limit),
      loops_remaining_(loops_remaining),
      active_sessions_(active_sessions) {
  http_ = std::make_shared<HttpPool>(ioc_, settings_->target.endpoints,
                                     settings_->target.host_header, settings_->request_timeout,
                                     kMaxHttpConnsPerLoop);
}

void LoopShard::Start() {
  net::post(ioc_, [self = shared_from_this()] { self->Fill(); });
}

void LoopShard::Cancel() {
  net::post(ioc_, [self = shared_from_this()] {
    self->cancelled_ = true;
    self->pending_.clear();
    std::vector<Session*> live(self->live_.begin(), self->live_.end());
    for (Session* s : live) {
      s->Cancel();
    }
    self->http_->CloseAll();
    self->MaybeDone();
  });
}

void LoopShard::Fill() {
  while (!cancelled_ && !pending_.empty() && static_cast<int32_t>(live_.size()) < limit_) {
    const int32_t client = pending_.front();
    pending_.pop_front();
    std::shared_ptr<Session> s =
        MakeSession(settings_->spec.target().protocol(), shared_from_this(), client);
    live_.insert(s.get());
    active_sessions_->fetch_add(1, std::memory_order_relaxed);
    s->Start();
  }
  MaybeDone();
}

NextStep LoopShard::NextRequest(Session* session, int64_t requests_done) {
  (void)session;
  NextStep step;
  // Closed model: every client runs cycles_per_client requests, back to back.
  if (cancelled_ || requests_done >= settings_->cycles_per_client) {
    step.kind = NextStep::Kind::kClose;
    return step;
  }
  step.kind = NextStep::Kind::kRequest;
  step.cycle = requests_done + 1;
  step.intended = Clock::now();
  return step;
}

void LoopShard::RequestDone(const RequestOutcome& outcome) {
  // Per-request objectives (goodput) are evaluated here once the spec has
  // them; every request is counted as offered.
  (void)outcome;
}

void LoopShard::SessionEnded(Session* session) {
  if (live_.erase(session) == 0) {
    return;
  }
  active_sessions_->fetch_sub(1, std::memory_order_relaxed);
  // Start the next client after the current handler returns.
  net::post(ioc_, [self = shared_from_this()] { self->Fill(); });
}

void LoopShard::MaybeDone() {
  if (!done_ && live_.empty() && pending_.empty()) {
    done_ = true;
    http_->CloseAll();
    loops_remaining_->fetch_sub(1);
  }
}

absl::StatusOr<std::unique_ptr<ShardRunner>> ShardRunner::Create(
    EventLoops& loops, const v1::ShardAssignment& assignment) {
  const v1::RunSpec& spec = assignment.spec();
  if (!SessionSupported(spec.target().protocol())) {
    return absl::UnimplementedError(
        absl::StrCat("spec.target.protocol: ", v1::Protocol_Name(spec.target().protocol()),
                     " is not implemented by this worker yet"));
  }
  if (!spec.load().has_closed()) {
    return absl::UnimplementedError("spec.load: only the closed model is implemented yet");
  }
  if (assignment.client_count() <= 0 || assignment.max_concurrent() <= 0) {
    return absl::InvalidArgumentError("assignment has no clients or no concurrency");
  }
  auto settings = std::make_shared<ShardSettings>();
  settings->run_id = assignment.run_id();
  settings->spec = spec;
  settings->cycles_per_client = std::max(1, spec.load().closed().cycles_per_client());
  if (spec.target().has_request_timeout()) {
    const auto ms = absl::ToInt64Milliseconds(FromProtoDuration(spec.target().request_timeout()));
    if (ms > 0) {
      settings->request_timeout = std::chrono::milliseconds(ms);
    }
  } else {
    settings->request_timeout = kDefaultRequestTimeout;
  }
  auto url = ParseTargetUrl(spec.target().url(), "spec.target.url");
  if (!url.ok()) {
    return url.status();
  }
  ParsedUrl ws_url = *url;
  if (!spec.target().ws_url().empty()) {
    auto w = ParseTargetUrl(spec.target().ws_url(), "spec.target.wsUrl");
    if (!w.ok()) {
      return w.status();
    }
    ws_url = *w;
  }
  auto endpoints = Resolve(*url);
  if (!endpoints.ok()) {
    return endpoints.status();
  }
  auto ws_endpoints = Resolve(ws_url);
  if (!ws_endpoints.ok()) {
    return ws_endpoints.status();
  }
  settings->target.host_header = HostHeader(*url);
  settings->target.endpoints = *std::move(endpoints);
  settings->target.ws_host_header = HostHeader(ws_url);
  settings->target.ws_endpoints = *std::move(ws_endpoints);
  settings->target.base_path = url->path;

  auto runner = std::unique_ptr<ShardRunner>(new ShardRunner(loops, settings));
  runner->cycles_total_ =
      static_cast<int64_t>(assignment.client_count()) * settings->cycles_per_client;
  // Spread clients and the concurrency limit over the loops; a loop with no
  // concurrency share runs no clients.
  const int used = static_cast<int>(
      std::min<int64_t>({loops.size(), assignment.client_count(), assignment.max_concurrent()}));
  const std::vector<int64_t> clients = SplitEvenly(assignment.client_count(), used);
  const std::vector<int64_t> limits = SplitEvenly(assignment.max_concurrent(), used);
  int32_t next = assignment.client_begin();
  runner->loops_remaining_.store(used);
  for (int i = 0; i < used; ++i) {
    std::deque<int32_t> ids;
    for (int64_t k = 0; k < clients[static_cast<size_t>(i)]; ++k) {
      ids.push_back(next++);
    }
    auto shard = std::make_shared<LoopShard>(
        loops.loop(i), settings, std::move(ids), static_cast<int32_t>(limits[static_cast<size_t>(i)]),
        &runner->loops_remaining_, &runner->active_sessions_);
    runner->shards_.emplace_back(i, std::move(shard));
  }
  return runner;
}

ShardRunner::~ShardRunner() { Cancel(); }

void ShardRunner::Start() {
  for (auto& [loop, shard] : shards_) {
    shard->Start();
  }
}

void ShardRunner::Cancel() {
  if (cancelled_.exchange(true)) {
    return;
  }
  for (auto& [loop, shard] : shards_) {
    shard->Cancel();
  }
}

void ShardRunner::CutInto(metrics::MetricSet& out) {
  std::latch swapped(static_cast<std::ptrdiff_t>(shards_.size()));
  for (auto& [loop, shard] : shards_) {
    net::post(loops_.loop(loop), [&swapped, s = shard.get()] {
      s->SwapMetrics();
      swapped.count_down();
    });
  }
  swapped.wait();
  for (auto& [loop, shard] : shards_) {
    out.Merge(shard->spare());
    shard->spare().Reset();
  }
}

}  // namespace llmload::worker
