#include "services/emulator/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <thread>
#include <utility>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "boost/asio/ip/address.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/socket_base.hpp"
#include "boost/beast/core/bind_handler.hpp"
#include "lib/common/log.h"
#include "services/emulator/ids.h"
#include "services/emulator/metrics_text.h"

namespace llmload::emulator {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Every process of a group binds the same port; the kernel spreads
// connections over them.
using ReusePort = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

std::chrono::nanoseconds Seconds(double s) {
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(s * 1e9)));
}

CentrifugoEndpointOptions MakeCentrifugoOptions(const EmulatorConfig& c) {
  CentrifugoEndpointOptions o;
  o.handler.jwt_secret = c.jwt_secret;
  o.handler.version = c.server_version;
  // The connect reply carries whole seconds; never 0, which would tell the
  // client that the server does not ping.
  o.handler.ping_seconds = static_cast<uint32_t>(std::max(1.0, std::ceil(c.ping_interval_seconds)));
  o.ping_interval = Seconds(c.ping_interval_seconds);
  o.pong_timeout = Seconds(c.pong_timeout_seconds);
  o.stale_timeout = Seconds(c.stale_timeout_seconds);
  o.max_message_bytes = c.max_ws_message_bytes;
  o.max_outbox_bytes = c.max_ws_outbox_bytes;
  return o;
}

LlmEmulatorApiOptions MakeApiOptions(const EmulatorConfig& c, Behaviour* behaviour) {
  LlmEmulatorApiOptions o;
  o.behaviour = behaviour;
  o.jwt_secret = c.jwt_secret;
  o.token_ttl_seconds = c.token_ttl_seconds;
  o.default_length_words = c.length_words;
  o.default_token_delay_seconds = c.token_delay_seconds;
  o.seed = c.seed;
  o.now = [] { return absl::Now(); };
  o.new_session_id = [] { return NewUuid4(); };
  return o;
}

WsEndpointOptions MakeWsOptions(const EmulatorConfig& c) {
  WsEndpointOptions o;
  o.max_message_bytes = c.max_ws_message_bytes;
  o.max_outbox_bytes = c.max_ws_outbox_bytes;
  return o;
}

WsChatOptions MakeWsChatOptions(const EmulatorConfig& c) {
  WsChatOptions o;
  o.heartbeat = Seconds(c.ws_chat_heartbeat_seconds);
  o.now_ms = [] { return absl::ToUnixMillis(absl::Now()); };
  return o;
}

absl::StatusOr<RealmOptions> MakeRealmOptions(const EmulatorConfig& c) {
  RealmOptions o;
  std::string keys = c.realm_api_keys;
  if (!c.realm_api_keys_file.empty()) {
    std::ifstream in(c.realm_api_keys_file);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("realm_api_keys_file: cannot read '", c.realm_api_keys_file, "'"));
    }
    std::ostringstream text;
    text << in.rdbuf();
    keys += "\n" + text.str();
  }
  auto parsed = ParseRealmApiKeys(keys);
  if (!parsed.ok()) {
    return parsed.status();
  }
  o.api_keys = std::move(*parsed);
  o.auth_timeout = Seconds(c.realm_auth_timeout_seconds);
  o.rate_limit_per_minute = c.realm_rate_limit_per_minute;
  o.rate_limit_burst = c.realm_rate_limit_burst;
  o.now = [] { return std::chrono::steady_clock::now(); };
  return o;
}

}  // namespace

absl::StatusOr<net::ip::address> ListenAddress(const std::string& host) {
  boost::system::error_code ec;
  const net::ip::address address =
      net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("host: '", host, "' is not an IP address"));
  }
  return address;
}

bool EmulatorServer::SessionRunPublisher::StartRun(std::string_view session_id,
                                                   ResponsePlan plan) {
  std::string channel = "session:";
  channel.append(session_id);
  if (server_->relay_ == nullptr) {
    return server_->hub_.StartTokenStream(channel, std::move(plan));
  }
  // The frame is cut before the plan moves into the hub: if nobody here
  // listens, one of the siblings may.
  std::string frame = EncodeRunFrame(session_id, plan);
  if (server_->hub_.StartTokenStream(channel, std::move(plan))) {
    return true;
  }
  server_->runs_relayed_out_.fetch_add(1, std::memory_order_relaxed);
  server_->relay_->Broadcast(std::move(frame));
  return true;
}

