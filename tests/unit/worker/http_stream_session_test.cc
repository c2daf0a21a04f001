// The HTTP driver against a scripted provider on loopback that replays the
// fixture streams of shared/protocols, event by event, chunked.

#include <atomic>
#include <fstream>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/worker/shard.h"
#include "tests/testing/mono_clock.h"
#include "tests/unit/worker/run_shard.h"

namespace llmload::worker {
namespace {

namespace beast = boost::beast;

std::string ReadFixture(const std::string& name) {
  std::ifstream in(std::string(LLMLOAD_FIXTURES_DIR) + "/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Splits an SSE body into its events (each keeps its blank-line terminator).
std::vector<std::string> Events(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    size_t crlf = body.find("\r\n\r\n", pos);
    size_t stop = std::min(end == std::string::npos ? body.size() : end + 2,
                           crlf == std::string::npos ? body.size() : crlf + 4);
    out.push_back(body.substr(pos, stop - pos));
    pos = stop;
  }
  return out;
}

// What the fake answers to request number n (0-based, over all connections).
struct Reply {
  Reply(int status_code, std::vector<std::string> body_pieces, std::string headers = "",
        bool cut_mid_body = false)
      : status(status_code),
        pieces(std::move(body_pieces)),
        extra_headers(std::move(headers)),
        cut(cut_mid_body) {}
  int status = 200;
  std::vector<std::string> pieces;  // body, sent as chunks 1 ms apart
  std::string extra_headers;
  bool cut = false;  // close the connection mid-body
  std::string interim;       // sent before the response, e.g. a 103 Early Hints
  bool close_after = false;  // close the kept-alive connection after the response
  bool until_close = false;  // no length and no chunks: the body ends with the connection
  int gap_ms = 1;            // between body pieces
};

class FakeProvider {
 public:
  explicit FakeProvider(std::function<Reply(int n, const std::string& target)> script)
      : script_(std::move(script)), acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~FakeProvider() {
    stopping_ = true;
    // A blocking accept() is not woken by close(): connect once to wake it.
    {
      net::io_context ioc;
      tcp::socket poke(ioc);
      boost::system::error_code ec;
      poke.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port())}, ec);
    }
    thread_.join();
    boost::system::error_code ec;
    acceptor_.close(ec);
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : conns_) {
      t.join();
    }
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  std::string last_target() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_target_;
  }
  std::set<std::string> peers() {
    std::lock_guard<std::mutex> lock(mu_);
    return peers_;
  }
  std::string last_body() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_body_;
  }
  // A header of the last request ("" when absent).
  std::string last_header(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = last_headers_.find(name);
    return it == last_headers_.end() ? std::string() : it->second;
  }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      tcp::socket s(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stopping_) {
        return;
      }
      ++connections_;
      std::lock_guard<std::mutex> lock(mu_);
      boost::system::error_code peer_ec;
      const auto peer = s.remote_endpoint(peer_ec);
      if (!peer_ec) {
        peers_.insert(peer.address().to_string());
      }
      conns_.emplace_back([this, sock = std::move(s)]() mutable { Serve(std::move(sock)); });
    }
  }

  void Serve(tcp::socket s) {
    beast::flat_buffer buf;
    for (;;) {
      http::request<http::string_body> req;
      boost::system::error_code ec;
      http::read(s, buf, req, ec);
      if (ec) {
        return;
      }
      const int n = requests_++;
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_target_ = std::string(req.target());
        last_body_ = req.body();
        last_headers_.clear();
        for (const auto& field : req) {
          last_headers_[absl::AsciiStrToLower(std::string(field.name_string()))] =
              std::string(field.value());
        }
      }
      Reply r = script_(n, std::string(req.target()));
      std::string head =
          absl::StrCat(r.interim, "HTTP/1.1 ", r.status, " X\r\n", r.extra_headers);
      if (r.until_close) {
        head += "Content-Type: text/event-stream\r\nConnection: close\r\n\r\n";
        net::write(s, net::buffer(head), ec);
        for (const std::string& p : r.pieces) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          net::write(s, net::buffer(p), ec);
        }
        return;  // the close ends the body
      }
      if (r.status == 200 && r.pieces.size() != 1) {
        head += "Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        net::write(s, net::buffer(head), ec);
        for (const std::string& p : r.pieces) {
          std::this_thread::sleep_for(std::chrono::milliseconds(r.gap_ms));
          std::string chunk = absl::StrCat(absl::Hex(p.size()), "\r\n", p, "\r\n");
          net::write(s, net::buffer(chunk), ec);
          if (r.cut) {
            s.close(ec);
            return;
          }
        }
        net::write(s, net::buffer(std::string("0\r\n\r\n")), ec);
      } else {
        const std::string body = r.pieces.empty() ? std::string() : r.pieces[0];
        head += absl::StrCat("Content-Type: application/json\r\nContent-Length: ", body.size(),
                             "\r\n\r\n", body);
        net::write(s, net::buffer(head), ec);
      }
      if (ec || r.close_after) {
        return;
      }
    }
  }

  std::function<Reply(int, const std::string&)> script_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::thread> conns_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::string last_target_;
  std::string last_body_;
  std::map<std::string, std::string> last_headers_;
  std::set<std::string> peers_;
};

