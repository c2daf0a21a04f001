// The CENTRIFUGO_EMULATOR driver against a scripted target on loopback that
// speaks the emulator's REST API and the Centrifugo JSON protocol as
// shared/protocols/llm-emulator-api.md and centrifugo.md describe them: the
// set-up, the token stream, and every way a target can fail the session
// (a refused upgrade, a rejected connect, a disconnect push, a malformed
// frame, a close mid-answer, a close the target never answers).

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/worker/shard.h"
#include "tests/testing/mono_clock.h"
#include "tests/unit/worker/run_shard.h"
#include "tests/unit/worker/ws_peer.h"

namespace llmload::worker {
namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;

using Ws = TestWs;

// The emulator's REST calls and its WebSocket on one port. Each accepted
// connection gets a thread: HTTP requests are answered in a keep-alive loop
// (session create, run, delete), an upgrade at /connection/websocket hands
// the connection to the script. A script that wants to stream waits for the
// next /api/run of its session with NextRun().
class FakeCentrifugo {
 public:
  using Script = std::function<void(WsPeer& peer, FakeCentrifugo& target)>;
  // `refuse_upgrade`: answer every upgrade with this status instead.
  explicit FakeCentrifugo(Script script, int refuse_upgrade = 0)
      : script_(std::move(script)),
        refuse_upgrade_(refuse_upgrade),
        acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeCentrifugo() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    {
      net::io_context ioc;
      tcp::socket poke(ioc);
      boost::system::error_code ec;
      poke.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)}, ec);
    }
    thread_.join();
    std::vector<std::thread> conns;
    {
      std::lock_guard<std::mutex> lock(mu_);
      conns.swap(conns_);
    }
    for (auto& t : conns) {
      t.join();
    }
  }

  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }
  int websockets() const { return websockets_.load(); }
  int creates() const { return creates_.load(); }
  std::vector<std::string> deleted() {
    std::lock_guard<std::mutex> lock(mu_);
    return deleted_;
  }
  std::vector<std::string> connect_commands() {
    std::lock_guard<std::mutex> lock(mu_);
    return connect_commands_;
  }
  std::vector<std::string> upgrade_targets() {
    std::lock_guard<std::mutex> lock(mu_);
    return upgrade_targets_;
  }
  void RecordConnect(const std::string& command) {
    std::lock_guard<std::mutex> lock(mu_);
    connect_commands_.push_back(command);
  }

  // The body of the next /api/run for emulator session `session_id` (as
  // create answered it); empty when the target is stopping or none came
  // within 10 s.
  std::string NextRun(const std::string& session_id) {
    const std::string key = absl::StrCat(R"("session_id":")", session_id, R"(")");
    std::unique_lock<std::mutex> lock(mu_);
    std::string body;
    cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      for (auto it = runs_.begin(); it != runs_.end(); ++it) {
        if (it->find(key) != std::string::npos) {
          body = std::move(*it);
          runs_.erase(it);
          return true;
        }
      }
      return stopping_;
    });
    return body;
  }

 private:
  void Loop() {
    for (;;) {
      tcp::socket s(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      std::lock_guard<std::mutex> lock(mu_);
      if (ec || stopping_) {
        return;
      }
      conns_.emplace_back([this, sock = std::move(s)]() mutable { Serve(std::move(sock)); });
    }
  }

  void Serve(tcp::socket sock) {
    beast::flat_buffer buf;
    for (;;) {
      http::request<http::string_body> req;
      boost::system::error_code ec;
      http::read(sock, buf, req, ec);
      if (ec) {
        return;
      }
      if (websocket::is_upgrade(req)) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          upgrade_targets_.emplace_back(req.target());
        }
        if (refuse_upgrade_ != 0) {
          http::response<http::string_body> res{static_cast<http::status>(refuse_upgrade_), 11};
          res.body() = "no";
          res.prepare_payload();
          http::write(sock, res, ec);
          return;
        }
        Ws ws(std::move(sock));
        ws.accept(req, ec);
        if (ec) {
          return;
        }
        WsPeer peer{ws, websockets_++};
        script_(peer, *this);
        ws.close(websocket::close_code::normal, ec);
        return;
      }
      http::response<http::string_body> res{http::status::ok, 11};
      res.set(http::field::content_type, "application/json");
      const std::string target(req.target());
      if (req.method() == http::verb::post && target == "/api/sessions/create") {
        const int n = creates_++;
        res.body() = absl::StrCat(R"({"session_id":"s)", n, R"(","token":"jwt)", n, R"("})");
      } else if (req.method() == http::verb::post && target == "/api/run") {
        {
          std::lock_guard<std::mutex> lock(mu_);
          runs_.push_back(req.body());
        }
        cv_.notify_all();
        res.body() = R"({"status":"started"})";
      } else if (req.method() == http::verb::delete_ && target.rfind("/api/sessions/", 0) == 0) {
        std::lock_guard<std::mutex> lock(mu_);
        deleted_.push_back(target.substr(14));
        res.body() = "{}";
      } else {
        res.result(http::status::not_found);
      }
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(sock, res, ec);
      if (ec || !req.keep_alive()) {
        return;
      }
    }
  }

  Script script_;
  const int refuse_upgrade_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::thread> conns_;
  std::deque<std::string> runs_;
  std::vector<std::string> deleted_;
  std::vector<std::string> connect_commands_;
  std::vector<std::string> upgrade_targets_;
  std::atomic<int> websockets_{0};
  std::atomic<int> creates_{0};
};