void EmulatorServer::SessionRunPublisher::EndSession(std::string_view session_id) {
  std::string channel = "session:";
  channel.append(session_id);
  server_->hub_.RemoveHistory(channel);
}

void EmulatorServer::OnRelayedRun(RelayedRun&& run) {
  runs_relayed_in_.fetch_add(1, std::memory_order_relaxed);
  // Planned by a sibling, streamed here: its gaps and a subscriber leaving
  // it are this process's to record.
  run.plan.origin = &behaviour_;
  run.plan.protocol = Protocol::kCentrifugo;
  if (hub_.StartTokenStream("session:" + run.session_id, std::move(run.plan))) {
    runs_relayed_started_.fetch_add(1, std::memory_order_relaxed);
  }
}

std::string EmulatorServer::StatsJson() const {
  std::string out = absl::StrCat(
      "{\"pid\":", static_cast<int64_t>(::getpid()), ",\"process\":", member_.index,
      ",\"processes\":", member_.count,
      ",\"connections_accepted\":", accepted_connections_.load(std::memory_order_relaxed),
      ",\"open_connections\":", open_connections(), ",\"requests\":{");
  for (size_t p = 0; p < kProtocolCount; ++p) {
    const auto protocol = static_cast<Protocol>(p);
    const std::string_view name = ProtocolName(protocol);
    absl::StrAppend(&out, p == 0 ? "" : ",", "\"", absl::string_view(name.data(), name.size()),
                    "\":", behaviour_.RequestCount(protocol));
  }
  // Streamed responses whose client left before their end (a load
  // generator's cancelled requests, or users closing the tab).
  absl::StrAppend(&out, "},\"abandoned\":{");
  for (size_t p = 0; p < kProtocolCount; ++p) {
    const auto protocol = static_cast<Protocol>(p);
    const std::string_view name = ProtocolName(protocol);
    absl::StrAppend(&out, p == 0 ? "" : ",", "\"", absl::string_view(name.data(), name.size()),
                    "\":", behaviour_.AbandonedCount(protocol));
  }
  // Tokens this process handed to its connections.
  absl::StrAppend(&out, "},\"tokens_sent\":{");
  for (size_t p = 0; p < kProtocolCount; ++p) {
    const auto protocol = static_cast<Protocol>(p);
    const std::string_view name = ProtocolName(protocol);
    absl::StrAppend(&out, p == 0 ? "" : ",", "\"", absl::string_view(name.data(), name.size()),
                    "\":", behaviour_.TokensSentCount(protocol));
  }
  // The gaps this process actually left between consecutive tokens of a
  // response: the ground truth for a run's inter-token latency.
  absl::StrAppend(&out, "},\"token_gaps\":{");
  for (size_t p = 0; p < kProtocolCount; ++p) {
    const auto protocol = static_cast<Protocol>(p);
    const std::string_view name = ProtocolName(protocol);
    absl::StrAppend(&out, p == 0 ? "" : ",", "\"", absl::string_view(name.data(), name.size()),
                    "\":", TokenGapsJson(behaviour_.token_gaps().Snapshot(p)));
  }
  // WS chat conversations: user messages by their turn in the conversation
  // the emulator keeps for the connection (the last bucket: that turn or later).
  absl::StrAppend(&out, "},\"conversation_turns\":{\"WS_CHAT\":[");
  for (int b = 0; b < Behaviour::kTurnBuckets; ++b) {
    absl::StrAppend(&out, b == 0 ? "" : ",", behaviour_.TurnCount(b));
  }
  using RealmCall = Behaviour::RealmCall;
  absl::StrAppend(&out, "]},\"realm_functions\":{\"health\":",
                  behaviour_.RealmCallCount(RealmCall::kHealth),
                  ",\"metadata\":", behaviour_.RealmCallCount(RealmCall::kMetadata),
                  ",\"pipeline\":", behaviour_.RealmCallCount(RealmCall::kPipeline));
  // Centrifugo subscriptions that asked to recover missed publications,
  // those that got all of them (recovered true), and the publications sent
  // back in their replies.
  absl::StrAppend(&out, "},\"recovery\":{\"attempted\":", hub_.recoveries_attempted(),
                  ",\"succeeded\":", hub_.recoveries_succeeded(),
                  ",\"publications\":", hub_.publications_recovered());
  absl::StrAppend(&out, "},\"relayed_runs\":{\"sent\":",
                  runs_relayed_out_.load(std::memory_order_relaxed),
                  ",\"received\":", runs_relayed_in_.load(std::memory_order_relaxed),
                  ",\"started\":", runs_relayed_started_.load(std::memory_order_relaxed), "}}");
  return out;
}

