// End to end: starts build/bin/llmload-emulator on a free loopback port and
// drives it over real HTTP and WebSocket with a small Beast client. Every
// network wait is bounded by a tcp_stream deadline.

#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/websocket.hpp"
#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "tests/testing/emulator_stats.h"
#include "tests/testing/process.h"

namespace llmload {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = net::ip::tcp;
using testing_util::BinPath;
using testing_util::ChildProcess;

constexpr auto kIoTimeout = std::chrono::seconds(10);

// Fixture tokens (shared/protocols/fixtures), signed with the default secret.
constexpr char kExpiredToken[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiI5ZjJjNmExZS00YjdkLTRjMmEtOWUxNS0zZDhmMGI2YTdjMjEiLCJleHAiOjE3MDAwMDAwMDAsImNoYW5u"
    "ZWxzIjpbInNlc3Npb246OWYyYzZhMWUtNGI3ZC00YzJhLTllMTUtM2Q4ZjBiNmE3YzIxIl19."
    "SnswtJm-Tf1cCF5NXHQTmGT_nWtQxq2XrNy7vO8Z0FE";
constexpr char kBadSignatureToken[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiI5ZjJjNmExZS00YjdkLTRjMmEtOWUxNS0zZDhmMGI2YTdjMjEiLCJleHAiOjE3NjcyMjkyMDAsImNoYW5u"
    "ZWxzIjpbInNlc3Npb246OWYyYzZhMWUtNGI3ZC00YzJhLTllMTUtM2Q4ZjBiNmE3YzIxIl19."
    "b6IPtxMAp9zlEa50oyOOPAWSIFGj1rJhTqBHTAPAAAA";
constexpr char kFixtureChannel[] = "session:9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21";

// Starts an async operation on ioc and runs ioc until it completes. The
// operation itself is bounded by its tcp_stream's deadline.
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
  if (!done) {
    return net::error::timed_out;
  }
  return result;
}

struct HttpResult {
  beast::error_code ec;
  int status = 0;
  std::string body;
  std::string content_type;
};

HttpResult Http(int port, http::verb method, const std::string& target,
                const std::string& body = "", bool with_body = false) {
  HttpResult result;
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(kIoTimeout);
  const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port));
  if ((result.ec = Await(ioc, [&](auto h) { stream.async_connect(ep, h); }))) {
    return result;
  }
  http::request<http::string_body> req(method, target, 11);
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::accept, "*/*");
  if (with_body) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  if ((result.ec = Await(ioc, [&](auto h) { http::async_write(stream, req, h); }))) {
    return result;
  }
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  if ((result.ec = Await(ioc, [&](auto h) { http::async_read(stream, buffer, res, h); }))) {
    return result;
  }
  result.status = static_cast<int>(res.result_int());
  result.body = res.body();
  result.content_type = std::string(res[http::field::content_type]);
  return result;
}

// One keep-alive HTTP/1.1 connection: every request on it reaches the same
// process of an emulator group.
class HttpConnection {
 public:
  ::testing::AssertionResult Connect(int port) {
    stream_.expires_after(kIoTimeout);
    const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port));
    if (auto ec = Await(ioc_, [&](auto h) { stream_.async_connect(ep, h); })) {
      return ::testing::AssertionFailure() << "connect: " << ec.message();
    }
    return ::testing::AssertionSuccess();
  }

  HttpResult Request(http::verb method, const std::string& target, const std::string& body = "",
                     bool with_body = false) {
    HttpResult result;
    http::request<http::string_body> req(method, target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(true);
    if (with_body) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    stream_.expires_after(kIoTimeout);
    if ((result.ec = Await(ioc_, [&](auto h) { http::async_write(stream_, req, h); }))) {
      return result;
    }
    http::response<http::string_body> res;
    if ((result.ec = Await(ioc_, [&](auto h) { http::async_read(stream_, buffer_, res, h); }))) {
      return result;
    }
    result.status = static_cast<int>(res.result_int());
    result.body = res.body();
    return result;
  }

 private:
  net::io_context ioc_;
  beast::tcp_stream stream_{ioc_};
  beast::flat_buffer buffer_;
};

class WsClient {
 public:
  struct Message {
    bool closed = false;
    std::string text;
    uint16_t close_code = 0;
    std::string close_reason;
  };

