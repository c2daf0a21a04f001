#include "services/worker/shard.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <iterator>
#include <latch>
#include <map>
#include <optional>
#include <random>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/url/parse.hpp>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/common/redact.h"
#include "lib/validation/target_policy.h"
#include "lib/validation/target_urls.h"
#include "services/common/grpc_util.h"
#include "services/worker/session_factory.h"
#include "services/worker/session_util.h"

namespace llmload::worker {
namespace {

// Keep-alive HTTP connections per loop (idle or busy) to the target.
constexpr size_t kMaxHttpConnsPerLoop = 128;
constexpr auto kDefaultRequestTimeout = std::chrono::milliseconds(120000);

struct ParsedUrl {
  bool tls = false;
  std::string scheme;
  std::string host;
  uint16_t port = 0;
  std::string path;
  std::string query;
};

absl::StatusOr<ParsedUrl> ParseTargetUrl(const std::string& url, const char* field) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not a URL: ", RedactUrl(url)));
  }
  ParsedUrl out;
  out.scheme = std::string(parsed->scheme());
  out.tls = out.scheme == "https" || out.scheme == "wss";
  if (!out.tls && out.scheme != "http" && out.scheme != "ws") {
    return absl::InvalidArgumentError(absl::StrCat(field, ": unsupported scheme ", out.scheme));
  }
  out.host = std::string(parsed->host_address());
  out.port = parsed->has_port() ? parsed->port_number() : (out.tls ? 443 : 80);
  if (parsed->has_userinfo() || parsed->has_fragment()) {
    // Validation refuses these too; never quote the URL (it may hold a
    // password).
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must not carry credentials or a #fragment"));
  }
  out.path = std::string(parsed->encoded_path());
  while (!out.path.empty() && out.path.back() == '/') {
    out.path.pop_back();
  }
  out.query = std::string(parsed->encoded_query());
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
  return url.port == (url.tls ? 443 : 80) ? url.host : absl::StrCat(url.host, ":", url.port);
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::chrono::nanoseconds ToChrono(const google::protobuf::Duration& d) {
  return std::chrono::seconds(d.seconds()) + std::chrono::nanoseconds(d.nanos());
}

load::ThinkTime ThinkOf(const v1::ThinkTime& t) {
  load::ThinkTime out;
  out.min_s = std::chrono::duration<double>(ToChrono(t.min())).count();
  out.max_s = t.has_max() ? std::chrono::duration<double>(ToChrono(t.max())).count() : out.min_s;
  return out;
}

Clock::duration ToClock(const google::protobuf::Duration& d) {
  return std::chrono::duration_cast<Clock::duration>(ToChrono(d));
}

PhasePlan PhasesOf(const v1::RunSpec& spec) {
  PhasePlan p;
  p.warmup_requests = std::max(0, spec.warmup().requests());
  p.clients = spec.load().has_closed()     ? spec.load().closed().clients()
              : spec.load().has_duration() ? spec.load().duration().connections()
                                           : 0;
  if (spec.warmup().has_duration()) {
    p.warmup_for = ToClock(spec.warmup().duration());
  }
  if (spec.cooldown().has_duration()) {
    p.cooldown_for = ToClock(spec.cooldown().duration());
  }
  return p;
}

// Fills the load-model part of the settings from the spec.
void ApplyLoadModel(const v1::RunSpec& spec, ShardSettings* settings) {
  settings->objectives = load::ObjectiveLimits::FromProto(spec.objectives());
  const v1::Load& load = spec.load();
  if (load.has_closed()) {
    settings->model = LoadModel::kClosed;
    settings->cycles_per_client = std::max(1, load.closed().cycles_per_client());
    settings->think = ThinkOf(load.closed().think_time());
  } else if (load.has_duration()) {
    settings->model = LoadModel::kDuration;
    settings->length = ToChrono(load.duration().duration());
    settings->think = ThinkOf(load.duration().think_time());
  } else if (load.has_open()) {
    const v1::OpenLoad& o = load.open();
    settings->model = LoadModel::kOpen;
    settings->base_rate = o.rate_per_second();
    settings->distribution =
        o.distribution() == v1::UNIFORM ? load::Distribution::kUniform : load::Distribution::kPoisson;
    std::chrono::nanoseconds staged{0};
    for (const v1::RateStage& st : o.stages()) {
      settings->stages.push_back(
          {st.target_rate(), std::chrono::duration<double>(ToChrono(st.duration())).count()});
      staged += ToChrono(st.duration());
    }
    settings->length = std::max(ToChrono(o.duration()), staged);
  }
}

// Resolves every target URL of the spec (url, or each of urls) into a
// TargetInfo. A host:port named by several URLs is resolved once. What a
// permitted name resolves to must be permitted too: DNS must not lead a run
// around the orchestrator's allowlist; a refusal names the URL's field.
absl::StatusOr<std::vector<TargetInfo>> ResolveTargets(const v1::ShardAssignment& assignment) {
  const v1::Target& t = assignment.spec().target();
  std::optional<validation::TargetPolicy> policy;
  if (!assignment.allowed_targets().empty()) {
    auto parsed = validation::TargetPolicy::Parse(assignment.allowed_targets());
    if (!parsed.ok()) {
      return parsed.status();
    }
    policy = *std::move(parsed);
  }
  // What every URL shares: source addresses, headers, the TLS context.
  TargetInfo common;
  for (const std::string& a : t.source_addresses()) {
    boost::system::error_code ec;
    auto addr = boost::asio::ip::make_address(a, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.target.sourceAddresses: not an IP address: ", a));
    }
    common.source_addresses.push_back(addr);
  }
  for (const auto& [name, value] : t.headers()) {
    common.headers.emplace_back(name, value);
  }
  for (const auto& [name, env] : t.headers_from_env()) {
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("spec.target.headersFromEnv[\"", name, "\"]: the environment variable ", env,
                       " is not set on this worker"));
    }
    common.headers.emplace_back(name, value);
  }
  std::map<std::pair<std::string, uint16_t>, std::vector<tcp::endpoint>> resolved;
  auto resolve = [&](const ParsedUrl& url,
                     const std::string& field) -> absl::StatusOr<std::vector<tcp::endpoint>> {
    const auto key = std::make_pair(url.host, url.port);
    if (auto it = resolved.find(key); it != resolved.end()) {
      return it->second;
    }
    auto endpoints = Resolve(url);
    if (!endpoints.ok()) {
      return absl::Status(endpoints.status().code(),
                          absl::StrCat(field, ": ", endpoints.status().message()));
    }
    if (policy.has_value()) {
      std::vector<boost::asio::ip::address> addresses;
      for (const tcp::endpoint& e : *endpoints) {
        addresses.push_back(e.address());
      }
      if (absl::Status s = policy->CheckResolved(url.host, addresses); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat(field, ": ", s.message()));
      }
    }
    resolved.emplace(key, *endpoints);
    return endpoints;
  };

  std::vector<TargetInfo> out;
  for (const validation::TargetUrl& u : validation::TargetUrls(t)) {
    auto url = ParseTargetUrl(*u.url, u.path.c_str());
    if (!url.ok()) {
      return url.status();
    }
    ParsedUrl ws_url = *url;
    if (!t.ws_url().empty()) {
      auto w = ParseTargetUrl(t.ws_url(), "spec.target.wsUrl");
      if (!w.ok()) {
        return w.status();
      }
      ws_url = *w;
    }
    auto endpoints = resolve(*url, u.path);
    if (!endpoints.ok()) {
      return endpoints.status();
    }
    auto ws_endpoints = resolve(ws_url, t.ws_url().empty() ? u.path : "spec.target.wsUrl");
    if (!ws_endpoints.ok()) {
      return ws_endpoints.status();
    }
    TargetInfo info = common;
    info.host_header = HostHeader(*url);
    info.endpoints = *std::move(endpoints);
    info.ws_host_header = HostHeader(ws_url);
    info.ws_endpoints = *std::move(ws_endpoints);
    info.base_path = url->path;
    info.query = url->query;
    info.ws_base_path = ws_url.path;
    info.ws_query = ws_url.query;
    info.tls = url->tls;
    info.ws_tls = ws_url.tls;
    info.host = url->host;
    info.ws_host = ws_url.host;
    if (url->tls || ws_url.tls) {
      if (t.protocol() == v1::CENTRIFUGO_EMULATOR) {
        return absl::UnimplementedError(
            absl::StrCat(u.path, ": TLS is not supported for CENTRIFUGO_EMULATOR targets yet"));
      }
      if (common.tls_context == nullptr) {
        auto ctx = MakeClientTlsContext(t);
        if (!ctx.ok()) {
          return ctx.status();
        }
        common.tls_context = *std::move(ctx);
      }
      info.tls_context = common.tls_context;
      info.verify = !t.insecure_skip_verify();
    }
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace

std::string JoinTarget(std::string_view base_path, std::string_view suffix, std::string_view query) {
  std::string out;
  out.reserve(base_path.size() + suffix.size() + query.size() + 2);
  out.append(base_path).append(suffix);
  if (out.empty()) {
    out = "/";
  }
  if (!query.empty()) {
    out.push_back(out.find('?') == std::string::npos ? '?' : '&');
    out.append(query);
  }
  return out;
}

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
                     std::deque<int32_t> clients, int32_t limit,
                     std::shared_ptr<ShardCounters> counters, LoopLoad load, int64_t records_cap)
    : ioc_(ioc),
      settings_(std::move(settings)),
      pending_(std::move(clients)),
      limit_(limit),
      counters_(std::move(counters)),
      load_(load),
      records_left_(records_cap),
      rng_(load.seed),
      end_timer_(ioc),
      arrival_timer_(ioc) {
  // A pool holds nothing until used.
  for (const TargetInfo& t : settings_->targets) {
    http_.push_back(std::make_shared<HttpPool>(ioc_, t.endpoints, t.host_header,
                                               settings_->request_timeout, kMaxHttpConnsPerLoop));
  }
}