EmulatorServer::EmulatorServer(const EmulatorConfig& config, RealmOptions realm_options,
                               GroupMember member)
    : config_(config),
      member_(std::move(member)),
      behaviour_(BehaviourOf(config), static_cast<uint64_t>(member_.index),
                 static_cast<uint64_t>(member_.count)),
      hub_([] { return NewEpoch(); },
           ChannelHistoryOptions{static_cast<size_t>(config.centrifugo_history_size),
                                 Seconds(config.centrifugo_history_ttl_seconds),
                                 /*start_while_away=*/member_.count == 1}),
      publisher_(this),
      api_(MakeApiOptions(config, &behaviour_), &publisher_),
      centrifugo_(MakeCentrifugoOptions(config), &hub_),
      realm_(std::move(realm_options), MakeWsOptions(config), &behaviour_),
      ws_chat_(MakeWsChatOptions(config), MakeWsOptions(config), &behaviour_),
      openai_(&provider_),
      openai_responses_(&provider_),
      anthropic_(&provider_),
      gemini_(&provider_),
      http_json_(&provider_) {
  provider_.behaviour = &behaviour_;
  provider_.unix_now = [] { return absl::ToUnixSeconds(absl::Now()); };
  provider_.gemini_crlf = config.gemini_sse_crlf;
  http_options_.idle_timeout = Seconds(config.http_idle_timeout_seconds);
  http_options_.max_body_bytes = config.max_http_body_bytes;
  http_options_.max_header_bytes = config.max_http_header_bytes;
  http_options_.max_stream_backlog_bytes = config.max_ws_outbox_bytes;
  api_.RegisterRoutes(&router_);
  openai_.RegisterRoutes(&router_);
  openai_responses_.RegisterRoutes(&router_);
  anthropic_.RegisterRoutes(&router_);
  gemini_.RegisterRoutes(&router_);
  http_json_.RegisterRoutes(&router_);
  router_.AddWebSocket("/connection/websocket", &centrifugo_);
  router_.AddWebSocket("/", realm_.endpoint());
  router_.AddWebSocket("/realm", realm_.endpoint());
  router_.AddWebSocket("/api/ws", ws_chat_.endpoint());
  router_.AddWebSocket("/ws", ws_chat_.endpoint());
  router_.AddHttp(boost::beast::http::verb::get, "/stats",
                  [this](const HttpRequest&, std::string_view) {
                    return JsonResponse(boost::beast::http::status::ok, StatsJson());
                  });
  // /stats in the Prometheus text format, for RunSpec.targetMetrics.
  router_.AddHttp(boost::beast::http::verb::get, "/metrics",
                  [this](const HttpRequest&, std::string_view) {
                    HttpResponse r = JsonResponse(
                        boost::beast::http::status::ok,
                        MetricsText(behaviour_, member_.index,
                                    {accepted_connections_.load(std::memory_order_relaxed),
                                     open_connections()}));
                    r.message.set(boost::beast::http::field::content_type,
                                  "text/plain; version=0.0.4; charset=utf-8");
                    return r;
                  });
  for (int32_t i = 0; i < config.threads; ++i) {
    loops_.push_back(std::make_unique<EventLoop>());
  }
  listeners_[1].tls = true;
}

