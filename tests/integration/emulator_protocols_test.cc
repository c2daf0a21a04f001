// End to end over real sockets: starts build/bin/llmload-emulator and
// drives every protocol other than Centrifugo (emulator_test.cc) with small
// Beast clients: SSE requests split at every byte boundary, WS frames split
// at every byte boundary, Realm and WS chat sessions, faults, the
// connection limit and TLS. Every network wait is bounded by a deadline.

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/read_until.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "boost/beast/websocket.hpp"
#include "boost/beast/websocket/ssl.hpp"
#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/mono_clock.h"

namespace llmload {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = net::ip::tcp;
using testing_util::BinPath;
using testing_util::ChildProcess;

constexpr auto kIoTimeout = std::chrono::seconds(10);

template <typename Start>
beast::error_code Await(net::io_context& ioc, Start&& start) {
  beast::error_code result;
  bool done = false;
  start([&](beast::error_code ec, auto&&...) {
    result = ec;
    done = true;
  });
  ioc.restart();
  ioc.run();
  return done ? result : beast::error_code(net::error::timed_out);
}

// A raw HTTP/1.1 exchange: `parts` are written one after another (so a
// request can be split anywhere), then everything is read until the server
// closes (the request says Connection: close).
struct RawResult {
  beast::error_code ec;
  std::string bytes;
};

RawResult RawExchange(int port, const std::vector<std::string>& parts) {
  RawResult r;
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(kIoTimeout);
  const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port));
  if ((r.ec = Await(ioc, [&](auto h) { stream.async_connect(ep, h); }))) {
    return r;
  }
  stream.socket().set_option(tcp::no_delay(true));
  for (const std::string& part : parts) {
    if (part.empty()) {
      continue;
    }
    if ((r.ec = Await(ioc, [&](auto h) { net::async_write(stream, net::buffer(part), h); }))) {
      return r;
    }
  }
  beast::error_code ec = Await(ioc, [&](auto h) {
    net::async_read(stream, net::dynamic_buffer(r.bytes), h);
  });
  if (ec != net::error::eof && ec != net::error::connection_reset) {
    r.ec = ec;
  }
  return r;
}

struct ParsedResponse {
  int status = 0;
  std::string headers;
  std::string body;       // de-chunked
  bool complete = false;  // the last chunk arrived
};

ParsedResponse ParseChunked(const std::string& bytes) {
  ParsedResponse p;
  const size_t head_end = bytes.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    return p;
  }
  p.headers = bytes.substr(0, head_end);
  (void)absl::SimpleAtoi(p.headers.substr(9, 3), &p.status);
  size_t pos = head_end + 4;
  while (pos < bytes.size()) {
    const size_t eol = bytes.find("\r\n", pos);
    if (eol == std::string::npos) {
      break;
    }
    const size_t size = std::strtoul(bytes.substr(pos, eol - pos).c_str(), nullptr, 16);
    if (size == 0) {
      p.complete = bytes.compare(eol, 4, "\r\n\r\n") == 0;
      break;
    }
    if (eol + 2 + size > bytes.size()) {
      break;
    }
    p.body.append(bytes, eol + 2, size);
    pos = eol + 2 + size + 2;
  }
  return p;
}

std::vector<std::string> DataLines(const std::string& body) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (absl::ConsumePrefix(&line, "data: ")) {
      out.emplace_back(absl::StripSuffix(line, "\r"));
    }
  }
  return out;
}

template <typename NextLayer>
class WsClientT {
 public:
  template <typename... Args>
  explicit WsClientT(Args&&... args) : ws_(ioc_, std::forward<Args>(args)...) {}