  ::testing::AssertionResult Connect(int port) {
    beast::get_lowest_layer(ws_).expires_after(kIoTimeout);
    const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port));
    if (auto ec = Await(ioc_, [&](auto h) { beast::get_lowest_layer(ws_).async_connect(ep, h); })) {
      return ::testing::AssertionFailure() << "connect: " << ec.message();
    }
    const std::string host = "127.0.0.1:" + std::to_string(port);
    if (auto ec = Await(ioc_, [&](auto h) { ws_.async_handshake(host, "/connection/websocket", h); })) {
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

  // Writes, bypassing the WebSocket layer, the start of a masked text frame
  // that declares `declared_length` payload bytes but carries only the first
  // `sent_length`: the server must judge the size from the header, and the
  // test has no unread data left at the server to turn its close into a reset.
  ::testing::AssertionResult SendTruncatedFrame(uint64_t declared_length, size_t sent_length) {
    std::string frame = {'\x81', '\xff'};  // FIN + text; masked, 64-bit length
    for (int shift = 56; shift >= 0; shift -= 8) {
      frame.push_back(static_cast<char>((declared_length >> shift) & 0xff));
    }
    frame.append(4, '\0');  // zero mask key: the payload goes as is
    frame.append(sent_length, ' ');
    auto& tcp = beast::get_lowest_layer(ws_);
    tcp.expires_after(kIoTimeout);
    if (auto ec = Await(ioc_, [&](auto h) { net::async_write(tcp, net::buffer(frame), h); })) {
      return ::testing::AssertionFailure() << "raw write: " << ec.message();
    }
    return ::testing::AssertionSuccess();
  }

  // One WebSocket message, or the server's close frame.
  ::testing::AssertionResult Read(Message* m,
                                  std::chrono::steady_clock::duration timeout = kIoTimeout) {
    *m = Message{};
    beast::get_lowest_layer(ws_).expires_after(timeout);
    buffer_.clear();
    const beast::error_code ec = Await(ioc_, [&](auto h) { ws_.async_read(buffer_, h); });
    if (!ec) {
      m->text = beast::buffers_to_string(buffer_.data());
      return ::testing::AssertionSuccess();
    }
    if (ws_.reason().code != websocket::close_code::none) {
      m->closed = true;
      m->close_code = static_cast<uint16_t>(ws_.reason().code);
      m->close_reason = std::string(ws_.reason().reason.data(), ws_.reason().reason.size());
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "read: " << ec.message();
  }

  // Reads until the server closes; the close frame.
  ::testing::AssertionResult ReadClose(Message* m) {
    for (int i = 0; i < 100; ++i) {
      if (auto r = Read(m); !r) {
        return r;
      }
      if (m->closed) {
        return ::testing::AssertionSuccess();
      }
    }
    return ::testing::AssertionFailure() << "no close frame";
  }

 private:
  net::io_context ioc_;
  websocket::stream<beast::tcp_stream> ws_{ioc_};
  beast::flat_buffer buffer_;
};

std::string Base64UrlDecode(const std::string& in) {
  std::string b64 = in;
  for (char& c : b64) {
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  while (b64.size() % 4 != 0) {
    b64.push_back('=');
  }
  static const std::string kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : b64) {
    if (c == '=') {
      break;
    }
    acc = (acc << 6) | static_cast<uint32_t>(kChars.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string ConnectFrame(const std::string& token, const std::string& channel) {
  return "{\"connect\":{\"token\":\"" + token + "\",\"name\":\"js\"},\"id\":1}\n"
         "{\"subscribe\":{\"channel\":\"" + channel + "\",\"flag\":1},\"id\":2}";
}

struct Session {
  std::string id;
  std::string token;
};

struct Publication {
  std::string token;
  bool done = false;
  uint64_t offset = 0;
};

class EmulatorTest : public ::testing::Test {
 protected:
  void StartEmulator(std::vector<std::string> extra_args = {}) {
    port_ = testing_util::FreePort();
    ASSERT_NE(port_, 0);
    log_path_ = testing_util::MakeTempDir("emulator_test") + "/emulator.log";
    std::vector<std::string> args = {"--host=127.0.0.1", "--port=" + std::to_string(port_),
                                     "--threads=2", "--log_level=debug"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    process_ = ChildProcess::Start(BinPath("llmload-emulator"), args, log_path_);
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

  Session CreateSession() {
    HttpResult r = Http(port_, http::verb::post, "/api/sessions/create");
    EXPECT_EQ(r.status, 200) << r.ec.message();
    Session s;
    const json::value v = json::parse(r.body);
    s.id = std::string(v.at("session_id").as_string());
    s.token = std::string(v.at("token").as_string());
    return s;
  }

  // Connects and checks the connect reply (and the 105 for the duplicate
  // client-side subscribe, possibly in the same frame).
  void ConnectSession(WsClient* ws, const Session& s) {
    ASSERT_TRUE(ws->Connect(port_));
    ASSERT_TRUE(ws->Send(ConnectFrame(s.token, "session:" + s.id)));
    std::vector<std::string> replies;
    while (replies.size() < 2) {
      WsClient::Message m;
      ASSERT_TRUE(ws->Read(&m));
      ASSERT_FALSE(m.closed) << m.close_code << " " << m.close_reason;
      for (auto line : absl::StrSplit(m.text, '\n')) {
        replies.emplace_back(line);
      }
    }
    const json::value connect = json::parse(replies[0]);
    EXPECT_EQ(connect.at("id").as_int64(), 1);
    const json::object& result = connect.at("connect").as_object();
    EXPECT_EQ(result.at("client").as_string().size(), 36u);
    EXPECT_TRUE(result.at("expires").as_bool());
    EXPECT_GT(result.at("ttl").as_int64(), 3500);
    EXPECT_TRUE(result.at("pong").as_bool());
    const json::object& sub = result.at("subs").at("session:" + s.id).as_object();
    EXPECT_TRUE(sub.at("recoverable").as_bool());
    EXPECT_TRUE(sub.at("positioned").as_bool());
    EXPECT_FALSE(sub.at("epoch").as_string().empty());
    EXPECT_EQ(replies[1], "{\"id\":2,\"error\":{\"code\":105,\"message\":\"already subscribed\"}}");
  }

  // Reads pushes (several may share a frame) until {"done":true}.
  std::vector<Publication> ReadRun(WsClient* ws, const std::string& channel) {
    std::vector<Publication> pubs;
    while (pubs.empty() || !pubs.back().done) {
      WsClient::Message m;
      if (!ws->Read(&m)) {
        ADD_FAILURE() << "stream ended after " << pubs.size() << " publications";
        return pubs;
      }
      if (m.closed) {
        ADD_FAILURE() << "closed " << m.close_code << " " << m.close_reason;
        return pubs;
      }
      for (auto line : absl::StrSplit(m.text, '\n')) {
        const json::value v = json::parse(std::string(line));
        const json::object& push = v.at("push").as_object();
        EXPECT_EQ(push.at("channel").as_string(), channel);
        const json::object& pub = push.at("pub").as_object();
        Publication p;
        p.offset = pub.at("offset").to_number<uint64_t>();
        const json::object& data = pub.at("data").as_object();
        if (data.contains("token")) {
          p.token = std::string(data.at("token").as_string());
        } else {
          p.done = data.at("done").as_bool();
        }
        pubs.push_back(p);
      }
    }
    return pubs;
  }

  // The "Emulator listening." line, once logged.
  std::string ListeningLine() {
    std::string line;
    EXPECT_TRUE(testing_util::WaitUntil(
        [&] {
          const std::string log = process_->ReadLog();
          const size_t at = log.find("Emulator listening.");
          if (at == std::string::npos) {
            return false;
          }
          line = log.substr(at, log.find('\n', at) - at);
          return true;
        },
        absl::Seconds(20), "the listening line"));
    return line;
  }

  // A field of a log line ("port" in "... [address=…, port=8080, …]").
  static std::string Field(const std::string& line, const std::string& key) {
    size_t at = line.find("[" + key + "=");
    if (at == std::string::npos) {
      at = line.find(" " + key + "=");
    }
    if (at == std::string::npos) {
      return "";
    }
    at += key.size() + 2;
    size_t end = line.find(", ", at);
    end = end == std::string::npos ? line.find(']', at) : end;
    return line.substr(at, end - at);
  }

  // The processes of a group (--processes), from the listening line.
  std::vector<pid_t> GroupPids() {
    std::vector<pid_t> pids;
    for (absl::string_view p : absl::StrSplit(Field(ListeningLine(), "pids"), ',')) {
      int pid = 0;
      if (absl::SimpleAtoi(p, &pid)) {
        pids.push_back(pid);
      }
    }
    return pids;
  }

  int port_ = 0;
  std::string log_path_;
  std::unique_ptr<ChildProcess> process_;
};

// True once no process has the pid (its parent has reaped it).
bool Gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

TEST_F(EmulatorTest, LogsWhereItListens) {
  StartEmulator();
  // The port accepts before the line is flushed: wait for it.
  EXPECT_TRUE(testing_util::WaitUntil(
      [&] { return process_->ReadLog().find("Emulator listening.") != std::string::npos; },
      absl::Seconds(10), "the listening line"));
  const std::string log = process_->ReadLog();
  EXPECT_NE(log.find("Emulator listening."), std::string::npos) << log;
  EXPECT_NE(log.find("port=" + std::to_string(port_)), std::string::npos) << log;
}

TEST_F(EmulatorTest, RestEndpointsAnswerLikeTheOriginal) {
  StartEmulator();
  HttpResult health = Http(port_, http::verb::get, "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "{\"status\":\"ok\"}");
  EXPECT_EQ(health.content_type, "application/json");

  const Session s = CreateSession();
  EXPECT_EQ(s.id.size(), 36u);
  EXPECT_EQ(s.id[14], '4');  // uuid4
  const std::vector<std::string> parts = absl::StrSplit(s.token, '.');
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0], "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
  const json::value claims = json::parse(Base64UrlDecode(parts[1]));
  EXPECT_EQ(claims.at("sub").as_string(), s.id);
  // wall clock: a JWT's exp is a Unix time by definition.
  const int64_t unix_now = absl::ToUnixSeconds(absl::Now());  // wall clock
  EXPECT_NEAR(static_cast<double>(claims.at("exp").as_int64()),
              static_cast<double>(unix_now + 3600), 60.0);
  EXPECT_EQ(claims.at("channels").as_array().at(0).as_string(), "session:" + s.id);

  HttpResult del = Http(port_, http::verb::delete_, "/api/sessions/" + s.id);
  EXPECT_EQ(del.status, 200);
  EXPECT_EQ(del.body, "{\"status\":\"closed\"}");

  HttpResult missing = Http(port_, http::verb::get, "/no/such/path");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, "{\"detail\":\"Not Found\"}");
  HttpResult wrong_method = Http(port_, http::verb::get, "/api/run");
  EXPECT_EQ(wrong_method.status, 405);
}

TEST_F(EmulatorTest, RunValidationErrorsAre422) {
  StartEmulator();
  HttpResult fixture = Http(port_, http::verb::post, "/api/run",
                            "{\"session_id\":\"9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21\"}", true);
  EXPECT_EQ(fixture.status, 422);
  EXPECT_EQ(fixture.body,
            "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"question\"],\"msg\":\"Field "
            "required\",\"input\":{\"session_id\":\"9f2c6a1e-4b7d-4c2a-9e15-3d8f0b6a7c21\"}}]}");
  for (const char* body : {"{\"session_id\":\"s\",\"question\":5}",
                           "{\"session_id\":\"s\",\"question\":\"q\",\"length_words\":0}",
                           "{\"session_id\":\"s\",\"question\":\"q\",\"length_words\":100001}",
                           "{\"session_id\":\"s\",\"question\":\"q\",\"length_words\":1.5}",
                           "{\"session_id\":\"s\",\"question\":\"q\",\"token_delay_seconds\":\"x\"}",
                           "{\"session_id\":\"s\",\"question\":\"q\",\"token_delay_seconds\":60.5}",
                           "not json", ""}) {
    HttpResult r = Http(port_, http::verb::post, "/api/run", body, true);
    EXPECT_EQ(r.status, 422) << body;
    EXPECT_EQ(r.body.rfind("{\"detail\":[{\"type\":", 0), 0u) << r.body;
  }
  // A run for a session nobody listens to still answers 200.
  HttpResult unknown =
      Http(port_, http::verb::post, "/api/run", "{\"session_id\":\"nobody\",\"question\":\"q\"}", true);
  EXPECT_EQ(unknown.status, 200);
  EXPECT_EQ(unknown.body.rfind("{\"response\":\"", 0), 0u);
}

TEST_F(EmulatorTest, RunStreamsEveryTokenInOrderThenDone) {
  StartEmulator();
  const Session s = CreateSession();
  WsClient ws;
  ASSERT_NO_FATAL_FAILURE(ConnectSession(&ws, s));
  const std::string channel = "session:" + s.id;

  const auto start = std::chrono::steady_clock::now();
  HttpResult run = Http(port_, http::verb::post, "/api/run",
                        "{\"session_id\":\"" + s.id +
                            "\",\"question\":\"Question 1 from client 0\",\"length_words\":50,"
                            "\"token_delay_seconds\":0.005}",
                        true);
  ASSERT_EQ(run.status, 200) << run.body;
  const std::string text(json::parse(run.body).at("response").as_string());
  const std::vector<std::string> words = absl::StrSplit(text, ' ');
  ASSERT_EQ(words.size(), 50u);
  EXPECT_TRUE(words.front()[0] >= 'A' && words.front()[0] <= 'Z');
  EXPECT_EQ(words.back().back(), '.');

  const std::vector<Publication> pubs = ReadRun(&ws, channel);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(pubs.size(), 51u);
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(pubs[i].token, words[i]) << i;
    EXPECT_FALSE(pubs[i].done);
  }
  EXPECT_TRUE(pubs[50].done);
  for (size_t i = 0; i < pubs.size(); ++i) {
    EXPECT_EQ(pubs[i].offset, i + 1);
  }
  // 50 delays of 5 ms: at least 250 ms, and not wildly more on a busy box.
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));
  EXPECT_LT(elapsed, std::chrono::seconds(5));

  // A second run on the same socket continues the channel's offsets, and
  // the same question gives the same text (a pure function of the seed).
  HttpResult again = Http(port_, http::verb::post, "/api/run",
                          "{\"session_id\":\"" + s.id +
                              "\",\"question\":\"Question 1 from client 0\",\"length_words\":50,"
                              "\"token_delay_seconds\":0}",
                          true);
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(again.body, run.body);
  const std::vector<Publication> second = ReadRun(&ws, channel);
  ASSERT_EQ(second.size(), 51u);
  EXPECT_EQ(second.front().offset, 52u);
  EXPECT_EQ(second.back().offset, 102u);
}

TEST_F(EmulatorTest, ManyConcurrentSessionsGetTheirOwnStreams) {
  StartEmulator();
  constexpr int kSessions = 200;
  std::vector<Session> sessions;
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < kSessions; ++i) {
    sessions.push_back(CreateSession());
    clients.push_back(std::make_unique<WsClient>());
    ASSERT_NO_FATAL_FAILURE(ConnectSession(clients.back().get(), sessions.back()));
  }
  std::vector<std::string> texts;
  for (int i = 0; i < kSessions; ++i) {
    HttpResult r = Http(port_, http::verb::post, "/api/run",
                        "{\"session_id\":\"" + sessions[i].id + "\",\"question\":\"Question 1 from client " +
                            std::to_string(i) + "\",\"length_words\":20,\"token_delay_seconds\":0.001}",
                        true);
    ASSERT_EQ(r.status, 200);
    texts.emplace_back(json::parse(r.body).at("response").as_string());
  }
  for (int i = 0; i < kSessions; ++i) {
    const std::vector<Publication> pubs = ReadRun(clients[i].get(), "session:" + sessions[i].id);
    ASSERT_EQ(pubs.size(), 21u) << i;
    std::string joined;
    for (size_t k = 0; k < 20; ++k) {
      joined += (k > 0 ? " " : "") + pubs[k].token;
      EXPECT_EQ(pubs[k].offset, k + 1);
    }
    EXPECT_EQ(joined, texts[i]) << i;
  }
}

TEST_F(EmulatorTest, BadTokenClosesWith3500) {
  StartEmulator();
  WsClient ws;
  ASSERT_TRUE(ws.Connect(port_));
  ASSERT_TRUE(ws.Send(ConnectFrame(kBadSignatureToken, kFixtureChannel)));
  WsClient::Message m;
  ASSERT_TRUE(ws.ReadClose(&m));
  EXPECT_EQ(m.close_code, 3500);
  EXPECT_EQ(m.close_reason, "invalid token");
}

TEST_F(EmulatorTest, ExpiredTokenGetsError109) {
  StartEmulator();
  WsClient ws;
  ASSERT_TRUE(ws.Connect(port_));
  ASSERT_TRUE(ws.Send(ConnectFrame(kExpiredToken, kFixtureChannel)));
  WsClient::Message m;
  ASSERT_TRUE(ws.Read(&m));
  ASSERT_FALSE(m.closed);
  EXPECT_EQ(m.text, "{\"id\":1,\"error\":{\"code\":109,\"message\":\"token expired\"}}");
}

TEST_F(EmulatorTest, ProtocolViolationsClose3501) {
  StartEmulator();
  for (const char* frame : {"{\"subscribe\":{\"channel\":\"session:x\"},\"id\":1}", "this is not json"}) {
    WsClient ws;
    ASSERT_TRUE(ws.Connect(port_));
    ASSERT_TRUE(ws.Send(frame));
    WsClient::Message m;
    ASSERT_TRUE(ws.ReadClose(&m)) << frame;
    EXPECT_EQ(m.close_code, 3501) << frame;
    EXPECT_EQ(m.close_reason, "bad request") << frame;
  }
}

TEST_F(EmulatorTest, OversizedMessageCloses1009) {
  StartEmulator();
  WsClient ws;
  ASSERT_TRUE(ws.Connect(port_));
  // 200 KiB declared against the 64 KiB default limit.
  ASSERT_TRUE(ws.SendTruncatedFrame(200 * 1024, 16));
  WsClient::Message m;
  ASSERT_TRUE(ws.ReadClose(&m));
  EXPECT_EQ(m.close_code, 1009);
}

TEST_F(EmulatorTest, PingsAreAnsweredOrTheConnectionCloses3012) {
  StartEmulator({"--ping_interval_seconds=0.3", "--pong_timeout_seconds=0.2"});
  const Session s = CreateSession();
  WsClient ws;
  ASSERT_NO_FATAL_FAILURE(ConnectSession(&ws, s));
  // Answered pings keep the connection open.
  for (int i = 0; i < 3; ++i) {
    WsClient::Message m;
    ASSERT_TRUE(ws.Read(&m, std::chrono::seconds(3)));
    ASSERT_FALSE(m.closed) << m.close_code;
    EXPECT_EQ(m.text, "{}");
    ASSERT_TRUE(ws.Send("{}"));
  }
  // An unanswered one does not.
  const auto start = std::chrono::steady_clock::now();
  WsClient::Message m;
  ASSERT_TRUE(ws.Read(&m, std::chrono::seconds(3)));
  ASSERT_FALSE(m.closed);
  EXPECT_EQ(m.text, "{}");
  ASSERT_TRUE(ws.ReadClose(&m));
  EXPECT_EQ(m.close_code, 3012);
  EXPECT_EQ(m.close_reason, "no pong");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(EmulatorTest, SigtermClosesSocketsAndExitsZero) {
  StartEmulator();
  const Session s = CreateSession();
  WsClient ws;
  ASSERT_NO_FATAL_FAILURE(ConnectSession(&ws, s));
  int status = -1;
  std::thread stopper([&] { status = process_->Stop(absl::Seconds(10)); });
  WsClient::Message m;
  const bool read = ws.ReadClose(&m);
  stopper.join();
  ASSERT_TRUE(read);
  EXPECT_EQ(m.close_code, 3001);
  EXPECT_EQ(m.close_reason, "shutdown");
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(process_->ReadLog().find("Emulator stopped."), std::string::npos);
}

// --processes: one port, several processes, the kernel spreading connections
// over them; each process answers /stats for itself.
TEST_F(EmulatorTest, ProcessesShareOnePort) {
  StartEmulator({"--processes=3", "--threads=1"});
  const std::vector<pid_t> pids = GroupPids();
  ASSERT_EQ(pids.size(), 3u) << ListeningLine();
  std::map<int64_t, testing_util::EmulatorStats> by_pid;
  ASSERT_TRUE(testing_util::CollectEmulatorStats(port_, 3, absl::Seconds(20), &by_pid));
  ASSERT_EQ(by_pid.size(), 3u);
  std::set<int32_t> indices;
  for (const auto& [pid, stats] : by_pid) {
    EXPECT_NE(pid, process_->pid()) << "the supervisor serves nothing";
    EXPECT_NE(std::find(pids.begin(), pids.end(), static_cast<pid_t>(pid)), pids.end()) << pid;
    EXPECT_EQ(stats.processes, 3);
    EXPECT_GE(stats.connections_accepted, 1u);
    indices.insert(stats.process);
  }
  EXPECT_EQ(indices, (std::set<int32_t>{0, 1, 2}));
  const std::string log = process_->ReadLog();
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(log.find("INFO emulator[" + std::to_string(i) + "] Emulator process listening. [process=" +
                       std::to_string(i) + ", pid="),
              std::string::npos)
        << log;
  }
  EXPECT_NE(log.find("INFO emulator Emulator listening."), std::string::npos) << log;
  EXPECT_EQ(Field(ListeningLine(), "processes"), "3");
}

// A Centrifugo session's WebSocket lives in one process; /api/run may reach
// any: it is relayed to the subscriber's process and streamed there.
TEST_F(EmulatorTest, GroupRelaysRunsToTheSubscribersProcess) {
  StartEmulator({"--processes=3", "--threads=1"});
  const Session s = CreateSession();
  WsClient ws;
  ASSERT_NO_FATAL_FAILURE(ConnectSession(&ws, s));
  const std::string channel = "session:" + s.id;
  // One keep-alive connection into each process.
  std::map<int64_t, std::unique_ptr<HttpConnection>> by_pid;
  ASSERT_TRUE(testing_util::WaitUntil(
      [&] {
        auto c = std::make_unique<HttpConnection>();
        if (!c->Connect(port_)) {
          return false;
        }
        const auto stats = testing_util::ParseEmulatorStats(c->Request(http::verb::get, "/stats").body);
        if (stats.has_value() && !by_pid.contains(stats->pid)) {
          by_pid[stats->pid] = std::move(c);
        }
        return by_pid.size() == 3;
      },
      absl::Seconds(20), "a connection into each process", absl::Milliseconds(1)));
  uint64_t offset = 0;
  for (auto& [pid, conn] : by_pid) {
    HttpResult run = conn->Request(
        http::verb::post, "/api/run",
        "{\"session_id\":\"" + s.id + "\",\"question\":\"q" + std::to_string(pid) +
            "\",\"length_words\":5,\"token_delay_seconds\":0.001}",
        true);
    ASSERT_EQ(run.status, 200) << run.ec.message() << " " << run.body;
    const std::vector<std::string> words =
        absl::StrSplit(std::string(json::parse(run.body).at("response").as_string()), ' ');
    const std::vector<Publication> pubs = ReadRun(&ws, channel);
    ASSERT_EQ(pubs.size(), 6u) << "run answered by pid " << pid;
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_EQ(pubs[i].token, words[i]) << pid;
    }
    // Every run lands in the one channel of the subscriber's process.
    for (const Publication& p : pubs) {
      EXPECT_EQ(p.offset, ++offset);
    }
  }
  // Two of the three runs came in away from the subscriber: each was sent
  // to both siblings and streamed by exactly one. The sibling without the
  // subscriber reads its copy on its own time: wait for it.
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t started = 0;
  uint64_t runs = 0;
  EXPECT_TRUE(testing_util::WaitUntil(
      [&] {
        sent = received = started = runs = 0;
        for (auto& [pid, conn] : by_pid) {
          const auto stats =
              testing_util::ParseEmulatorStats(conn->Request(http::verb::get, "/stats").body);
          if (!stats.has_value() || stats->pid != pid) {
            return false;
          }
          sent += stats->relayed_sent;
          received += stats->relayed_received;
          started += stats->relayed_started;
          runs += stats->RequestsOf("CENTRIFUGO_EMULATOR");
        }
        return received >= 4;
      },
      absl::Seconds(10), "both siblings reading each relayed run"));
  EXPECT_EQ(runs, 3u);
  EXPECT_EQ(sent, 2u);
  EXPECT_EQ(received, 4u);
  EXPECT_EQ(started, 2u);
}