absl::StatusOr<std::unique_ptr<EmulatorServer>> EmulatorServer::Create(
    const EmulatorConfig& config, GroupMember member) {
  // The sibling links are ours from here on, whatever happens.
  std::vector<int> peer_fds = std::move(member.peer_fds);
  auto close_fds = [&peer_fds] {
    for (int fd : peer_fds) {
      ::close(fd);
    }
  };
  absl::Status valid = Validate(config);
  if (valid.ok() && (member.count < 1 || member.index < 0 || member.index >= member.count ||
                     peer_fds.size() != static_cast<size_t>(member.count - 1))) {
    valid = absl::InvalidArgumentError(
        absl::StrCat("group: process ", member.index, " of ", member.count, " with ",
                     peer_fds.size(), " sibling links"));
  }
  if (!valid.ok()) {
    close_fds();
    return valid;
  }
  absl::StatusOr<RealmOptions> realm = MakeRealmOptions(config);
  if (!realm.ok()) {
    close_fds();
    return realm.status();
  }
  std::unique_ptr<EmulatorServer> server(
      new EmulatorServer(config, std::move(*realm), std::move(member)));
  if (!peer_fds.empty()) {
    EmulatorServer* raw = server.get();
    server->relay_ = std::make_unique<PeerRelay>(
        server->loops_[0]->context(), peer_fds,
        [raw](RelayedRun&& run) { raw->OnRelayedRun(std::move(run)); });
  }
  if (TlsEnabled(config)) {
    auto context = MakeServerTlsContext(config.tls_cert_file, config.tls_key_file);
    if (!context.ok()) {
      return context.status();
    }
    server->tls_context_ = std::move(*context);
  }
  if (absl::Status s = server->Listen(&server->listeners_[0], config.port); !s.ok()) {
    return s;
  }
  if (server->tls_context_ != nullptr) {
    if (absl::Status s = server->Listen(&server->listeners_[1], config.tls_port); !s.ok()) {
      return s;
    }
  }
  return server;
}

absl::Status EmulatorServer::CheckStartup(const EmulatorConfig& config) {
  if (absl::Status s = Validate(config); !s.ok()) {
    return s;
  }
  if (absl::StatusOr<RealmOptions> realm = MakeRealmOptions(config); !realm.ok()) {
    return realm.status();
  }
  if (absl::StatusOr<net::ip::address> address = ListenAddress(config.host); !address.ok()) {
    return address.status();
  }
  if (TlsEnabled(config)) {
    if (auto context = MakeServerTlsContext(config.tls_cert_file, config.tls_key_file);
        !context.ok()) {
      return context.status();
    }
  }
  return absl::OkStatus();
}

absl::Status EmulatorServer::Listen(Listener* listener, uint16_t port) {
  boost::system::error_code ec;
  absl::StatusOr<net::ip::address> address = ListenAddress(config_.host);
  if (!address.ok()) {
    return address.status();
  }
  const std::string host = address->to_string();
  const tcp::endpoint endpoint(*address, port);
  listener->acceptor.emplace(loops_[0]->context());
  listener->retry.emplace(loops_[0]->context());
  auto fail = [&](const char* what) {
    return absl::UnavailableError(
        absl::StrCat("cannot ", what, " ", host, ":", port, ": ", ec.message()));
  };
  if (listener->acceptor->open(endpoint.protocol(), ec); ec) {
    return fail("open a socket for");
  }
  if (listener->acceptor->set_option(net::socket_base::reuse_address(true), ec); ec) {
    return fail("set SO_REUSEADDR on");
  }
  if (member_.count > 1) {
    if (listener->acceptor->set_option(ReusePort(true), ec); ec) {
      return fail("set SO_REUSEPORT on");
    }
  }
  if (listener->acceptor->bind(endpoint, ec); ec) {
    return fail("bind");
  }
  if (listener->acceptor->listen(net::socket_base::max_listen_connections, ec); ec) {
    return fail("listen on");
  }
  listener->port = listener->acceptor->local_endpoint(ec).port();
  return absl::OkStatus();
}