  ::testing::AssertionResult Connect(int port, const std::string& path,
                                     const std::vector<std::pair<std::string, std::string>>&
                                         headers = {}) {
    beast::get_lowest_layer(ws_).expires_after(kIoTimeout);
    const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port));
    if (auto ec = Await(ioc_, [&](auto h) { beast::get_lowest_layer(ws_).async_connect(ep, h); })) {
      return ::testing::AssertionFailure() << "connect: " << ec.message();
    }
    if constexpr (!std::is_same_v<NextLayer, beast::tcp_stream>) {
      if (auto ec = Await(ioc_, [&](auto h) {
            ws_.next_layer().async_handshake(ssl::stream_base::client, h);
          })) {
        return ::testing::AssertionFailure() << "tls: " << ec.message();
      }
    }
    ws_.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
      for (const auto& [k, v] : headers) {
        req.set(k, v);
      }
    }));
    const std::string host = "127.0.0.1:" + std::to_string(port);
    if (auto ec = Await(ioc_, [&](auto h) { ws_.async_handshake(host, path, h); })) {
      return ::testing::AssertionFailure() << "handshake: " << ec.message();
    }
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult Send(const std::string& text) {
    beast::get_lowest_layer(ws_).expires_after(kIoTimeout);
    ws_.text(true);
    if (auto ec = Await(ioc_, [&](auto h) { ws_.async_write(net::buffer(text), h); })) {
      return ::testing::AssertionFailure() << "write: " << ec.message();
    }
    return ::testing::AssertionSuccess();
  }

  // The next text message; "" with *closed set when the server closed.
  std::string Read(bool* closed = nullptr, beast::error_code* error = nullptr) {
    beast::get_lowest_layer(ws_).expires_after(kIoTimeout);
    buffer_.clear();
    const beast::error_code ec = Await(ioc_, [&](auto h) { ws_.async_read(buffer_, h); });
    if (closed != nullptr) {
      *closed = static_cast<bool>(ec);
    }
    if (error != nullptr) {
      *error = ec;
    }
    return ec ? std::string() : beast::buffers_to_string(buffer_.data());
  }

  json::value ReadJson() {
    const std::string text = Read();
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    EXPECT_FALSE(ec) << "not JSON: " << text;
    return v;
  }

  websocket::stream<NextLayer>& ws() { return ws_; }

 private:
  net::io_context ioc_;
  websocket::stream<NextLayer> ws_;
  beast::flat_buffer buffer_;
};
using WsClient = WsClientT<beast::tcp_stream>;

class EmulatorProtocolsTest : public ::testing::Test {
 protected:
  void StartEmulator(std::vector<std::string> extra_args = {}) {
    port_ = testing_util::FreePort();
    ASSERT_NE(port_, 0);
    dir_ = testing_util::MakeTempDir("emulator_protocols_test");
    std::vector<std::string> args = {"--host=127.0.0.1", "--port=" + std::to_string(port_),
                                     "--threads=2", "--length_words=6",
                                     "--token_delay_seconds=0.001", "--seed=7"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    process_ = ChildProcess::Start(BinPath("llmload-emulator"), args, dir_ + "/emulator.log");
    ASSERT_NE(process_, nullptr);
    ASSERT_TRUE(testing_util::WaitForTcp(port_, absl::Seconds(10)));
  }

  void TearDown() override {
    if (process_ != nullptr) {
      process_->Stop();
      if (HasFailure()) {
        std::cerr << "emulator log:\n" << process_->ReadLog();
      }
    }
  }

  int port_ = 0;
  std::string dir_;
  std::unique_ptr<ChildProcess> process_;
};

std::string OpenAiRequest(const std::string& extra_headers = "") {
  const std::string body =
      R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"split me"}],)"
      R"("stream":true,"stream_options":{"include_usage":true},"max_tokens":4})";
  return absl::StrCat("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                      "Content-Type: application/json\r\nConnection: close\r\n", extra_headers,
                      "Content-Length: ", body.size(), "\r\n\r\n", body);
}