metrics::MetricSet RunShard(v1::Protocol protocol, int port, int clients, int cycles,
                            const std::function<void(v1::Target*)>& tweak = nullptr) {
  v1::ShardAssignment a;
  a.set_run_id("r");
  a.set_client_begin(0);
  a.set_client_count(clients);
  a.set_max_concurrent(clients);
  v1::Target* t = a.mutable_spec()->mutable_target();
  t->set_protocol(protocol);
  t->set_url(absl::StrCat("http://127.0.0.1:", port));
  t->set_model("m");
  t->set_prompt("hello");
  t->mutable_reconnect_backoff()->set_nanos(20 * 1000 * 1000);
  if (tweak) {
    tweak(t);
  }
  a.mutable_spec()->mutable_load()->mutable_closed()->set_clients(clients);
  a.mutable_spec()->mutable_load()->mutable_closed()->set_cycles_per_client(cycles);
  return RunToEnd(a);
}

TEST(HttpStreamSessionTest, OpenAiStreamsAreCountedExactlyAndConnectionsReused) {
  const auto events = Events(ReadFixture("openai-chat-stream.sse"));
  ASSERT_EQ(events.size(), 7u);
  FakeProvider fake([&](int, const std::string&) { return Reply{200, events, "", false}; });
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 2, 3);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 6u);
  EXPECT_EQ(m.Get(v1::TOKENS), 18u);  // usage: 3 completion tokens each
  EXPECT_EQ(m.Get(v1::CHUNKS), 18u);  // "Hello", " world", "!"; the role chunk is not content
  EXPECT_EQ(m.Hist(v1::TTFT).Count(), 6u);
  EXPECT_EQ(m.Hist(v1::E2E).Count(), 6u);
  EXPECT_EQ(m.Hist(v1::CHUNK_GAP).Count(), 12u);
  EXPECT_EQ(m.Hist(v1::ITL).Count(), 12u);
  EXPECT_EQ(m.Hist(v1::TPOT).Count(), 6u);
  EXPECT_EQ(m.Get(v1::SESSIONS_OPENED), 2u);
  EXPECT_EQ(fake.connections(), 2);  // one keep-alive connection per session
  EXPECT_EQ(fake.last_target(), "/v1/chat/completions");
  EXPECT_NE(fake.last_body().find("\"stream\":true"), std::string::npos);
}

TEST(HttpStreamSessionTest, AnthropicUsageMakesItlPerToken) {
  const auto events = Events(ReadFixture("anthropic-messages-stream.sse"));
  FakeProvider fake([&](int, const std::string&) { return Reply{200, events, "", false}; });
  metrics::MetricSet m = RunShard(v1::ANTHROPIC_MESSAGES, fake.port(), 1, 2);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 2u);
  EXPECT_EQ(m.Get(v1::TOKENS), 8u);  // message_delta reports 4 output tokens over 3 chunks
  EXPECT_EQ(m.Get(v1::CHUNKS), 6u);
  EXPECT_EQ(m.Hist(v1::CHUNK_GAP).Count(), 4u);
  // Each gap spread over round(4/3) = 1 token: itl keeps one sample per gap.
  EXPECT_EQ(m.Hist(v1::ITL).Count(), 4u);
  EXPECT_EQ(fake.last_target(), "/v1/messages");
}