EmulatorServer::~EmulatorServer() { Shutdown(absl::ZeroDuration()); }

void EmulatorServer::Start() {
  if (started_.exchange(true)) {
    return;
  }
  for (auto& loop : loops_) {
    loop->Start();
  }
  if (relay_ != nullptr) {
    relay_->Start();
  }
  net::post(loops_[0]->context(), [this] {
    for (Listener& l : listeners_) {
      if (l.acceptor.has_value()) {
        DoAccept(&l);
      }
    }
  });
}

void EmulatorServer::DoAccept(Listener* listener) {
  EventLoop& loop = *loops_[listener->next_loop];
  listener->next_loop = (listener->next_loop + 1) % loops_.size();
  // The new socket is bound to its loop's io_context from the start.
  listener->acceptor->async_accept(
      net::any_io_executor(loop.context().get_executor()),
      boost::beast::bind_front_handler(&EmulatorServer::OnAccept, this, listener, &loop));
}

void EmulatorServer::WarnRateLimited(const char* message, const std::string& detail) {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  int64_t last = last_warning_unix_.load(std::memory_order_relaxed);
  if (now - last >= 10 && last_warning_unix_.compare_exchange_strong(last, now)) {
    LLMLOAD_LOG(kWarn, message).Kv("detail", detail).Kv("open_connections", open_connections());
  }
}

void EmulatorServer::OnAccept(Listener* listener, EventLoop* loop, boost::system::error_code ec,
                              tcp::socket socket) {
  if (stopped_.load() || ec == net::error::operation_aborted) {
    return;
  }
  if (ec) {
    if (ec == net::error::no_descriptors || ec.value() == ENFILE || ec == net::error::no_memory ||
        ec == net::error::no_buffer_space) {
      // Out of file descriptors: back off instead of spinning.
      WarnRateLimited("Accept failed; retrying shortly.", ec.message());
      listener->retry->expires_after(std::chrono::milliseconds(100));
      listener->retry->async_wait([this, listener](boost::system::error_code wait_ec) {
        if (!wait_ec && !stopped_.load()) {
          DoAccept(listener);
        }
      });
      return;
    }
    LLMLOAD_LOG(kDebug, "Accept failed.").Kv("error", ec.message());
    return DoAccept(listener);
  }
  const bool over_limit = open_connections() >= config_.max_connections;
  if (over_limit) {
    WarnRateLimited("Connection limit reached; answering 503.",
                    absl::StrCat("max_connections=", config_.max_connections));
  }
  accepted_connections_.fetch_add(1, std::memory_order_relaxed);
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // tokens are small; do not batch them
  ServerStream stream = listener->tls ? ServerStream(std::move(socket), *tls_context_)
                                      : ServerStream(std::move(socket));
  auto session = std::make_shared<HttpSession>(std::move(stream), http_options_, router_,
                                               ConnectionGuard(&open_connections_), *loop,
                                               over_limit);
  net::post(loop->context(), [session = std::move(session)] { session->Start(); });
  DoAccept(listener);
}

void EmulatorServer::Shutdown(absl::Duration grace) {
  if (stopped_.exchange(true)) {
    return;
  }
  if (started_.load()) {
    net::post(loops_[0]->context(), [this] {
      boost::system::error_code ignored;
      for (Listener& l : listeners_) {
        if (l.acceptor.has_value()) {
          l.acceptor->close(ignored);
          l.retry->cancel();
        }
      }
    });
    if (relay_ != nullptr) {
      relay_->Close();
    }
    for (auto& loop : loops_) {
      EventLoop* l = loop.get();
      net::post(l->context(), [l] { l->ShutdownAll(); });
    }
    const absl::Time deadline = absl::Now() + grace;
    while (open_connections() > 0 && absl::Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  for (auto& loop : loops_) {
    loop->StopAndJoin();
  }
}

}  // namespace llmload::emulator