TEST_F(EmulatorProtocolsTest, SseRequestSplitAtEveryByteBoundary) {
  StartEmulator();
  const std::string request = OpenAiRequest();
  const RawResult whole = RawExchange(port_, {request});
  ASSERT_FALSE(whole.ec) << whole.ec.message();
  const ParsedResponse want = ParseChunked(whole.bytes);
  ASSERT_EQ(want.status, 200);
  ASSERT_TRUE(want.complete);
  EXPECT_NE(want.headers.find("Transfer-Encoding: chunked"), std::string::npos);
  const std::vector<std::string> events = DataLines(want.body);
  ASSERT_EQ(events.size(), 8u);  // role, 4 tokens, finish, usage, [DONE]
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 1; i <= 4; ++i) {
    text += std::string(
        json::parse(events[i]).at("choices").at(0).at("delta").at("content").as_string());
  }
  for (size_t k = 1; k < request.size(); ++k) {
    const RawResult r = RawExchange(port_, {request.substr(0, k), request.substr(k)});
    ASSERT_FALSE(r.ec) << "split at " << k << ": " << r.ec.message();
    const ParsedResponse p = ParseChunked(r.bytes);
    ASSERT_EQ(p.status, 200) << "split at " << k;
    ASSERT_TRUE(p.complete) << "split at " << k;
    const std::vector<std::string> got = DataLines(p.body);
    ASSERT_EQ(got.size(), events.size()) << "split at " << k;
    std::string got_text;
    for (size_t i = 1; i <= 4; ++i) {
      got_text += std::string(
          json::parse(got[i]).at("choices").at(0).at("delta").at("content").as_string());
    }
    ASSERT_EQ(got_text, text) << "split at " << k;  // same seed, same prompt: same words
  }
}