constexpr const char* kConnectReply =
    R"({"id":1,"connect":{"client":"c1","version":"6.5.0","ping":25,"pong":true}})";

std::string Publication(const std::string& data) {
  return absl::StrCat(R"({"push":{"channel":"session:x","pub":{"data":)", data, "}}}");
}

// Reads the connect command and answers it; returns the emulator session
// its token belongs to ("jwtN" was created with "sN").
std::string Connect(WsPeer& p, FakeCentrifugo& target) {
  const std::string connect = p.Recv();
  target.RecordConnect(connect);
  const size_t at = connect.find("\"token\":\"jwt");
  const std::string session =
      at == std::string::npos ? "?"
                              : "s" + connect.substr(at + 12, connect.find('"', at + 12) - at - 12);
  p.Send(kConnectReply);
  return session;
}

// Answers the connect command, then streams `tokens` tokens and the done
// publication for each of the session's `runs` runs, then waits for the
// client's close.
void Serve(WsPeer& p, FakeCentrifugo& target, int runs, int tokens) {
  const std::string session = Connect(p, target);
  for (int r = 0; r < runs; ++r) {
    if (target.NextRun(session).empty()) {
      return;
    }
    for (int i = 0; i < tokens; ++i) {
      p.Send(Publication(absl::StrCat(R"({"token":"w)", i, R"( "})")));
    }
    p.Send(Publication(R"({"done":true})"));
  }
  p.Recv();  // the close frame (answered by the stream)
}

metrics::MetricSet RunShard(const std::string& url, int clients, int cycles,
                            const std::function<void(v1::RunSpec*)>& tweak = nullptr) {
  v1::ShardAssignment a;
  a.set_run_id("r");
  a.set_client_count(clients);
  a.set_max_concurrent(clients);
  v1::RunSpec* spec = a.mutable_spec();
  spec->mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
  spec->mutable_target()->set_url(url);
  spec->mutable_target()->mutable_reconnect_backoff()->set_nanos(20 * 1000 * 1000);
  spec->mutable_load()->mutable_closed()->set_clients(clients);
  spec->mutable_load()->mutable_closed()->set_cycles_per_client(cycles);
  spec->mutable_emulation()->set_length_words(3);
  if (tweak) {
    tweak(spec);
  }
  return RunToEnd(a);
}