TEST(HttpStreamSessionTest, GeminiCrlfStreamEndsWithTheBody) {
  const auto events = Events(ReadFixture("gemini-stream.sse"));
  ASSERT_EQ(events.size(), 3u);
  FakeProvider fake([&](int, const std::string&) { return Reply{200, events, "", false}; });
  metrics::MetricSet m = RunShard(v1::GEMINI, fake.port(), 1, 2);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 2u);
  EXPECT_EQ(m.Get(v1::TOKENS), 6u);
  EXPECT_EQ(fake.last_target(), "/v1beta/models/m:streamGenerateContent?alt=sse");
}

TEST(HttpStreamSessionTest, RateLimitHonoursRetryAfterThenSucceeds) {
  const auto events = Events(ReadFixture("openai-chat-stream.sse"));
  FakeProvider fake([&](int n, const std::string&) {
    if (n == 0) {
      return Reply{429,
                   {R"({"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}})"},
                   "retry-after-ms: 300\r\n",
                   false};
    }
    return Reply{200, events, "", false};
  });
  const absl::Time start = testing_util::MonoNow();
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 1, 2);
  EXPECT_GE(testing_util::MonoNow() - start, absl::Milliseconds(300));
  EXPECT_EQ(m.Get(v1::RATE_LIMITED), 1u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 1u);
  EXPECT_EQ(m.Get(v1::CYCLES), 2u);
  EXPECT_EQ(fake.connections(), 1);  // the 429 body was read; the connection was reused
}

TEST(HttpStreamSessionTest, ErrorStatusesAndInStreamErrorsAreClassified) {
  const auto err = Events(ReadFixture("anthropic-messages-stream-error.sse"));
  FakeProvider fake([&](int n, const std::string&) {
    switch (n) {
      case 0:
        return Reply{500, {R"({"type":"error","error":{"type":"api_error"}})"}, "", false};
      case 1:
        return Reply{400, {R"({"type":"error","error":{"type":"invalid_request_error"}})"}, "", false};
      default:
        return Reply{200, err, "", false};
    }
  });
  metrics::MetricSet m = RunShard(v1::ANTHROPIC_MESSAGES, fake.port(), 1, 3);
  EXPECT_EQ(m.Get(v1::HTTP_5XX), 2u);  // the 500, and the overloaded_error event
  EXPECT_EQ(m.Get(v1::HTTP_4XX), 1u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 0u);
  EXPECT_EQ(m.Get(v1::CYCLES), 3u);
}

TEST(HttpStreamSessionTest, DisconnectMidStreamCountsAndReconnects) {
  const auto events = Events(ReadFixture("openai-chat-stream.sse"));
  FakeProvider fake([&](int n, const std::string&) { return Reply{200, events, "", n == 0}; });
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 1, 3);
  EXPECT_EQ(m.Get(v1::DISCONNECTED), 1u);
  EXPECT_EQ(m.Get(v1::RECONNECTS), 1u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 2u);
  EXPECT_EQ(fake.connections(), 2);
}

TEST(HttpStreamSessionTest, RequestTimeoutBoundsAStreamThatKeepsTrickling) {
  // Tokens every 25 ms for about a second: never silent for long (idle and
  // ttft limits are not reached), but longer than the 300 ms requestTimeout.
  std::vector<std::string> trickle(40, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n");
  FakeProvider fake([&](int, const std::string&) {
    Reply r{200, trickle, "", false};
    r.gap_ms = 25;
    return r;
  });
  const absl::Time start = testing_util::MonoNow();
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 1, 2, [](v1::Target* t) {
    t->mutable_request_timeout()->set_nanos(300 * 1000 * 1000);
    t->mutable_ttft_timeout()->set_seconds(5);
    t->mutable_idle_timeout()->set_seconds(5);
  });
  EXPECT_EQ(m.Get(v1::TIMEOUT), 2u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 0u);
  EXPECT_EQ(m.Get(v1::CYCLES), 2u);
  EXPECT_EQ(m.Get(v1::RECONNECTS), 2u);  // each cut-off connection is replaced at once
  EXPECT_EQ(m.Hist(v1::TTFT).Count(), 2u);  // both streams had begun
  EXPECT_LT(testing_util::MonoNow() - start, absl::Milliseconds(1500));
}