TEST_F(EmulatorProtocolsTest, EveryHttpProtocolAnswersAndKeepsAlive) {
  StartEmulator();
  struct Case {
    std::string target;
    std::string body;
    std::string marker;  // in the body of a good answer
  };
  const std::vector<Case> cases = {
      {"/v1/messages",
       R"({"model":"c","max_tokens":3,"messages":[{"role":"user","content":"q"}],"stream":true})",
       "event: message_stop"},
      {"/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
       R"({"contents":[{"parts":[{"text":"q"}]}],"generationConfig":{"maxOutputTokens":3}})",
       "\"finishReason\":\"STOP\""},
      {"/v1beta/models/gemini-2.0-flash:generateContent", R"({"contents":[{"parts":[{"text":"q"}]}]})",
       "\"candidates\""},
      {"/v1/generate", R"({"prompt":"q"})", "\"completion_tokens\":6"},
      {"/api/generate", R"({"prompt":"q"})", "\"completion_tokens\":6"},
  };
  // All on one keep-alive connection.
  std::vector<std::string> parts;
  for (const Case& c : cases) {
    parts.push_back(absl::StrCat("POST ", c.target, " HTTP/1.1\r\nHost: h\r\nContent-Length: ",
                                 c.body.size(), "\r\n\r\n", c.body));
  }
  parts.push_back("GET /health HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  const RawResult r = RawExchange(port_, parts);
  ASSERT_FALSE(r.ec) << r.ec.message();
  for (const Case& c : cases) {
    EXPECT_NE(r.bytes.find(c.marker), std::string::npos) << c.target << "\n" << r.bytes;
  }
  EXPECT_NE(r.bytes.find("{\"status\":\"ok\"}"), std::string::npos);
}

TEST_F(EmulatorProtocolsTest, DisconnectFaultDropsTheStreamMidway) {
  StartEmulator();
  const RawResult r = RawExchange(port_, {OpenAiRequest("x-llmload-fault: disconnect\r\n")});
  const ParsedResponse p = ParseChunked(r.bytes);
  EXPECT_EQ(p.status, 200);
  EXPECT_FALSE(p.complete);
  EXPECT_EQ(DataLines(p.body).size(), 3u);  // role + ceil(4/2) tokens
}

TEST_F(EmulatorProtocolsTest, SeededFaultRatesGiveTheSameOutcomesEveryRun) {
  auto outcomes = [&] {
    StartEmulator({"--fault_http_500=0.2", "--fault_http_429=0.2", "--seed=99"});
    std::string seen;
    for (int i = 0; i < 30; ++i) {
      const std::string body = R"({"prompt":"q","max_tokens":1})";
      const RawResult r = RawExchange(
          port_, {absl::StrCat("POST /v1/generate HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                               "Content-Length: ",
                               body.size(), "\r\n\r\n", body)});
      seen += r.bytes.substr(9, 3) + ",";
    }
    process_->Stop();
    process_.reset();
    return seen;
  };
  const std::string first = outcomes();
  const std::string second = outcomes();
  EXPECT_EQ(first, second);
  EXPECT_NE(first.find("500"), std::string::npos);
  EXPECT_NE(first.find("429"), std::string::npos);
  EXPECT_NE(first.find("200"), std::string::npos);
}

TEST_F(EmulatorProtocolsTest, ConnectionLimitAnswers503) {
  StartEmulator({"--max_connections=1"});
  // The probe connection of WaitForTcp may still hold the only slot for a
  // moment: retry the upgrade (it is answered 503 until the slot is free).
  std::unique_ptr<WsClient> holder;
  const absl::Time deadline = testing_util::MonoNow() + absl::Seconds(5);
  while (testing_util::MonoNow() < deadline) {
    auto c = std::make_unique<WsClient>();
    if (c->Connect(port_, "/ws")) {
      holder = std::move(c);
      break;
    }
  }
  ASSERT_NE(holder, nullptr);
  EXPECT_EQ(holder->ReadJson().at("data").at("status").as_string(), "connected");
  const RawResult r =
      RawExchange(port_, {"GET /health HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"});
  EXPECT_EQ(r.bytes.substr(0, 12), "HTTP/1.1 503") << r.bytes;
  EXPECT_NE(r.bytes.find("Server at capacity"), std::string::npos);
}

TEST_F(EmulatorProtocolsTest, RealmAuthStreamingGenerateAndErrors) {
  StartEmulator({"--realm_api_keys=sk_test_123:tenant1"});
  WsClient c;
  ASSERT_TRUE(c.Connect(port_, "/"));
  EXPECT_EQ(c.Read(),
            R"({"message":"Please send authentication message with your API key","type":"auth_required"})");
  ASSERT_TRUE(c.Send(R"({"type":"auth","api_key":"sk_test_123"})"));
  EXPECT_EQ(c.Read(), R"({"tenant_id":"tenant1","type":"auth_success"})");
  EXPECT_EQ(c.Read(), R"({"status":"connected","tenant_id":"tenant1","version":"0.1.0"})");
  ASSERT_TRUE(c.Send(
      R"({"id":"g1","function":"generate","params":{"prompt":"Hello there","max_tokens":13,"stream":true,"token_delay_ms":0},"tenant_id":"tenant1"})"));
  // A second call during the stream is answered after it.
  ASSERT_TRUE(c.Send(R"({"id":"h1","function":"health","params":{},"tenant_id":"tenant1"})"));
  std::string text;
  for (int i = 0; i < 13; ++i) {
    const json::value v = c.ReadJson();
    ASSERT_EQ(v.at("status").as_string(), "streaming");
    EXPECT_EQ(v.at("data").at("index").as_int64(), i);
    EXPECT_EQ(v.at("data").at("is_final").as_bool(), i == 12);
    text += std::string(v.at("data").at("text").as_string());
  }
  EXPECT_EQ(c.Read(),
            R"({"id":"g1","status":"complete","data":{"status":"complete","tokens_generated":13}})");
  EXPECT_EQ(json::parse(c.Read()).at("id").as_string(), "h1");
  EXPECT_EQ(std::count(text.begin(), text.end(), ' '), 13);

  ASSERT_TRUE(c.Send(R"({"id":"r-1","function":"generate","params":{"prompt":"x"},"tenant_id":"someone-else"})"));
  EXPECT_EQ(c.Read(),
            R"({"id":"r-1","status":"error","error":{"code":"UNAUTHORIZED","message":"Tenant ID mismatch"}})");
  ASSERT_TRUE(c.Send(R"({"id":"n","function":"generate","params":{"prompt":"x"},"tenant_id":"tenant1"})"));
  const json::value whole = c.ReadJson();
  EXPECT_EQ(whole.at("data").at("tokens_generated").as_int64(), 6);

  // A bad key: auth_failed, then a close frame without status code.
  WsClient bad;
  ASSERT_TRUE(bad.Connect(port_, "/realm"));
  (void)bad.Read();
  ASSERT_TRUE(bad.Send(R"({"type":"auth","api_key":"sk_wrong"})"));
  EXPECT_EQ(bad.Read(), R"({"error":"Invalid API key","type":"auth_failed"})");
  bool closed = false;
  beast::error_code ec;
  bad.Read(&closed, &ec);
  EXPECT_TRUE(closed);
  EXPECT_EQ(ec, websocket::error::closed) << ec.message();
  EXPECT_EQ(bad.ws().reason().code, websocket::close_code::none);
}

// After the 101, one masked client text frame written in two TCP writes
// split at byte k, then a close frame; the reply must be there for every k.
std::string RawWebSocketCall(int port, const std::string& path, const std::string& frame,
                             size_t k) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(kIoTimeout);
  const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port));
  if (Await(ioc, [&](auto h) { stream.async_connect(ep, h); })) {
    return "connect failed";
  }
  stream.socket().set_option(tcp::no_delay(true));
  const std::string upgrade = absl::StrCat(
      "GET ", path,
      " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  if (Await(ioc, [&](auto h) { net::async_write(stream, net::buffer(upgrade), h); })) {
    return "write failed";
  }
  std::string bytes;
  if (Await(ioc, [&](auto h) {
        net::async_read_until(stream, net::dynamic_buffer(bytes), "\r\n\r\n", h);
      })) {
    return "no 101";
  }
  const std::string close_frame("\x88\x80\x00\x00\x00\x00", 6);
  for (const std::string& part : {frame.substr(0, k), frame.substr(k), close_frame}) {
    if (!part.empty() &&
        Await(ioc, [&](auto h) { net::async_write(stream, net::buffer(part), h); })) {
      return "write failed";
    }
  }
  (void)Await(ioc, [&](auto h) { net::async_read(stream, net::dynamic_buffer(bytes), h); });
  return bytes;
}