TEST_F(EmulatorTest, ManySessionsStreamAcrossAGroupOfProcesses) {
  StartEmulator({"--processes=3", "--threads=1"});
  constexpr int kSessions = 60;
  std::vector<Session> sessions;
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < kSessions; ++i) {
    sessions.push_back(CreateSession());
    clients.push_back(std::make_unique<WsClient>());
    ASSERT_NO_FATAL_FAILURE(ConnectSession(clients.back().get(), sessions.back()));
  }
  std::vector<std::string> texts;
  for (int i = 0; i < kSessions; ++i) {
    HttpResult r = Http(port_, http::verb::post, "/api/run",
                        "{\"session_id\":\"" + sessions[i].id + "\",\"question\":\"Question " +
                            std::to_string(i) + "\",\"length_words\":10,\"token_delay_seconds\":0.001}",
                        true);
    ASSERT_EQ(r.status, 200);
    texts.emplace_back(json::parse(r.body).at("response").as_string());
  }
  for (int i = 0; i < kSessions; ++i) {
    const std::vector<Publication> pubs = ReadRun(clients[i].get(), "session:" + sessions[i].id);
    ASSERT_EQ(pubs.size(), 11u) << i;
    std::string joined;
    for (size_t k = 0; k < 10; ++k) {
      joined += (k > 0 ? " " : "") + pubs[k].token;
    }
    EXPECT_EQ(joined, texts[i]) << i;
  }
  std::map<int64_t, testing_util::EmulatorStats> by_pid;
  uint64_t runs = 0;
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t started = 0;
  // A relayed run reaches the sibling without the subscriber on its own
  // time: wait until every copy is read.
  EXPECT_TRUE(testing_util::WaitUntil(
      [&] {
        if (!testing_util::CollectEmulatorStats(port_, 3, absl::Seconds(5), &by_pid)) {
          return false;
        }
        runs = sent = received = started = 0;
        for (const auto& [pid, stats] : by_pid) {
          runs += stats.RequestsOf("CENTRIFUGO_EMULATOR");
          sent += stats.relayed_sent;
          received += stats.relayed_received;
          started += stats.relayed_started;
        }
        return received >= 2 * sent;
      },
      absl::Seconds(20), "every relayed run read by both siblings"));
  EXPECT_EQ(by_pid.size(), 3u);
  EXPECT_EQ(runs, static_cast<uint64_t>(kSessions));
  // Each relayed run went to both siblings and was streamed exactly once.
  EXPECT_EQ(received, 2 * sent);
  EXPECT_EQ(started, sent);
}