TEST(CentrifugoSessionTest, SetUpTokensAndTeardownAreExact) {
  FakeCentrifugo target([](WsPeer& p, FakeCentrifugo& t) { Serve(p, t, 3, 4); });
  const metrics::MetricSet m = RunShard(target.url(), 2, 3);
  EXPECT_EQ(m.Get(v1::SESSIONS_OPENED), 2u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 6u);
  EXPECT_EQ(m.Get(v1::TOKENS), 24u);
  EXPECT_EQ(m.Hist(v1::TTFT).Count(), 6u);
  EXPECT_EQ(m.Hist(v1::ITL).Count(), 18u);
  EXPECT_EQ(m.Hist(v1::REQUEST).Count(), 6u);
  EXPECT_EQ(m.Hist(v1::CONNECT).Count(), 2u);
  EXPECT_EQ(m.Hist(v1::SESSION_SETUP).Count(), 2u);
  EXPECT_EQ(m.Get(v1::RECONNECTS), 0u);
  EXPECT_EQ(target.websockets(), 2);
  // The connect command carries the JWT the create call returned, on the
  // emulator's WebSocket path; both sessions are deleted at the end.
  std::vector<std::string> commands = target.connect_commands();
  std::sort(commands.begin(), commands.end());
  ASSERT_EQ(commands.size(), 2u);
  EXPECT_NE(commands[0].find(R"("token":"jwt0")"), std::string::npos) << commands[0];
  EXPECT_NE(commands[1].find(R"("token":"jwt1")"), std::string::npos) << commands[1];
  EXPECT_EQ(target.upgrade_targets(),
            (std::vector<std::string>{"/connection/websocket", "/connection/websocket"}));
  std::vector<std::string> deleted = target.deleted();
  std::sort(deleted.begin(), deleted.end());
  EXPECT_EQ(deleted, (std::vector<std::string>{"s0", "s1"}));
}

TEST(CentrifugoSessionTest, PingsAreAnsweredWhenTheConnectReplyAsksForPongs) {
  std::atomic<bool> pong{false};
  FakeCentrifugo target([&](WsPeer& p, FakeCentrifugo& t) {
    const std::string session = Connect(p, t);
    p.Send("{}");
    pong = p.Recv() == "{}";
    if (t.NextRun(session).empty()) {
      return;
    }
    p.Send(Publication(R"({"token":"a"})") + "\n" + Publication(R"({"token":"b"})"));
    p.Send(Publication(R"({"done":true})"));
    p.Recv();
  });
  const metrics::MetricSet m = RunShard(target.url(), 1, 1);
  EXPECT_TRUE(pong);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 1u);
  EXPECT_EQ(m.Get(v1::TOKENS), 2u);  // two publications in one frame
}

TEST(CentrifugoSessionTest, ARefusedUpgradeFailsTheSetUpByItsStatus) {
  FakeCentrifugo target([](WsPeer&, FakeCentrifugo&) {},
                        /*refuse_upgrade=*/503);
  const metrics::MetricSet m = RunShard(target.url(), 2, 1);
  EXPECT_EQ(m.Get(v1::HTTP_5XX), 2u);
  EXPECT_EQ(m.Get(v1::SESSIONS_FAILED), 2u);
  EXPECT_EQ(m.Get(v1::SESSIONS_OPENED), 0u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 0u);
  // Each emulator session created for the failed set-up is deleted.
  EXPECT_EQ(target.deleted().size(), 2u);
}

TEST(CentrifugoSessionTest, ARejectedConnectFailsTheSetUp) {
  FakeCentrifugo target([](WsPeer& p, FakeCentrifugo&) {
    p.Recv();
    p.Send(R"({"id":1,"error":{"code":109,"message":"token expired"}})");
    p.Recv();
  });
  const metrics::MetricSet m = RunShard(target.url(), 1, 2);
  EXPECT_EQ(m.Get(v1::CONNECT_FAILED), 1u);
  EXPECT_EQ(m.Get(v1::SESSIONS_FAILED), 1u);
  EXPECT_EQ(m.Get(v1::SESSIONS_OPENED), 0u);
  EXPECT_EQ(target.deleted(), (std::vector<std::string>{"s0"}));
}