std::string MaskedTextFrame(const std::string& payload) {
  std::string frame;
  frame.push_back(static_cast<char>(0x81));
  frame.push_back(static_cast<char>(0x80 | payload.size()));
  const unsigned char mask[4] = {0x11, 0x22, 0x33, 0x44};
  frame.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    frame.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
  }
  return frame;
}

TEST_F(EmulatorProtocolsTest, WebSocketFramesSplitAtEveryByteBoundary) {
  StartEmulator();
  const std::string realm = MaskedTextFrame(R"({"id":"s","function":"health","params":{}})");
  const std::string chat = MaskedTextFrame(R"({"type":"ping","id":"p7"})");
  ASSERT_LT(realm.size(), 125u);
  for (size_t k = 0; k <= realm.size(); ++k) {
    const std::string r = RawWebSocketCall(port_, "/realm", realm, k);
    ASSERT_EQ(r.substr(0, 12), "HTTP/1.1 101") << "split at " << k;
    ASSERT_NE(r.find(R"({"id":"s","status":"complete","data":{"status":"healthy")"),
              std::string::npos)
        << "split at " << k << ": " << r;
  }
  for (size_t k = 0; k <= chat.size(); ++k) {
    const std::string r = RawWebSocketCall(port_, "/api/ws", chat, k);
    ASSERT_NE(r.find(R"({"type":"pong","id":"p7")"), std::string::npos)
        << "split at " << k << ": " << r;
  }
}

TEST_F(EmulatorProtocolsTest, WsChatTurnOnBothPaths) {
  StartEmulator();
  for (const char* path : {"/api/ws", "/ws"}) {
    WsClient c;
    ASSERT_TRUE(c.Connect(port_, path));
    EXPECT_EQ(c.ReadJson().at("data").at("status").as_string(), "connected");
    ASSERT_TRUE(c.Send(
        R"({"type":"user_message","id":"m1","data":{"text":"hello","options":{"maxTokens":5,"tokenDelayMs":1}}})"));
    EXPECT_EQ(c.ReadJson().at("data").at("status").as_string(), "processing");
    std::string text;
    for (int i = 0; i < 5; ++i) {
      const json::value v = c.ReadJson();
      ASSERT_EQ(v.at("type").as_string(), "llm_chunk");
      EXPECT_EQ(v.at("id").as_string(), "m1");
      text += std::string(v.at("data").at("chunk").as_string());
    }
    const json::value done = c.ReadJson();
    EXPECT_EQ(done.at("type").as_string(), "llm_complete");
    EXPECT_EQ(done.at("data").at("fullText").as_string(), text);
    ASSERT_TRUE(c.Send(R"({"type":"ping","id":"p1"})"));
    const json::value pong = c.ReadJson();
    EXPECT_EQ(pong.at("type").as_string(), "pong");
    EXPECT_EQ(pong.at("id").as_string(), "p1");
  }
}