HttpPool& LoopShard::http(int32_t client_id) {
  return *http_[settings_->TargetIndexFor(client_id)];
}

void LoopShard::CloseHttp() {
  for (const auto& pool : http_) {
    pool->CloseAll();
  }
}

size_t ShardSettings::TargetIndexFor(int32_t client_id) const {
  return validation::UrlIndexForClient(client_id, targets.size());
}

const TargetInfo& ShardSettings::TargetFor(int32_t client_id) const {
  return targets[TargetIndexFor(client_id)];
}

void LoopShard::Start(Clock::time_point start) {
  net::post(ioc_, [self = shared_from_this(), start] { self->Begin(start); });
}

void LoopShard::Begin(Clock::time_point start) {
  if (cancelled_) {
    return MaybeDone();
  }
  // Work moved here mid-run starts as far into the load as the run is.
  start_ = start - std::chrono::duration_cast<Clock::duration>(settings_->offset);
  const ShardSettings& s = *settings_;
  if (s.model != LoadModel::kClosed) {
    end_timer_.expires_at(start_ + std::chrono::duration_cast<Clock::duration>(s.length));
    end_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) {
        self->EndLoad(self->settings_->drain);
      }
    });
  }
  if (s.model == LoadModel::kOpen) {
    const double length_s = std::chrono::duration<double>(s.length).count();
    arrivals_ = std::make_unique<load::ArrivalSchedule>(
        load::RateProfile(s.base_rate, length_s, s.stages, load_.rate_share), s.distribution,
        load_.seed);
    ScheduleNextArrival();
    return;
  }
  Fill();
}