TEST(HttpStreamSessionTest, MalformedStreamIsAProtocolError) {
  FakeProvider fake([&](int, const std::string&) {
    return Reply{200, {"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", "data: {oops\n\n"},
                 "", false};
  });
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 1, 2);
  EXPECT_EQ(m.Get(v1::PROTOCOL_ERROR), 2u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 0u);
}

TEST(HttpStreamSessionTest, HttpJsonIsNonStreaming) {
  FakeProvider fake([&](int, const std::string&) {
    return Reply{200, {R"({"text":"hi","usage":{"completion_tokens":5}})"}, "", false};
  });
  metrics::MetricSet m = RunShard(v1::HTTP_JSON, fake.port(), 2, 2, [](v1::Target* t) {
    t->set_url(t->url() + "/api/generate");
  });
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 4u);
  EXPECT_EQ(m.Get(v1::TOKENS), 20u);
  EXPECT_EQ(m.Hist(v1::E2E).Count(), 4u);
  EXPECT_EQ(m.Hist(v1::TTFT).Count(), 0u);  // not defined without a stream
  EXPECT_EQ(fake.last_target(), "/api/generate");
}

TEST(HttpStreamSessionTest, UnreachableTargetFailsTheSessionAfterRetries) {
  int port = 0;
  {
    net::io_context ioc;
    tcp::acceptor a(ioc, {net::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, port, 2, 2);
  EXPECT_EQ(m.Get(v1::SESSIONS_FAILED), 2u);
  EXPECT_EQ(m.Get(v1::CONNECT_FAILED), 8u);  // first try + 3 retries, per session
  EXPECT_EQ(m.Get(v1::RECONNECTS), 6u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 0u);
}

TEST(HttpStreamSessionTest, ConnectionsSpreadOverSourceAddresses) {
  const auto events = Events(ReadFixture("openai-chat-stream.sse"));
  FakeProvider fake([&](int, const std::string&) { return Reply{200, events, "", false}; });
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 4, 1, [](v1::Target* t) {
    t->add_source_addresses("127.0.0.2");
    t->add_source_addresses("127.0.0.3");
  });
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 4u);
  EXPECT_EQ(fake.peers(), (std::set<std::string>{"127.0.0.2", "127.0.0.3"}));
}

}  // namespace
}  // namespace llmload::worker

namespace llmload::worker {
namespace {

TEST(HttpStreamSessionTest, InterimResponsesAreSkipped) {
  // RFC 9110 15.2: a client skips 1xx responses it did not ask for; the
  // final response that follows is the one that counts.
  const auto events = Events(ReadFixture("openai-chat-stream.sse"));
  FakeProvider fake([&](int n, const std::string&) {
    Reply r{200, events, "", false};
    r.interim = n % 2 == 0 ? "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                           : "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n";
    return r;
  });
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 1, 4);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 4u);
  EXPECT_EQ(m.Get(v1::HTTP_4XX), 0u);
  EXPECT_EQ(m.Get(v1::TOKENS), 12u);
  EXPECT_EQ(fake.connections(), 1);
  FakeProvider json([&](int, const std::string&) {
    Reply r{200, {R"({"text":"hi","usage":{"completion_tokens":2}})"}, "", false};
    r.interim = "HTTP/1.1 100 Continue\r\n\r\n";
    return r;
  });
  m = RunShard(v1::HTTP_JSON, json.port(), 1, 2);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 2u);
  EXPECT_EQ(m.Get(v1::TOKENS), 4u);
}

TEST(HttpStreamSessionTest, ASwitchingProtocolsAnswerIsAProtocolError) {
  FakeProvider fake([&](int, const std::string&) {
    Reply r{200, {"{}"}, "", false};
    r.interim = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
    return r;
  });
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 1, 1);
  EXPECT_EQ(m.Get(v1::PROTOCOL_ERROR), 1u);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 0u);
}