TEST_F(EmulatorProtocolsTest, WsChatAbortStopsTheStream) {
  StartEmulator();
  WsClient c;
  ASSERT_TRUE(c.Connect(port_, "/ws"));
  (void)c.Read();
  ASSERT_TRUE(c.Send(
      R"({"type":"user_message","id":"m1","data":{"text":"long","maxTokens":1000,"tokenDelayMs":20}})"));
  (void)c.Read();  // processing
  EXPECT_EQ(c.ReadJson().at("type").as_string(), "llm_chunk");
  ASSERT_TRUE(c.Send(R"({"type":"control","id":"a1","data":{"type":"abort"}})"));
  json::value v;
  do {
    v = c.ReadJson();
  } while (v.at("type").as_string() == "llm_chunk");
  EXPECT_EQ(v.at("type").as_string(), "control_response");
  EXPECT_EQ(v.at("data").at("status").as_string(), "aborted");
  ASSERT_TRUE(c.Send(R"({"type":"ping","id":"after"})"));
  EXPECT_EQ(c.ReadJson().at("type").as_string(), "pong");  // no chunk after the abort
}

TEST_F(EmulatorProtocolsTest, TlsPortServesHttpsAndWss) {
  const std::string dir = testing_util::MakeTempDir("emulator_tls");
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                          "-keyout " + dir + "/key.pem -out " + dir + "/cert.pem >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    GTEST_SKIP() << "openssl command line tool not available";
  }
  const int tls_port = testing_util::FreePort();
  StartEmulator({"--tls_port=" + std::to_string(tls_port), "--tls_cert_file=" + dir + "/cert.pem",
                 "--tls_key_file=" + dir + "/key.pem"});
  ASSERT_TRUE(testing_util::WaitForTcp(tls_port, absl::Seconds(10)));

  ssl::context ctx(ssl::context::tls_client);
  ctx.set_verify_mode(ssl::verify_none);
  {
    net::io_context ioc;
    ssl::stream<beast::tcp_stream> s(ioc, ctx);
    beast::get_lowest_layer(s).expires_after(kIoTimeout);
    const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(tls_port));
    ASSERT_FALSE(Await(ioc, [&](auto h) { beast::get_lowest_layer(s).async_connect(ep, h); }));
    ASSERT_FALSE(Await(ioc, [&](auto h) { s.async_handshake(ssl::stream_base::client, h); }));
    http::request<http::string_body> req(http::verb::post, "/v1/generate", 11);
    req.set(http::field::host, "127.0.0.1");
    req.body() = R"({"prompt":"tls","max_tokens":3})";
    req.prepare_payload();
    ASSERT_FALSE(Await(ioc, [&](auto h) { http::async_write(s, req, h); }));
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    ASSERT_FALSE(Await(ioc, [&](auto h) { http::async_read(s, buffer, res, h); }));
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(json::parse(res.body()).at("usage").at("completion_tokens").as_int64(), 3);
  }
  WsClientT<ssl::stream<beast::tcp_stream>> wss(ctx);
  ASSERT_TRUE(wss.Connect(tls_port, "/ws"));
  EXPECT_EQ(wss.ReadJson().at("data").at("status").as_string(), "connected");
  ASSERT_TRUE(wss.Send(R"({"type":"user_message","id":"t","data":{"text":"x","maxTokens":2}})"));
  (void)wss.Read();  // processing
  EXPECT_EQ(wss.ReadJson().at("type").as_string(), "llm_chunk");
  EXPECT_EQ(wss.ReadJson().at("type").as_string(), "llm_chunk");
  EXPECT_EQ(wss.ReadJson().at("type").as_string(), "llm_complete");
}

}  // namespace
}  // namespace llmload