// After set-up, a lost connection fails the request in flight (its tokens
// are not counted) and the session comes back on a new emulator session for
// its remaining requests.
TEST(CentrifugoSessionTest, ADisconnectPushOrAMalformedFrameFailsTheRequestAndReconnects) {
  const std::vector<std::pair<std::string, v1::Counter>> cases = {
      {R"({"push":{"disconnect":{"code":3001,"reason":"shutdown"}}})", v1::DISCONNECTED},
      {"{not json", v1::PROTOCOL_ERROR},
  };
  for (const auto& [bad, counter] : cases) {
    SCOPED_TRACE(bad);
    FakeCentrifugo target([&, bad = bad](WsPeer& p, FakeCentrifugo& t) {
      if (p.index > 0) {
        return Serve(p, t, 2, 2);
      }
      const std::string session = Connect(p, t);
      if (t.NextRun(session).empty()) {
        return;
      }
      p.Send(Publication(R"({"token":"a"})"));
      p.Send(bad);
      p.Recv();  // until the client drops the connection
    });
    const metrics::MetricSet m = RunShard(target.url(), 1, 3);
    EXPECT_EQ(m.Get(counter), 1u);
    EXPECT_EQ(m.Get(v1::RECONNECTS), 1u);
    EXPECT_EQ(m.Get(v1::REQUESTS_OK), 2u);
    EXPECT_EQ(m.Get(v1::SESSIONS_OPENED),
              1u);  // a reconnection is not a new session
    EXPECT_EQ(m.Get(v1::TOKENS), 2u * 2u);
    EXPECT_EQ(target.websockets(), 2);
    EXPECT_EQ(target.creates(), 2);
    std::vector<std::string> deleted = target.deleted();
    std::sort(deleted.begin(), deleted.end());
    EXPECT_EQ(deleted, (std::vector<std::string>{"s0", "s1"}));
  }
}

TEST(CentrifugoSessionTest, AConnectionClosedMidAnswerIsADisconnection) {
  FakeCentrifugo target([](WsPeer& p, FakeCentrifugo& t) {
    if (p.index > 0) {
      return Serve(p, t, 1, 3);
    }
    const std::string session = Connect(p, t);
    if (t.NextRun(session).empty()) {
      return;
    }
    p.Send(Publication(R"({"token":"a"})"));
    // Returning starts the close handshake: the connection ends mid-answer.
  });
  const metrics::MetricSet m = RunShard(target.url(), 1, 2);
  EXPECT_EQ(m.Get(v1::DISCONNECTED), 1u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 1u);
  EXPECT_EQ(m.Get(v1::RECONNECTS), 1u);
  EXPECT_EQ(m.Get(v1::TOKENS), 3u);
}

// A target that never answers the client's close: the session still ends,
// after the close grace, and its emulator session is deleted.
TEST(CentrifugoSessionTest, AnUnansweredCloseEndsTheSessionAfterTheGrace) {
  std::atomic<bool> release{false};
  FakeCentrifugo target([&](WsPeer& p, FakeCentrifugo& t) {
    const std::string session = Connect(p, t);
    if (t.NextRun(session).empty()) {
      return;
    }
    p.Send(Publication(R"({"token":"a"})"));
    p.Send(Publication(R"({"done":true})"));
    // Read nothing more: the client's close frame waits unanswered.
    const absl::Time until = testing_util::MonoNow() + absl::Seconds(10);
    while (!release && testing_util::MonoNow() < until) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  const absl::Time start = testing_util::MonoNow();
  const metrics::MetricSet m = RunShard(target.url(), 1, 1);
  const absl::Duration took = testing_util::MonoNow() - start;
  release = true;
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 1u);
  EXPECT_GE(took, absl::Milliseconds(1900));  // the 2 s grace
  EXPECT_LT(took, absl::Seconds(10));
  EXPECT_EQ(target.deleted(), (std::vector<std::string>{"s0"}));
}

// Set-up holds one of the loop's connection slots: far more sessions than
// slots still all open, and every one completes its requests.
TEST(CentrifugoSessionTest, MoreSessionsThanConnectionSlotsAllOpen) {
  constexpr int kClients = LoopShard::kMaxConnecting + 40;
  FakeCentrifugo target([](WsPeer& p, FakeCentrifugo& t) { Serve(p, t, 1, 1); });
  const metrics::MetricSet m = RunShard(target.url(), kClients, 1);
  EXPECT_EQ(m.Get(v1::SESSIONS_OPENED), static_cast<uint64_t>(kClients));
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), static_cast<uint64_t>(kClients));
  EXPECT_EQ(m.Get(v1::TOKENS), static_cast<uint64_t>(kClients));
}