TEST(HttpStreamSessionTest, AConnectionTheServerClosedWhileIdleIsReplacedWithoutAFailure) {
  // The server closes every connection after one response without saying so
  // (as servers do with idle keep-alive connections): the next request on it
  // meets a closed socket before any response byte. That request is resent
  // on a fresh connection, not counted as failed.
  const auto events = Events(ReadFixture("openai-chat-stream.sse"));
  FakeProvider fake([&](int, const std::string&) {
    Reply r{200, events, "", false};
    r.close_after = true;
    return r;
  });
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 1, 3);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 3u);
  EXPECT_EQ(metrics::FailedRequests(m), 0u);
  EXPECT_EQ(fake.connections(), 3);
  EXPECT_EQ(fake.requests(), 3);
}

TEST(HttpStreamSessionTest, AStreamTheConnectionsCloseEndsIsComplete) {
  // HTTP/1.1 lets a response without Content-Length or chunked coding end
  // with the connection: that end completes the stream, and the next
  // request goes out on a new connection.
  const auto events = Events(ReadFixture("openai-chat-stream.sse"));
  FakeProvider fake([&](int, const std::string&) {
    Reply r{200, events};
    r.until_close = true;
    return r;
  });
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 1, 2);
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 2u);
  EXPECT_EQ(metrics::FailedRequests(m), 0u);
  EXPECT_EQ(m.Get(v1::RECONNECTS), 0u);
  EXPECT_EQ(fake.connections(), 2);
  // The same tokens as the same stream sent chunked.
  FakeProvider chunked([&](int, const std::string&) { return Reply{200, events}; });
  const metrics::MetricSet c = RunShard(v1::OPENAI_CHAT, chunked.port(), 1, 2);
  EXPECT_GT(c.Get(v1::TOKENS), 0u);
  EXPECT_EQ(m.Get(v1::TOKENS), c.Get(v1::TOKENS));
  EXPECT_EQ(chunked.connections(), 1);
}

// Set-up holds one of the loop's connection slots: far more sessions than
// slots still all connect, and every one completes its request.
TEST(HttpStreamSessionTest, MoreSessionsThanConnectionSlotsAllConnect) {
  constexpr int kClients = LoopShard::kMaxConnecting + 40;
  const auto events = Events(ReadFixture("openai-chat-stream.sse"));
  FakeProvider fake([&](int, const std::string&) { return Reply{200, events}; });
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), kClients, 1);
  EXPECT_EQ(m.Get(v1::SESSIONS_OPENED), static_cast<uint64_t>(kClients));
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), static_cast<uint64_t>(kClients));
  EXPECT_EQ(metrics::FailedRequests(m), 0u);
  EXPECT_EQ(fake.connections(), kClients);
}

TEST(HttpStreamSessionTest, EveryPartOfTheTargetUrlReachesTheTarget) {
  const auto events = Events(ReadFixture("openai-chat-stream.sse"));
  FakeProvider fake([&](int, const std::string&) { return Reply{200, events, "", false}; });
  // A gateway prefix and a query: the provider's path goes below the prefix,
  // the query follows.
  RunShard(v1::OPENAI_CHAT, fake.port(), 1, 1,
           [](v1::Target* t) { t->set_url(t->url() + "/gw/openai?team=a%20b&x=1"); });
  EXPECT_EQ(fake.last_target(), "/gw/openai/v1/chat/completions?team=a%20b&x=1");
  // Azure OpenAI's shape: the URL names the endpoint itself.
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 1, 1, [](v1::Target* t) {
    t->set_url(t->url() + "/openai/deployments/d1/chat/completions?api-version=2024-10-21");
  });
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 1u);
  EXPECT_EQ(fake.last_target(), "/openai/deployments/d1/chat/completions?api-version=2024-10-21");
  RunShard(v1::ANTHROPIC_MESSAGES, fake.port(), 1, 1,
           [](v1::Target* t) { t->set_url(t->url() + "/v1/messages?beta=true"); });
  EXPECT_EQ(fake.last_target(), "/v1/messages?beta=true");
  // Gemini keeps its own alt=sse beside the URL's query.
  RunShard(v1::GEMINI, fake.port(), 1, 1,
           [](v1::Target* t) { t->set_url(t->url() + "?key-hint=1"); });
  EXPECT_EQ(fake.last_target(), "/v1beta/models/m:streamGenerateContent?alt=sse&key-hint=1");
  RunShard(v1::HTTP_JSON, fake.port(), 1, 1,
           [](v1::Target* t) { t->set_url(t->url() + "/api/generate?mode=fast"); });
  EXPECT_EQ(fake.last_target(), "/api/generate?mode=fast");
}