TEST_F(EmulatorTest, GroupOnPortZeroSharesOneConcretePort) {
  log_path_ = testing_util::MakeTempDir("emulator_test") + "/emulator.log";
  process_ = ChildProcess::Start(
      BinPath("llmload-emulator"),
      {"--host=127.0.0.1", "--port=0", "--processes=2", "--threads=1", "--tls_port=0"}, log_path_);
  ASSERT_NE(process_, nullptr);
  const std::string line = ListeningLine();
  ASSERT_TRUE(absl::SimpleAtoi(Field(line, "port"), &port_)) << line;
  ASSERT_GT(port_, 0);
  std::map<int64_t, testing_util::EmulatorStats> by_pid;
  ASSERT_TRUE(testing_util::CollectEmulatorStats(port_, 2, absl::Seconds(20), &by_pid));
  EXPECT_EQ(by_pid.size(), 2u);
  const std::string log = process_->ReadLog();
  for (const char* who : {"emulator[0]", "emulator[1]"}) {
    const size_t at = log.find(std::string(who) + " Emulator process listening.");
    ASSERT_NE(at, std::string::npos) << log;
    EXPECT_EQ(Field(log.substr(at, log.find('\n', at) - at), "port"), std::to_string(port_)) << who;
  }
}

TEST_F(EmulatorTest, GroupStopsOnSigtermAndExitsZero) {
  StartEmulator({"--processes=2", "--threads=1"});
  const std::vector<pid_t> pids = GroupPids();
  ASSERT_EQ(pids.size(), 2u);
  const Session s = CreateSession();
  WsClient ws;
  ASSERT_NO_FATAL_FAILURE(ConnectSession(&ws, s));
  int status = -1;
  std::thread stopper([&] { status = process_->Stop(absl::Seconds(20)); });
  WsClient::Message m;
  const bool read = ws.ReadClose(&m);
  stopper.join();
  ASSERT_TRUE(read);
  EXPECT_EQ(m.close_code, 3001);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (pid_t pid : pids) {
    EXPECT_TRUE(Gone(pid)) << pid;
  }
  const std::string log = process_->ReadLog();
  EXPECT_NE(log.find("emulator[0] Emulator stopped."), std::string::npos) << log;
  EXPECT_NE(log.find("emulator[1] Emulator stopped."), std::string::npos) << log;
  EXPECT_NE(log.find("INFO emulator Emulator stopped. [exit_code=0]"), std::string::npos) << log;
}