// RunSpec.reconnect_storm: at its moment the session drops its WebSocket
// mid-answer without a close handshake, comes back after reconnect_after
// with a connect that asks to recover from the last offset it saw, and the
// request in flight completes: recovered publications count as tokens (and
// publications_recovered), a repeat is ignored, an offset never received
// is missed, and the burst leaves no inter-token samples.
TEST(CentrifugoSessionTest, AStormDropsTheConnectionAndRecoveryCompletesTheRequest) {
  std::atomic<bool> dropped_without_close{false};
  FakeCentrifugo target([&](WsPeer& p, FakeCentrifugo& t) {
    auto pub = [](int offset, const std::string& data) {
      return absl::StrCat(R"({"push":{"channel":"session:s0","pub":{"data":)", data,
                          R"(,"offset":)", offset, "}}}");
    };
    if (p.index == 0) {
      const std::string connect = p.Recv();
      t.RecordConnect(connect);
      p.Send(R"({"id":1,"connect":{"client":"c1","subs":{"session:s0":{"recoverable":true,)"
             R"("epoch":"E","positioned":true}},"ping":25,"pong":true}})");
      if (t.NextRun("s0").empty()) {
        return;
      }
      p.Send(pub(1, R"({"token":"a"})"));
      p.Send(pub(2, R"({"token":"b"})"));
      // The client goes away without a close frame: the read fails.
      beast::flat_buffer b;
      boost::system::error_code ec;
      p.ws.read(b, ec);
      dropped_without_close = ec && ec != websocket::error::closed;
      return;
    }
    const std::string connect = p.Recv();
    t.RecordConnect(connect);
    // Offsets 3 and 4 recovered, 4 again live, 5 lost, then 6 and done.
    p.Send(R"({"id":1,"connect":{"client":"c2","subs":{"session:s0":{"recoverable":true,)"
           R"("epoch":"E","offset":4,"positioned":true,"recovered":true,"was_recovering":true,)"
           R"("publications":[{"data":{"token":"c"},"offset":3},{"data":{"token":"d"},)"
           R"("offset":4}]}},"ping":25,"pong":true}})");
    p.Send(pub(4, R"({"token":"d"})"));
    p.Send(pub(6, R"({"token":"f"})"));
    p.Send(pub(7, R"({"done":true})"));
    p.Recv();  // the close at the end
  });
  const metrics::MetricSet m = RunShard(target.url(), 1, 1, [](v1::RunSpec* spec) {
    v1::ReconnectStorm* storm = spec->mutable_reconnect_storm();
    storm->set_share(1);
    storm->mutable_at()->set_nanos(200 * 1000 * 1000);
    storm->mutable_reconnect_after()->set_nanos(50 * 1000 * 1000);
  });
  EXPECT_TRUE(dropped_without_close);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 1u);
  EXPECT_EQ(m.Get(v1::TOKENS), 5u);  // a b | c d recovered | f
  EXPECT_EQ(m.Get(v1::PUBLICATIONS_RECOVERED), 2u);
  EXPECT_EQ(m.Get(v1::PUBLICATIONS_MISSED), 1u);
  EXPECT_EQ(m.Get(v1::RECONNECTS), 1u);
  EXPECT_EQ(m.Hist(v1::TIME_TO_RECONNECT).Count(), 1u);
  EXPECT_GE(m.Hist(v1::TIME_TO_RECONNECT).Min(), 50000u);  // away 50 ms at least
  EXPECT_EQ(m.Hist(v1::ITL).Count(), 1u);  // a -> b only
  EXPECT_EQ(m.Hist(v1::TTFT).Count(), 1u);
  EXPECT_EQ(m.Hist(v1::E2E).Count(), 1u);
  EXPECT_EQ(m.Get(v1::SESSIONS_OPENED), 1u);
  EXPECT_EQ(m.Get(v1::DISCONNECTED), 0u);
  EXPECT_EQ(target.creates(), 1);  // the same emulator session throughout
  const std::vector<std::string> commands = target.connect_commands();
  ASSERT_EQ(commands.size(), 2u);
  EXPECT_EQ(commands[0], R"({"connect":{"token":"jwt0","name":"js"},"id":1})");
  EXPECT_EQ(commands[1], R"({"connect":{"token":"jwt0","name":"js","subs":{"session:s0":)"
                         R"({"recover":true,"offset":2,"epoch":"E"}}},"id":1})");
}

