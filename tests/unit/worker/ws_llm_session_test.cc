// The WS_CHAT and REALM driver against scripted WebSocket servers on
// loopback that speak the protocols as shared/protocols describes them.

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

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
using Conn = WsPeer;

class FakeWsServer {
 public:
  using Script = std::function<void(int conn_index, Conn& c)>;
  explicit FakeWsServer(Script script)
      : script_(std::move(script)), acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeWsServer() {
    stopping_ = true;
    {
      net::io_context ioc;
      tcp::socket poke(ioc);
      boost::system::error_code ec;
      poke.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)}, ec);
    }
    thread_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : conns_) {
      t.join();
    }
  }
  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  std::vector<std::string> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  std::vector<std::string> targets() {
    std::lock_guard<std::mutex> lock(mu_);
    return targets_;
  }
  void Record(const std::string& s) {
    std::lock_guard<std::mutex> lock(mu_);
    received_.push_back(s);
  }

 private:
  void Loop() {
    while (true) {
      tcp::socket s(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stopping_) {
        return;
      }
      const int index = connections_++;
      std::lock_guard<std::mutex> lock(mu_);
      conns_.emplace_back([this, index, sock = std::move(s)]() mutable {
        // Read the upgrade request ourselves to record its target.
        beast::flat_buffer buf;
        http::request<http::string_body> upgrade;
        boost::system::error_code ec2;
        http::read(sock, buf, upgrade, ec2);
        if (ec2) {
          return;
        }
        {
          std::lock_guard<std::mutex> target_lock(mu_);
          targets_.emplace_back(upgrade.target());
        }
        Ws ws(std::move(sock));
        ws.accept(upgrade, ec2);
        if (ec2) {
          return;
        }
        Conn c{ws};
        script_(index, c);
        ws.close(websocket::close_code::normal, ec2);
      });
    }
  }

  Script script_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::thread> conns_;
  std::vector<std::string> received_;
  std::vector<std::string> targets_;  // the upgrade requests' targets
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
};

metrics::MetricSet RunShard(v1::Protocol protocol, const std::string& url, int clients, int cycles,
                            const std::function<void(v1::RunSpec*)>& tweak = nullptr) {
  v1::ShardAssignment a;
  a.set_run_id("r");
  a.set_client_count(clients);
  a.set_max_concurrent(clients);
  v1::RunSpec* spec = a.mutable_spec();
  spec->mutable_target()->set_protocol(protocol);
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

// A ws-chat turn as ws-chat.md §4 shows it.
void ChatTurn(Conn& c, const std::string& request, int chunks) {
  const auto id_at = request.find("\"id\":\"");
  const std::string id = request.substr(id_at + 6, request.find('"', id_at + 6) - id_at - 6);
  c.Send(R"({"type":"status","id":"msg_1","data":{"status":"processing","message":"Processing your message..."}})");
  std::string full;
  for (int i = 0; i < chunks; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    c.Send(absl::StrCat(R"({"type":"llm_chunk","id":")", id, R"(","data":{"chunk":"w)", i,
                        R"( ","isComplete":false}})"));
  }
  c.Send(absl::StrCat(R"({"type":"llm_complete","id":")", id, R"(","data":{"fullText":"…"}})"));
}

TEST(WsLlmSessionTest, WsChatTurnsAreCountedExactly) {
  FakeWsServer server([&](int, Conn& c) {
    c.Send(R"({"type":"status","id":"msg_0","data":{"status":"connected","message":"Connected to chat server"}})");
    for (;;) {
      std::string req = c.Recv();
      if (req.empty()) {
        return;
      }
      if (req.find("\"user_message\"") != std::string::npos) {
        ChatTurn(c, req, 3);
      }
    }
  });
  metrics::MetricSet m =
      RunShard(v1::WS_CHAT, absl::StrCat("ws://127.0.0.1:", server.port(), "/api/ws"), 2, 3);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 6u);
  EXPECT_EQ(m.Get(v1::TOKENS), 18u);
  EXPECT_EQ(m.Get(v1::CHUNKS), 18u);
  EXPECT_EQ(m.Get(v1::SESSIONS_OPENED), 2u);
  EXPECT_EQ(m.Hist(v1::TTFT).Count(), 6u);
  EXPECT_EQ(m.Hist(v1::ITL).Count(), 12u);
  EXPECT_EQ(m.Hist(v1::SESSION_SETUP).Count(), 2u);
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(server.targets(), (std::vector<std::string>{"/api/ws", "/api/ws"}));
}