TEST(HttpStreamSessionTest, HeadersFromTheWorkersEnvironmentReachTheTarget) {
  const auto events = Events(ReadFixture("openai-chat-stream.sse"));
  FakeProvider fake([&](int, const std::string&) { return Reply{200, events, "", false}; });
  ASSERT_EQ(setenv("LLMLOAD_TEST_HEADER_KEY", "k-from-env-123", 1), 0);
  metrics::MetricSet m = RunShard(v1::OPENAI_CHAT, fake.port(), 1, 1, [](v1::Target* t) {
    (*t->mutable_headers_from_env())["api-key"] = "LLMLOAD_TEST_HEADER_KEY";
    (*t->mutable_headers())["x-team"] = "blue";
  });
  EXPECT_EQ(m.Get(v1::REQUESTS_OK), 1u);
  EXPECT_EQ(fake.last_header("api-key"), "k-from-env-123");
  EXPECT_EQ(fake.last_header("x-team"), "blue");

  // A variable the worker does not have fails the shard, naming it.
  v1::ShardAssignment a;
  a.set_run_id("r");
  a.set_client_count(1);
  a.set_max_concurrent(1);
  v1::Target* t = a.mutable_spec()->mutable_target();
  t->set_protocol(v1::OPENAI_CHAT);
  t->set_url(absl::StrCat("http://127.0.0.1:", fake.port()));
  (*t->mutable_headers_from_env())["api-key"] = "LLMLOAD_TEST_NO_SUCH_VARIABLE";
  a.mutable_spec()->mutable_load()->mutable_closed()->set_clients(1);
  EventLoops loops(1);
  auto runner = ShardRunner::Create(loops, a);
  ASSERT_FALSE(runner.ok());
  EXPECT_EQ(runner.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(runner.status().message().find("LLMLOAD_TEST_NO_SUCH_VARIABLE is not set"),
            std::string::npos)
      << runner.status();
  loops.Stop();
}

TEST(HttpStreamSessionTest, TheWorkerChecksWhereTheTargetResolvesAgainstTheAllowlist) {
  const auto events = Events(ReadFixture("openai-chat-stream.sse"));
  FakeProvider fake([&](int, const std::string&) { return Reply{200, events, "", false}; });
  auto assignment = [&](const std::string& allowed) {
    v1::ShardAssignment a;
    a.set_run_id("r");
    a.set_client_count(1);
    a.set_max_concurrent(1);
    a.set_allowed_targets(allowed);
    v1::Target* t = a.mutable_spec()->mutable_target();
    t->set_protocol(v1::OPENAI_CHAT);
    t->set_url(absl::StrCat("http://localhost:", fake.port()));
    a.mutable_spec()->mutable_load()->mutable_closed()->set_clients(1);
    return a;
  };
  EventLoops loops(1);
  // localhost resolves to loopback, which the default allows.
  EXPECT_TRUE(ShardRunner::Create(loops, assignment("default")).ok());
  // A list without it: refused, naming the host.
  auto refused = ShardRunner::Create(loops, assignment("api.example.invalid"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("\"localhost\""), std::string::npos)
      << refused.status();
  loops.Stop();
  EXPECT_EQ(fake.requests(), 0);
}

TEST(JoinTargetTest, AppendsTheQueryAfterTheSuffixOwnQuery) {
  EXPECT_EQ(JoinTarget("", "", ""), "/");
  EXPECT_EQ(JoinTarget("", "", "a=1"), "/?a=1");
  EXPECT_EQ(JoinTarget("/base", "/api/run", ""), "/base/api/run");
  EXPECT_EQ(JoinTarget("/base", "/api/run", "a=1&b=2"), "/base/api/run?a=1&b=2");
  EXPECT_EQ(JoinTarget("", "/m:stream?alt=sse", "k=v"), "/m:stream?alt=sse&k=v");
}

}  // namespace
}  // namespace llmload::worker