TEST_F(EmulatorTest, GroupStopsWhenOneProcessDies) {
  StartEmulator({"--processes=2", "--threads=1"});
  const std::vector<pid_t> pids = GroupPids();
  ASSERT_EQ(pids.size(), 2u);
  ASSERT_EQ(::kill(pids[1], SIGKILL), 0);
  EXPECT_EQ(process_->Wait(absl::Seconds(20)), 1);
  EXPECT_TRUE(Gone(pids[0]));
  EXPECT_TRUE(Gone(pids[1]));
  const std::string log = process_->ReadLog();
  EXPECT_NE(log.find("Emulator process ended unexpectedly; stopping the group. [process=1, pid=" +
                     std::to_string(pids[1]) + ", status=was killed by signal 9 (SIGKILL)]"),
            std::string::npos)
      << log;
}

// SIGTERM to one process (Ctrl-C reaches every process of the terminal's
// group, the supervisor's children too): the group stops cleanly, exit 0.
TEST_F(EmulatorTest, GroupStopsCleanlyWhenOneProcessIsStopped) {
  StartEmulator({"--processes=2", "--threads=1"});
  const std::vector<pid_t> pids = GroupPids();
  ASSERT_EQ(pids.size(), 2u);
  ASSERT_EQ(::kill(pids[0], SIGTERM), 0);
  EXPECT_EQ(process_->Wait(absl::Seconds(20)), 0);
  EXPECT_TRUE(Gone(pids[0]));
  EXPECT_TRUE(Gone(pids[1]));
  const std::string log = process_->ReadLog();
  EXPECT_NE(log.find("Emulator process stopped; stopping the group. [process=0, pid=" +
                     std::to_string(pids[0]) + "]"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("unexpectedly"), std::string::npos) << log;
  EXPECT_NE(log.find("INFO emulator Emulator stopped. [exit_code=0]"), std::string::npos) << log;
}

TEST_F(EmulatorTest, GroupWithABadConfigFailsOnceBeforeStarting) {
  log_path_ = testing_util::MakeTempDir("emulator_test") + "/emulator.log";
  process_ = ChildProcess::Start(BinPath("llmload-emulator"),
                                 {"--host=127.0.0.1", "--port=0", "--processes=2",
                                  "--realm_api_keys_file=/nonexistent/keys"},
                                 log_path_);
  ASSERT_NE(process_, nullptr);
  EXPECT_EQ(process_->Wait(absl::Seconds(20)), 2);
  const std::string log = process_->ReadLog();
  EXPECT_NE(log.find("realm_api_keys_file: cannot read"), std::string::npos) << log;
  EXPECT_EQ(log.find("Emulator process listening."), std::string::npos) << log;
}

}  // namespace
}  // namespace llmload