TEST(WsLlmSessionTest, TheUrlQueryReachesTheUpgradeRequest) {
  // Seed 004's chat server refuses a connection without ?projectId=.
  FakeWsServer server([&](int, Conn& c) {
    c.Send(R"({"type":"status","id":"msg_0","data":{"status":"connected","message":"hi"}})");
    for (std::string req; !(req = c.Recv()).empty();) {
      if (req.find("\"user_message\"") != std::string::npos) {
        ChatTurn(c, req, 2);
      }
    }
  });
  metrics::MetricSet m = RunShard(
      v1::WS_CHAT, absl::StrCat("ws://127.0.0.1:", server.port(), "/api/ws?projectId=p7&x=%2F"), 1,
      1);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 1u);
  EXPECT_EQ(server.targets(), (std::vector<std::string>{"/api/ws?projectId=p7&x=%2F"}));
  // The WebSocket URL's own path and query win when wsUrl is given.
  FakeWsServer realm([&](int, Conn&) {});
  RunShard(v1::WS_CHAT, "http://127.0.0.1:1/unused?no=1", 1, 1, [&](v1::RunSpec* s) {
    s->mutable_target()->set_ws_url(
        absl::StrCat("ws://127.0.0.1:", realm.port(), "/chat/ws?projectId=p9"));
    s->mutable_target()->set_reconnect_attempts(-1);
  });
  EXPECT_EQ(realm.targets(), (std::vector<std::string>{"/chat/ws?projectId=p9"}));
}

TEST(WsLlmSessionTest, WsChatAnswersServerPingsAndSendsOptions) {
  std::atomic<bool> pong_ok{false};
  std::atomic<bool> options_ok{false};
  FakeWsServer server([&](int, Conn& c) {
    c.Send(R"({"type":"status","id":"m","data":{"status":"connected"}})");
    const std::string req = c.Recv();
    options_ok = req.find("\"maxTokens\":3") != std::string::npos;
    c.Send(R"({"type":"ping","id":"hb-7"})");
    const std::string pong = c.Recv();
    pong_ok = pong.find("\"pong\"") != std::string::npos && pong.find("hb-7") != std::string::npos;
    ChatTurn(c, req, 2);
    c.Recv();
  });
  metrics::MetricSet m =
      RunShard(v1::WS_CHAT, absl::StrCat("ws://127.0.0.1:", server.port(), "/api/ws"), 1, 1);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 1u);
  EXPECT_TRUE(pong_ok);
  EXPECT_TRUE(options_ok);
}

TEST(WsLlmSessionTest, RealmAuthStreamingAndRateLimit) {
  ::setenv("LLMLOAD_TEST_REALM_KEY", "sk_test_123", 1);
  FakeWsServer server([&](int, Conn& c) {
    c.Send(R"({"message":"Please send authentication message with your API key","type":"auth_required"})");
    const std::string auth = c.Recv();
    server.Record(auth);
    if (auth != R"({"type":"auth","api_key":"sk_test_123"})") {
      c.Send(R"({"error":"Invalid API key","type":"auth_failed"})");
      return;
    }
    c.Send(R"({"tenant_id":"tenant1","type":"auth_success"})");
    c.Send(R"({"status":"connected","tenant_id":"tenant1","version":"0.1.0"})");
    for (int n = 0;; ++n) {
      const std::string call = c.Recv();
      if (call.empty()) {
        return;
      }
      server.Record(call);
      const auto at = call.find("\"id\":\"");
      const std::string id = call.substr(at + 6, call.find('"', at + 6) - at - 6);
      if (n == 1) {
        c.Send(absl::StrCat(R"({"id":")", id,
                            R"(","status":"error","error":{"code":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded. Try again in 0 seconds."}})"));
        continue;
      }
      for (int i = 0; i < 5; ++i) {
        c.Send(absl::StrCat(R"({"id":")", id, R"(","status":"streaming","data":{"index":)", i,
                            R"(,"is_final":)", i == 4 ? "true" : "false", R"(,"text":"w "}})"));
      }
      c.Send(absl::StrCat(R"({"id":")", id,
                          R"(","status":"complete","data":{"status":"complete","tokens_generated":5}})"));
    }
  });
  metrics::MetricSet m = RunShard(
      v1::REALM, absl::StrCat("ws://127.0.0.1:", server.port()), 1, 3, [](v1::RunSpec* s) {
        s->mutable_target()->set_api_key_env("LLMLOAD_TEST_REALM_KEY");
        s->mutable_target()->set_tenant("tenant1");
        s->mutable_target()->set_model("llama");
      });
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 2u);
  EXPECT_EQ(m.Get(v1::RATE_LIMITED), 1u);
  EXPECT_EQ(m.Get(v1::TOKENS), 10u);
  EXPECT_EQ(m.Get(v1::CYCLES), 3u);
  const auto got = server.received();
  ASSERT_GE(got.size(), 2u);
  EXPECT_NE(got[1].find(R"("function":"generate")"), std::string::npos) << got[1];
  EXPECT_NE(got[1].find(R"("tenant_id":"tenant1")"), std::string::npos) << got[1];
  EXPECT_NE(got[1].find(R"("stream":true)"), std::string::npos) << got[1];
}

