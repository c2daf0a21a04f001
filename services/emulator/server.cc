#include "services/emulator/server.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "boost/asio/ip/address.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/socket_base.hpp"
#include "boost/beast/core/bind_handler.hpp"
#include "lib/common/log.h"
#include "services/emulator/ids.h"

namespace llmload::emulator {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

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

LlmEmulatorApiOptions MakeApiOptions(const EmulatorConfig& c) {
  LlmEmulatorApiOptions o;
  o.jwt_secret = c.jwt_secret;
  o.token_ttl_seconds = c.token_ttl_seconds;
  o.default_length_words = c.length_words;
  o.default_token_delay_seconds = c.token_delay_seconds;
  o.seed = c.seed;
  o.now = [] { return absl::Now(); };
  o.new_session_id = [] { return NewUuid4(); };
  return o;
}

}  // namespace

bool EmulatorServer::SessionRunPublisher::StartRun(std::string_view session_id,
                                                   std::vector<std::string> tokens,
                                                   std::chrono::nanoseconds token_delay) {
  std::string channel = "session:";
  channel.append(session_id);
  return hub_->StartTokenStream(channel, std::move(tokens), token_delay);
}

EmulatorServer::EmulatorServer(const EmulatorConfig& config)
    : config_(config),
      hub_([] { return NewEpoch(); }),
      publisher_(&hub_),
      api_(MakeApiOptions(config), &publisher_),
      centrifugo_(MakeCentrifugoOptions(config), &hub_) {
  http_options_.idle_timeout = Seconds(config.http_idle_timeout_seconds);
  http_options_.max_body_bytes = config.max_http_body_bytes;
  http_options_.max_header_bytes = config.max_http_header_bytes;
  api_.RegisterRoutes(&router_);
  router_.AddWebSocket("/connection/websocket", &centrifugo_);
  for (int32_t i = 0; i < config.threads; ++i) {
    loops_.push_back(std::make_unique<EventLoop>());
  }
}

absl::StatusOr<std::unique_ptr<EmulatorServer>> EmulatorServer::Create(
    const EmulatorConfig& config) {
  if (absl::Status s = Validate(config); !s.ok()) {
    return s;
  }
  std::unique_ptr<EmulatorServer> server(new EmulatorServer(config));
  if (absl::Status s = server->Listen(); !s.ok()) {
    return s;
  }
  return server;
}

absl::Status EmulatorServer::Listen() {
  boost::system::error_code ec;
  const std::string host = config_.host == "localhost" ? "127.0.0.1" : config_.host;
  const net::ip::address address = net::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("host: '", config_.host, "' is not an IP address"));
  }
  const tcp::endpoint endpoint(address, config_.port);
  acceptor_.emplace(loops_[0]->context());
  accept_retry_.emplace(loops_[0]->context());
  auto fail = [&](const char* what) {
    return absl::UnavailableError(absl::StrCat("cannot ", what, " ", host, ":", config_.port,
                                               ": ", ec.message()));
  };
  if (acceptor_->open(endpoint.protocol(), ec); ec) {
    return fail("open a socket for");
  }
  if (acceptor_->set_option(net::socket_base::reuse_address(true), ec); ec) {
    return fail("set SO_REUSEADDR on");
  }
  if (acceptor_->bind(endpoint, ec); ec) {
    return fail("bind");
  }
  if (acceptor_->listen(net::socket_base::max_listen_connections, ec); ec) {
    return fail("listen on");
  }
  port_ = acceptor_->local_endpoint(ec).port();
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
  net::post(loops_[0]->context(), [this] { DoAccept(); });
}

void EmulatorServer::DoAccept() {
  EventLoop& loop = *loops_[next_loop_];
  next_loop_ = (next_loop_ + 1) % loops_.size();
  // The new socket is bound to its loop's io_context from the start.
  acceptor_->async_accept(net::any_io_executor(loop.context().get_executor()),
                          boost::beast::bind_front_handler(&EmulatorServer::OnAccept, this, &loop));
}

void EmulatorServer::WarnRateLimited(const char* message, const std::string& detail) {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  int64_t last = last_warning_unix_.load(std::memory_order_relaxed);
  if (now - last >= 10 && last_warning_unix_.compare_exchange_strong(last, now)) {
    LLMLOAD_LOG(kWarn, message).Kv("detail", detail).Kv("open_connections", open_connections());
  }
}

void EmulatorServer::OnAccept(EventLoop* loop, boost::system::error_code ec, tcp::socket socket) {
  if (stopped_.load() || ec == net::error::operation_aborted) {
    return;
  }
  if (ec) {
    if (ec == net::error::no_descriptors || ec.value() == ENFILE || ec == net::error::no_memory ||
        ec == net::error::no_buffer_space) {
      // Out of file descriptors: back off instead of spinning.
      WarnRateLimited("Accept failed; retrying shortly.", ec.message());
      accept_retry_->expires_after(std::chrono::milliseconds(100));
      accept_retry_->async_wait([this](boost::system::error_code wait_ec) {
        if (!wait_ec && !stopped_.load()) {
          DoAccept();
        }
      });
      return;
    }
    LLMLOAD_LOG(kDebug, "Accept failed.").Kv("error", ec.message());
    return DoAccept();
  }
  if (open_connections() >= config_.max_connections) {
    WarnRateLimited("Connection limit reached; refusing connections.",
                    absl::StrCat("max_connections=", config_.max_connections));
    boost::system::error_code ignored;
    socket.close(ignored);
    return DoAccept();
  }
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // tokens are small; do not batch them
  auto session = std::make_shared<HttpSession>(std::move(socket), http_options_, router_,
                                               ConnectionGuard(&open_connections_), *loop);
  net::post(loop->context(), [session = std::move(session)] { session->Start(); });
  DoAccept();
}

void EmulatorServer::Shutdown(absl::Duration grace) {
  if (stopped_.exchange(true)) {
    return;
  }
  if (started_.load()) {
    net::post(loops_[0]->context(), [this] {
      boost::system::error_code ignored;
      acceptor_->close(ignored);
      accept_retry_->cancel();
    });
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