// A session the storm catches between requests (here in its think time)
// drops and reconnects too, with nothing to recover, and sends its next
// request on the new connection.
TEST(CentrifugoSessionTest, AStormCatchesASessionBetweenRequests) {
  FakeCentrifugo target([&](WsPeer& p, FakeCentrifugo& t) {
    const std::string connect = p.Recv();
    t.RecordConnect(connect);
    p.Send(R"({"id":1,"connect":{"client":"c","subs":{"session:s0":{"recoverable":true,)"
           R"("epoch":"E",)" +
           std::string(p.index == 0 ? ""
                                    : R"("offset":2,"recovered":true,"was_recovering":true,)") +
           R"("positioned":true}},"ping":25,"pong":true}})");
    if (t.NextRun("s0").empty()) {
      return;
    }
    const int base = p.index == 0 ? 0 : 2;
    p.Send(absl::StrCat(R"({"push":{"channel":"session:s0","pub":{"data":{"token":"a"},)",
                        R"("offset":)", base + 1, "}}}"));
    p.Send(absl::StrCat(R"({"push":{"channel":"session:s0","pub":{"data":{"done":true},)",
                        R"("offset":)", base + 2, "}}}"));
    p.Recv();  // the drop (first connection) or the close at the end
  });
  // Request 1 at once, then 400 ms of think time; the storm strikes at
  // 200 ms and the session is back at 250 ms, before request 2.
  const metrics::MetricSet m = RunShard(target.url(), 1, 2, [](v1::RunSpec* spec) {
    spec->mutable_load()->mutable_closed()->mutable_think_time()->mutable_min()->set_nanos(
        400 * 1000 * 1000);
    v1::ReconnectStorm* storm = spec->mutable_reconnect_storm();
    storm->set_share(1);
    storm->mutable_at()->set_nanos(200 * 1000 * 1000);
    storm->mutable_reconnect_after()->set_nanos(50 * 1000 * 1000);
  });
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 2u);
  EXPECT_EQ(m.Get(v1::TOKENS), 2u);
  EXPECT_EQ(m.Get(v1::RECONNECTS), 1u);
  EXPECT_EQ(m.Hist(v1::TIME_TO_RECONNECT).Count(), 1u);
  EXPECT_EQ(m.Get(v1::PUBLICATIONS_RECOVERED), 0u);
  EXPECT_EQ(m.Get(v1::PUBLICATIONS_MISSED), 0u);
  EXPECT_EQ(target.creates(), 1);
  const std::vector<std::string> commands = target.connect_commands();
  ASSERT_EQ(commands.size(), 2u);
  EXPECT_EQ(commands[1], R"({"connect":{"token":"jwt0","name":"js","subs":{"session:s0":)"
                         R"({"recover":true,"offset":2,"epoch":"E"}}},"id":1})");
}

// A storm that strikes before the session is set up leaves it alone: the
// set-up completes with its token, and nothing drops.
TEST(CentrifugoSessionTest, AStormBeforeTheSetUpLeavesTheSessionAlone) {
  FakeCentrifugo target([](WsPeer& p, FakeCentrifugo& t) { Serve(p, t, 1, 2); });
  const metrics::MetricSet m = RunShard(target.url(), 1, 1, [](v1::RunSpec* spec) {
    spec->mutable_reconnect_storm()->set_share(1);
    spec->mutable_reconnect_storm()->mutable_at();  // at the load's start
  });
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 1u);
  EXPECT_EQ(m.Get(v1::RECONNECTS), 0u);
  EXPECT_EQ(m.Hist(v1::TIME_TO_RECONNECT).Count(), 0u);
  EXPECT_EQ(target.connect_commands(),
            (std::vector<std::string>{R"({"connect":{"token":"jwt0","name":"js"},"id":1})"}));
}

}  // namespace
}  // namespace llmload::worker