void LoopShard::Cancel() {
  net::post(ioc_, [self = shared_from_this()] {
    self->cancelled_ = true;
    self->pending_.clear();
    self->idle_.clear();
    // assigned_ empties as CancelLive ends its sessions (each counted
    // UNFINISHED).
    self->end_timer_.cancel();
    self->arrival_timer_.cancel();
    self->CancelLive();
    self->waiting_to_connect_.clear();
    self->CloseHttp();
    self->MaybeDone();
  });
}

void LoopShard::StartSession(int32_t client_id, std::optional<Clock::time_point> intended) {
  std::shared_ptr<Session> s =
      MakeSession(settings_->spec.target().protocol(), shared_from_this(), client_id);
  Session* raw = s.get();
  live_.emplace(raw, LiveSession{std::move(s), client_id});
  if (intended.has_value()) {
    // Registered before Start: the session asks for it once set up.
    assigned_[raw] = *intended;
  }
  counters_->active_sessions.fetch_add(1, std::memory_order_relaxed);
  raw->Start();  // may end the session at once; live_ keeps it alive until a later handler
}

void LoopShard::CancelLive() {
  // Cancel ends each session (SessionEnded erases it from live_), so walk a
  // copy; the sessions themselves stay alive until posted handlers drop them.
  std::vector<Session*> live;
  live.reserve(live_.size());
  for (const auto& [s, entry] : live_) {
    live.push_back(s);
  }
  for (Session* s : live) {
    if (live_.contains(s)) {
      s->Cancel();
    }
  }
}

bool LoopShard::AcquireConnectSlot(const std::shared_ptr<Session>& session) {
  if (connecting_ < kMaxConnecting) {
    ++connecting_;
    return true;
  }
  waiting_to_connect_.push_back(session);
  return false;
}

void LoopShard::ReleaseConnectSlot() {
  --connecting_;
  // Hand the slot to the next session still waiting (ended ones are gone).
  while (!waiting_to_connect_.empty() && connecting_ < kMaxConnecting) {
    std::shared_ptr<Session> next = std::move(waiting_to_connect_.front());
    waiting_to_connect_.pop_front();
    if (next != nullptr && live_.contains(next.get())) {
      ++connecting_;
      net::post(ioc_, [next] { next->OnConnectSlot(); });
    }
  }
}

void LoopShard::Fill() {
  // Closed and duration models: every client id is a session to run, at
  // most limit_ at once. The open model opens sessions on arrivals.
  while (settings_->model != LoadModel::kOpen && !cancelled_ && !ending_ && !pending_.empty() &&
         static_cast<int32_t>(live_.size()) < limit_) {
    const int32_t client = pending_.front();
    pending_.pop_front();
    StartSession(client);
  }
  MaybeDone();
}