TEST(WsLlmSessionTest, RealmAuthFailureFailsTheSessionWithoutRetrying) {
  ::setenv("LLMLOAD_TEST_REALM_BAD", "wrong", 1);
  FakeWsServer server([&](int, Conn& c) {
    c.Send(R"({"message":"Please send authentication message with your API key","type":"auth_required"})");
    c.Recv();
    c.Send(R"({"error":"Invalid API key","type":"auth_failed"})");
  });
  metrics::MetricSet m = RunShard(v1::REALM, absl::StrCat("ws://127.0.0.1:", server.port()), 2, 2,
                                  [](v1::RunSpec* s) {
                                    s->mutable_target()->set_api_key_env("LLMLOAD_TEST_REALM_BAD");
                                  });
  EXPECT_EQ(m.Get(v1::SESSIONS_FAILED), 2u);
  EXPECT_EQ(m.Get(v1::HTTP_4XX), 2u);
  EXPECT_EQ(m.Get(v1::RECONNECTS), 0u);
  EXPECT_EQ(server.connections(), 2);
}

TEST(WsLlmSessionTest, DisconnectMidStreamReconnectsAndGoesOn) {
  FakeWsServer server([&](int index, Conn& c) {
    c.Send(R"({"type":"status","id":"m","data":{"status":"connected"}})");
    for (;;) {
      std::string req = c.Recv();
      if (req.empty()) {
        return;
      }
      if (index == 0) {
        c.Send(R"({"type":"llm_chunk","id":"x","data":{"chunk":"a","isComplete":false}})");
        return;  // drop the connection mid-response
      }
      ChatTurn(c, req, 2);
    }
  });
  metrics::MetricSet m =
      RunShard(v1::WS_CHAT, absl::StrCat("ws://127.0.0.1:", server.port(), "/ws"), 1, 3);
  EXPECT_EQ(m.Get(v1::DISCONNECTED), 1u);
  EXPECT_EQ(m.Get(v1::RECONNECTS), 1u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 2u);
  EXPECT_EQ(m.Get(v1::SESSIONS_OPENED), 1u);
  EXPECT_EQ(server.connections(), 2);
}

TEST(WsLlmSessionTest, MalformedFrameIsAProtocolError) {
  FakeWsServer server([&](int index, Conn& c) {
    c.Send(R"({"type":"status","id":"m","data":{"status":"connected"}})");
    for (;;) {
      std::string req = c.Recv();
      if (req.empty()) {
        return;
      }
      if (index == 0) {
        c.Send("{not json");
        c.Recv();
        return;
      }
      ChatTurn(c, req, 1);
    }
  });
  metrics::MetricSet m =
      RunShard(v1::WS_CHAT, absl::StrCat("ws://127.0.0.1:", server.port(), "/api/ws"), 1, 2);
  EXPECT_EQ(m.Get(v1::PROTOCOL_ERROR), 1u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 1u);
}

}  // namespace
}  // namespace llmload::worker