NextStep LoopShard::NextRequest(Session* session, int64_t requests_done) {
  assert(live_.contains(session) && "NextRequest from a session that has ended");
  NextStep step;
  step.kind = NextStep::Kind::kClose;
  if (cancelled_ || ending_) {
    return step;
  }
  const ShardSettings& s = *settings_;
  if (s.model == LoadModel::kOpen) {
    // A session asks for work: give it the arrival it was opened or resumed
    // for, else it waits for the next one.
    auto it = assigned_.find(session);
    if (it == assigned_.end()) {
      assert(std::find(idle_.begin(), idle_.end(), session) == idle_.end());
      idle_.push_back(session);
      step.kind = NextStep::Kind::kWait;
      return step;
    }
    step.kind = NextStep::Kind::kRequest;
    step.cycle = requests_done + 1;
    step.intended = it->second;
    step.from_intended = true;
    assigned_.erase(it);
    OpenRequest(session, step, ArrivalPhase(step.intended));
    return step;
  }
  int32_t client = -1;  // closed model: the client whose cycles are counted
  auto live = live_.find(session);
  const int32_t session_client = live != live_.end() ? live->second.client : -1;
  const int64_t warm_done = live != live_.end() ? live->second.warm_done : 0;
  if (s.model == LoadModel::kClosed) {
    client = session_client;
    int64_t budget = s.cycles_per_client;
    if (!cycles_.empty()) {
      auto it = cycles_.find(client);
      budget = it == cycles_.end() ? s.cycles_per_client : it->second;
    }
    if (requests_done - warm_done >= budget) {  // warm-up requests come on top
      return step;
    }
  }
  Clock::time_point intended = Clock::now();
  if (requests_done > 0 && s.think.enabled()) {
    intended += std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(s.think.Sample(rng_)));
  }
  if (s.model == LoadModel::kDuration &&
      intended >= start_ + std::chrono::duration_cast<Clock::duration>(s.length)) {
    return step;  // the next request would start after the end
  }
  const Phase phase =
      s.phases.enabled()
          ? s.phases.PhaseOf(session_client, warm_done, intended - start_,
                             s.model == LoadModel::kClosed
                                 ? Clock::duration::zero()
                                 : std::chrono::duration_cast<Clock::duration>(s.length))
          : Phase::kCounted;
  step.kind = NextStep::Kind::kRequest;
  step.cycle = requests_done + 1;
  step.intended = intended;
  SetFor(phase).Add(v1::OFFERED);
  if (client >= 0 && phase == Phase::kCounted) {
    ++(*active_clients_)[client].started;
  }
  OpenRequest(session, step, phase);
  return step;
}

metrics::MetricSet& LoopShard::SetFor(Phase phase) {
  if (phase == Phase::kCounted) {
    return *active_;
  }
  return phase_sets_[active_ == &sets_[0] ? 0 : 1][phase == Phase::kWarmup ? 0 : 1];
}

metrics::MetricSet& LoopShard::metrics(Session* session) {
  if (!settings_->phases.enabled()) {
    return *active_;
  }
  auto it = live_.find(session);
  if (it == live_.end() || !it->second.request_open) {
    return *active_;
  }
  return SetFor(it->second.phase);
}

Phase LoopShard::ArrivalPhase(Clock::time_point intended) const {
  if (!settings_->phases.enabled()) {
    return Phase::kCounted;
  }
  return settings_->phases.PhaseOf(-1, 0, intended - start_,
                                   std::chrono::duration_cast<Clock::duration>(settings_->length));
}

void LoopShard::OpenRequest(Session* session, NextStep& step, Phase phase) {
  auto it = live_.find(session);
  if (it != live_.end()) {
    assert(!it->second.request_open && "a session asked for a request with one still open");
    it->second.request_open = true;
    it->second.phase = phase;
    if (phase == Phase::kWarmup) {
      ++it->second.warm_done;
    }
    step.turn = TurnOf(step.cycle, settings_->spec.target().turns());
    if (settings_->cancel.has_value() && settings_->cancel->Keep(it->second.client, step.cycle)) {
      step.cancel_after_tokens = settings_->cancel_after_tokens;
      step.cancel_after = settings_->cancel_after;
    }
    if (settings_->records.has_value()) {
      it->second.cycle = step.cycle;
      it->second.handed_at = Clock::now();
      it->second.intended = step.intended;
      it->second.from_intended = step.from_intended;
    }
  }
}

void LoopShard::Record(int32_t client, int64_t cycle, Clock::time_point handed_at,
                       Clock::time_point intended, bool from_intended,
                       const RequestOutcome& outcome) {
  if (!settings_->records->Keep(client, cycle)) {
    return;
  }
  RecordBuffer& buf = active_ == &sets_[0] ? records_[0] : records_[1];
  if (records_left_ <= 0) {
    ++buf.dropped;
    return;
  }
  --records_left_;
  const auto unix_us = [&](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count() +
           settings_->unix_minus_steady_us;
  };
  // A failure reported without its meter: times from when it was handed out.
  const Clock::time_point sent =
      outcome.sent_at != Clock::time_point{} ? outcome.sent_at : handed_at;
  const Clock::time_point origin = from_intended ? intended : sent;
  v1::RequestRecord& r = buf.records.emplace_back();
  r.set_start_us(unix_us(sent));
  r.set_intended_start_us(unix_us(from_intended ? intended : sent));
  r.set_ttft_us(static_cast<int64_t>(outcome.ttft_us));
  r.set_e2e_us(outcome.ok ? static_cast<int64_t>(outcome.e2e_us)
                          : std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(
                                                     Clock::now() - origin)
                                                     .count()));
  r.set_tokens(outcome.tokens);
  r.set_chunks(outcome.chunks);
  r.set_turn(TurnOf(cycle, settings_->spec.target().turns()));
  r.set_input_tokens(static_cast<int64_t>(outcome.input_tokens));
  r.set_outcome(outcome.counter != v1::COUNTER_UNSPECIFIED ? outcome.counter
                                                           : v1::PROTOCOL_ERROR);
  r.set_client_id(client);
  r.set_request_index(cycle);
}

void LoopShard::RequestDone(Session* session, const RequestOutcome& outcome) {
  auto it = live_.find(session);
  assert(it != live_.end() && it->second.request_open &&
         "RequestDone for a request NextRequest did not hand out");
  if (it != live_.end()) {
    it->second.request_open = false;
    if (it->second.phase != Phase::kCounted) {
      return;  // counted apart (warm-up, cool-down): no record, no cycle, no goodput
    }
    if (settings_->records.has_value()) {
      Record(it->second.client, it->second.cycle, it->second.handed_at, it->second.intended,
             it->second.from_intended, outcome);
    }
    if (settings_->model == LoadModel::kClosed) {
      ++(*active_clients_)[it->second.client].ended;
    }
  }
  if (settings_->objectives.Good(outcome.ok, outcome.ttft_us, outcome.mean_itl_us, outcome.e2e_us,
                                 outcome.tokens)) {
    metrics().Add(v1::GOOD);
  }
}

void LoopShard::SessionEnded(Session* session) {
  auto it = live_.find(session);
  if (it == live_.end()) {
    return;
  }
  const int32_t client = it->second.client;
  if (it->second.request_open) {
    SetFor(it->second.phase).Add(v1::UNFINISHED);  // cut off by the drain's end or a stop
  }
  if (settings_->model == LoadModel::kClosed) {
    ClientDelta& d = (*active_clients_)[client];
    if (it->second.request_open && it->second.phase == Phase::kCounted) {
      ++d.ended;
    }
    // The client is done, unless a stop or a drain cut it short: then the
    // cycles it did not start are still its work (and may move on).
    d.closed = d.closed || (!cancelled_ && !ending_);
  }
  // The session may be in the middle of one of its own member functions:
  // its last owning reference goes from a later handler (lifetime rules).
  std::shared_ptr<Session> owner = std::move(it->second.owner);
  live_.erase(it);
  counters_->active_sessions.fetch_sub(1, std::memory_order_relaxed);
  if (settings_->model == LoadModel::kOpen) {
    if (auto a = assigned_.find(session); a != assigned_.end()) {
      SetFor(ArrivalPhase(a->second)).Add(v1::UNFINISHED);  // its arrival was never sent
      assigned_.erase(a);
    }
    std::erase(idle_, session);
    if (!cancelled_ && !ending_) {
      pending_.push_back(client);  // the id is free for a later session
    }
  }
  // Start the next client after the current handler returns.
  net::post(ioc_, [self = shared_from_this(), owner = std::move(owner)] { self->Fill(); });
}

void LoopShard::ScheduleNextArrival() {
  std::optional<double> t = arrivals_->Next();
  // Arrivals before the offset were another shard's (its worker was lost).
  const double offset_s = std::chrono::duration<double>(settings_->offset).count();
  while (t.has_value() && *t < offset_s) {
    t = arrivals_->Next();
  }
  if (!t.has_value()) {
    return;  // no more arrivals; the end timer ends the load
  }
  next_arrival_ =
      start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*t));
  arrival_timer_.expires_at(next_arrival_);
  arrival_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) {
      self->OnArrivalTimer();
    }
  });
}

void LoopShard::OnArrivalTimer() {
  if (cancelled_ || ending_) {
    return;
  }
  // Every arrival due by now, each with its own intended time (a late timer
  // must not shift the schedule: that would hide coordinated omission).
  const Clock::time_point now = Clock::now();
  const Clock::time_point end =
      start_ + std::chrono::duration_cast<Clock::duration>(settings_->length);
  while (next_arrival_ <= now && next_arrival_ < end) {
    Arrive(next_arrival_);
    std::optional<double> t = arrivals_->Next();
    if (!t.has_value()) {
      return;
    }
    next_arrival_ =
        start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*t));
  }
  if (next_arrival_ >= end) {
    return;
  }
  arrival_timer_.expires_at(next_arrival_);
  arrival_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) {
      self->OnArrivalTimer();
    }
  });
}

void LoopShard::Arrive(Clock::time_point intended) {
  const Phase phase = ArrivalPhase(intended);
  SetFor(phase).Add(v1::OFFERED);
  if (!idle_.empty()) {
    Session* s = idle_.back();
    idle_.pop_back();
    assert(live_.contains(s) && "an idle session must be live");
    assigned_[s] = intended;
    s->Resume();
    return;
  }
  if (static_cast<int32_t>(live_.size()) < limit_ && !pending_.empty()) {
    const int32_t client = pending_.front();
    pending_.pop_front();
    StartSession(client, intended);
    return;
  }
  SetFor(phase).Add(v1::DROPPED);  // over the in-flight cap: counted, never silently skipped
}

void LoopShard::Drain(std::chrono::milliseconds grace) {
  net::post(ioc_, [self = shared_from_this(), grace] {
    if (!self->done_) {
      self->EndLoad(grace);
    }
  });
}

void LoopShard::EndLoad(std::chrono::milliseconds grace) {
  if (cancelled_ || ending_) {
    return;
  }
  ending_ = true;
  arrival_timer_.cancel();
  pending_.clear();
  // Arrivals not yet sent by a session still setting up are not sent now.
  for (const auto& [session, intended] : assigned_) {
    SetFor(ArrivalPhase(intended)).Add(v1::UNFINISHED);
  }
  assigned_.clear();
  // Idle sessions close now; busy ones close after their request.
  std::vector<Session*> idle;
  idle.swap(idle_);
  for (Session* s : idle) {
    if (live_.contains(s)) {
      s->Resume();
    }
  }
  end_timer_.expires_after(grace);
  end_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) {
      self->ForceEnd();
    }
  });
  MaybeDone();
}

void LoopShard::ForceEnd() {
  if (done_) {
    return;
  }
  if (!live_.empty()) {
    LLMLOAD_LOG(kDebug, "Sessions still busy after the drain; cancelling them.")
        .Kv("run_id", settings_->run_id)
        .Kv("sessions", static_cast<int64_t>(live_.size()));
  }
  CancelLive();
  CloseHttp();
  MaybeDone();
}

void LoopShard::MaybeDone() {
  const bool load_over =
      settings_->model == LoadModel::kClosed ? pending_.empty() : (ending_ || cancelled_);
  if (!done_ && live_.empty() && load_over) {
    done_ = true;
    end_timer_.cancel();
    arrival_timer_.cancel();
    CloseHttp();
    counters_->loops_remaining.fetch_sub(1);
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
  if (spec.load().model_case() == v1::Load::MODEL_NOT_SET) {
    return absl::InvalidArgumentError("spec.load: no load model");
  }
  if (assignment.client_count() <= 0 || assignment.max_concurrent() <= 0) {
    return absl::InvalidArgumentError("assignment has no clients or no concurrency");
  }
  auto settings = std::make_shared<ShardSettings>();
  settings->run_id = assignment.run_id();
  settings->epoch = assignment.epoch();
  settings->spec = spec;
  settings->prompts.emplace(settings->spec.target());
  ApplyLoadModel(spec, settings.get());
  if (assignment.has_load_offset()) {
    settings->offset = std::max(std::chrono::nanoseconds(0),
                                ToChrono(assignment.load_offset()));
  }
  if (spec.target().has_request_timeout()) {
    const auto ms = absl::ToInt64Milliseconds(FromProtoDuration(spec.target().request_timeout()));
    if (ms > 0) {
      settings->request_timeout = std::chrono::milliseconds(ms);
    }
  } else {
    settings->request_timeout = kDefaultRequestTimeout;
  }
  const v1::Target& t = spec.target();
  settings->connect_timeout =
      DurationOr(t.connect_timeout(), t.has_connect_timeout(), std::chrono::milliseconds(10000));
  settings->ttft_timeout =
      DurationOr(t.ttft_timeout(), t.has_ttft_timeout(), settings->request_timeout);
  settings->idle_timeout =
      DurationOr(t.idle_timeout(), t.has_idle_timeout(), settings->request_timeout);
  settings->reconnect_attempts =
      t.reconnect_attempts() == 0 ? 3 : std::max(0, t.reconnect_attempts());
  settings->reconnect_backoff = DurationOr(t.reconnect_backoff(), t.has_reconnect_backoff(),
                                           std::chrono::milliseconds(1000));
  absl::StatusOr<std::vector<TargetInfo>> targets = ResolveTargets(assignment);
  if (!targets.ok()) {
    return targets.status();
  }
  settings->targets = *std::move(targets);

  // The shard's clients: the range, or (work moved from another shard) the
  // spans, each client with the cycles it has left.
  std::vector<std::pair<int32_t, int32_t>> clients;  // (id, cycles)
  if (assignment.clients_size() > 0) {
    int64_t n = 0;
    for (const v1::ClientSpan& span : assignment.clients()) {
      if (span.count() <= 0 || span.begin() < 0 || span.cycles() < 0 ||
          (n += span.count()) > 10000000) {
        return absl::InvalidArgumentError("assignment has an invalid client span");
      }
    }
    clients.reserve(static_cast<size_t>(n));
    for (const v1::ClientSpan& span : assignment.clients()) {
      for (int32_t k = 0; k < span.count(); ++k) {
        clients.emplace_back(span.begin() + k, span.cycles());
      }
    }
  } else {
    clients.reserve(static_cast<size_t>(assignment.client_count()));
    for (int32_t k = 0; k < assignment.client_count(); ++k) {
      clients.emplace_back(assignment.client_begin() + k, settings->cycles_per_client);
    }
  }
  const bool own_cycles = assignment.clients_size() > 0 && settings->model == LoadModel::kClosed;
  auto runner = std::unique_ptr<ShardRunner>(new ShardRunner(loops, settings));
  runner->cycles_total_ = 0;
  if (settings->model == LoadModel::kClosed) {
    for (const auto& [id, cycles] : clients) {
      runner->cycles_total_ += cycles;
    }
  }
  // This shard's fraction of the open model's arrivals.
  double rate_share = assignment.rate_share();
  if (rate_share <= 0 && settings->base_rate > 0) {
    rate_share = assignment.rate_per_second() / settings->base_rate;
  }
  const uint64_t seed_base =
      spec.load().has_open() && spec.load().open().seed() != 0
          ? spec.load().open().seed()
          : std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
  // Work moved here from a lost worker was warmed up there.
  if (assignment.clients_size() == 0 && settings->offset == std::chrono::nanoseconds(0)) {
    settings->phases = PhasesOf(spec);
  } else if (spec.has_cooldown()) {
    settings->phases.cooldown_for = ToClock(spec.cooldown().duration());
  }
  if (const v1::Cancellation& c = spec.cancellation(); c.share() > 0) {
    settings->cancel.emplace(c);
    settings->cancel_after_tokens = static_cast<uint32_t>(std::max(0, c.after_tokens()));
    if (c.has_after()) {
      settings->cancel_after = std::chrono::duration_cast<Clock::duration>(
          absl::ToChronoNanoseconds(FromProtoDuration(c.after())));
    }
  }
  if (const v1::RecordsSpec& records = spec.records(); records.sample_rate() > 0) {
    settings->records.emplace(records);
    settings->records_cap = load::RecordShare(spec, assignment.client_count(), rate_share);
    const auto steady = std::chrono::duration_cast<std::chrono::microseconds>(
        Clock::now().time_since_epoch());
    const auto wall = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    settings->unix_minus_steady_us = wall.count() - steady.count();
  }
  // Spread clients and the concurrency limit over the loops; a loop with no
  // concurrency share runs no clients.
  const int used = static_cast<int>(std::min<int64_t>(
      {loops.size(), static_cast<int64_t>(clients.size()), assignment.max_concurrent()}));
  const std::vector<int64_t> per_loop = SplitEvenly(static_cast<int64_t>(clients.size()), used);
  const std::vector<int64_t> limits = SplitEvenly(assignment.max_concurrent(), used);
  const std::vector<int64_t> record_caps = SplitEvenly(settings->records_cap, used);
  size_t next = 0;
  runner->counters_->loops_remaining.store(used);
  for (int i = 0; i < used; ++i) {
    std::deque<int32_t> ids;
    absl::flat_hash_map<int32_t, int32_t> cycles;
    for (int64_t k = 0; k < per_loop[static_cast<size_t>(i)]; ++k, ++next) {
      ids.push_back(clients[next].first);
      if (own_cycles) {
        cycles[clients[next].first] = clients[next].second;
      }
    }
    LoopLoad loop_load;
    // Each loop gets an equal part of the shard's arrivals and its own
    // random stream (distinct per shard and loop for the same run seed).
    loop_load.rate_share = rate_share / used;
    loop_load.seed = SplitMix64(seed_base ^ SplitMix64(static_cast<uint64_t>(
                                                assignment.client_begin()) * 1000 + i));
    auto shard = std::make_shared<LoopShard>(
        loops.loop(i), settings, std::move(ids), static_cast<int32_t>(limits[static_cast<size_t>(i)]),
        runner->counters_, loop_load, record_caps[static_cast<size_t>(i)]);
    shard->SetClientCycles(std::move(cycles));
    runner->shards_.emplace_back(i, std::move(shard));
  }
  return runner;
}

ShardRunner::~ShardRunner() { Cancel(); }

void ShardRunner::Start() {
  const Clock::time_point start = Clock::now();
  for (auto& [loop, shard] : shards_) {
    shard->Start(start);
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

void ShardRunner::Drain(std::chrono::milliseconds grace) {
  if (Finished() || cancelled_.load() || drained_.exchange(true)) {
    return;
  }
  for (auto& [loop, shard] : shards_) {
    shard->Drain(grace);
  }
}

int64_t PhasePlan::WarmupRequestsOf(int32_t client) const {
  if (warmup_requests <= 0 || clients <= 0 || client < 0) {
    return 0;
  }
  const int64_t c = client % clients;
  return warmup_requests / clients + (c < warmup_requests % clients ? 1 : 0);
}

Phase PhasePlan::PhaseOf(int32_t client, int64_t warm_done, Clock::duration since_start,
                         Clock::duration length) const {
  if (warm_done < WarmupRequestsOf(client) ||
      (warmup_for > Clock::duration::zero() && since_start < warmup_for)) {
    return Phase::kWarmup;
  }
  if (cooldown_for > Clock::duration::zero() && length > Clock::duration::zero() &&
      since_start >= length - cooldown_for) {
    return Phase::kCooldown;
  }
  return Phase::kCounted;
}

void FoldPhase(const metrics::MetricSet& phase, Phase which, metrics::MetricSet& out) {
  if (which == Phase::kWarmup) {
    out.Add(v1::WARMUP_REQUESTS, phase.Get(v1::OFFERED));
    out.Add(v1::WARMUP_FAILED, metrics::FailedRequests(phase));
    out.Add(v1::WARMUP_TOKENS, phase.Get(v1::TOKENS));
  } else {
    out.Add(v1::COOLDOWN_REQUESTS, phase.Get(v1::OFFERED));
    out.Add(v1::COOLDOWN_TOKENS, phase.Get(v1::TOKENS));
  }
  // What the connections did is the run's, whichever request was open.
  for (v1::Counter c :
       {v1::SESSIONS_OPENED, v1::SESSIONS_FAILED, v1::RECONNECTS, v1::BYTES_IN, v1::BYTES_OUT}) {
    out.Add(c, phase.Get(c));
  }
  for (v1::Metric m : {v1::CONNECT, v1::SESSION_SETUP}) {
    out.Hist(m).Merge(phase.Hist(m));
  }
}

void ShardRunner::CutInto(metrics::MetricSet& out, CutExtras* extras) {
  std::latch swapped(static_cast<std::ptrdiff_t>(shards_.size()));
  for (auto& [loop, shard] : shards_) {
    net::post(loops_.loop(loop), [&swapped, s = shard.get()] {
      s->SwapMetrics();
      swapped.count_down();
    });
  }
  swapped.wait();
  std::map<int32_t, ClientDelta> merged;
  for (auto& [loop, shard] : shards_) {
    out.Merge(shard->spare());
    shard->spare().Reset();
    for (Phase p : {Phase::kWarmup, Phase::kCooldown}) {
      if (metrics::MetricSet& phase = shard->spare_phase(p); !phase.Empty()) {
        FoldPhase(phase, p, out);
        phase.Reset();
      }
    }
    LoopShard::RecordBuffer& buf = shard->spare_records();
    ClientDeltas& deltas = shard->spare_clients();
    if (extras != nullptr) {
      std::move(buf.records.begin(), buf.records.end(), std::back_inserter(extras->records));
      extras->records_dropped += buf.dropped;
      for (const auto& [id, d] : deltas) {
        ClientDelta& m = merged[id];
        m.started += d.started;
        m.ended += d.ended;
        m.closed = m.closed || d.closed;
      }
    }
    buf.records.clear();
    buf.dropped = 0;
    deltas.clear();
  }
  if (extras != nullptr) {
    for (const auto& [id, d] : merged) {
      v1::ClientCycles& c = extras->clients.emplace_back();
      c.set_client(id);
      c.set_started(d.started);
      c.set_ended(d.ended);
      c.set_closed(d.closed);
    }
  }
}

}  // namespace llmload::worker
