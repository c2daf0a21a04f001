// emulator_bench: a lean load client for bench/emulator_bench.py. Opens C
// sessions against one protocol of llmload-emulator (or the peerbench
// reference server's /ws), runs K request cycles of N tokens each with a
// gap of D ms, counts token messages, and prints one JSON line:
//   {"protocol":…,"tokens":…,"sessions_complete":…,"errors":…,"wall_s":…}
//
//   emulator_bench PROTOCOL PORT SESSIONS TOKENS DELAY_MS CYCLES [PATH]
//   PROTOCOL: openai | anthropic | gemini | http_json | realm | ws_chat | centrifugo
//
// Single-threaded (one io_context, C++20 coroutines). Built by
// emulator_bench.py with g++ (header-only Asio/Beast).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using net::awaitable;
using net::use_awaitable;

struct Options {
  std::string protocol;
  uint16_t port = 0;
  int sessions = 0;
  int tokens = 0;
  int delay_ms = 0;
  int cycles = 1;
  std::string path;
};

struct Totals {
  long long tokens = 0;
  int complete = 0;
  int errors = 0;
};

// Counts `marker` in a byte stream split anywhere; notices `end`.
class Scanner {
 public:
  Scanner(std::string_view marker, std::string_view end) : marker_(marker), end_(end) {}
  void Feed(std::string_view data) {
    std::string window = carry_;
    window.append(data);
    size_t pos = 0;
    while ((pos = window.find(marker_, pos)) != std::string::npos) {
      if (pos + marker_.size() > carry_.size()) {
        ++count_;
      }
      pos += marker_.size();
    }
    if (window.find(end_) != std::string::npos) {
      ended_ = true;
    }
    const size_t keep = std::max(marker_.size(), end_.size());
    carry_ = window.size() > keep ? window.substr(window.size() - keep) : window;
  }
  long long count() const { return count_; }
  bool ended() const { return ended_; }

 private:
  std::string marker_;
  std::string end_;
  std::string carry_;
  long long count_ = 0;
  bool ended_ = false;
};

std::string HttpRequest(const Options& o, std::string_view target, const std::string& body,
                        bool extension_headers) {
  std::string r = "POST " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  r += "Content-Type: application/json\r\n";
  if (extension_headers) {
    r += "x-llmload-length-words: " + std::to_string(o.tokens) + "\r\n";
    r += "x-llmload-token-delay-ms: " + std::to_string(o.delay_ms) + "\r\n";
  }
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return r;
}

awaitable<void> SseSession(const Options& o, Totals& t, int id) {
  tcp::socket s(co_await net::this_coro::executor);
  co_await s.async_connect({net::ip::make_address("127.0.0.1"), o.port}, use_awaitable);
  s.set_option(tcp::no_delay(true));
  std::string target;
  std::string body;
  std::string marker;
  const std::string prompt = "bench " + std::to_string(id);
  if (o.protocol == "openai") {
    target = "/v1/chat/completions";
    body = R"({"model":"m","messages":[{"role":"user","content":")" + prompt +
           R"("}],"stream":true})";
    marker = "\"delta\":{\"content\"";
  } else if (o.protocol == "anthropic") {
    target = "/v1/messages";
    body = R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":")" + prompt +
           R"("}],"stream":true})";
    marker = "event: content_block_delta";
  } else if (o.protocol == "gemini") {
    target = "/v1beta/models/g:streamGenerateContent?alt=sse";
    body = R"({"contents":[{"parts":[{"text":")" + prompt + R"("}]}]})";
    marker = "data: {\"candidates\"";
  } else {  // http_json: one response per request; a token = a word
    target = "/v1/generate";
    body = R"({"prompt":")" + prompt + R"("})";
    marker = "\"completion_tokens\":";
  }
  const std::string request = HttpRequest(o, target, body, true);
  std::string buf(64 * 1024, '\0');
  for (int c = 0; c < o.cycles; ++c) {
    co_await net::async_write(s, net::buffer(request), use_awaitable);
    Scanner scan(marker, o.protocol == "http_json" ? "}}" : "\r\n0\r\n\r\n");
    while (!scan.ended()) {
      const size_t n = co_await s.async_read_some(net::buffer(buf), use_awaitable);
      scan.Feed(std::string_view(buf.data(), n));
    }
    t.tokens += o.protocol == "http_json" ? o.tokens : scan.count();
  }
  ++t.complete;
}

awaitable<void> WsSession(const Options& o, Totals& t, int id) {
  websocket::stream<beast::tcp_stream> ws(co_await net::this_coro::executor);
  co_await beast::get_lowest_layer(ws).async_connect(
      tcp::endpoint{net::ip::make_address("127.0.0.1"), o.port}, use_awaitable);
  beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true));
  const std::string path =
      !o.path.empty() ? o.path : (o.protocol == "realm" ? "/realm" : "/ws");
  co_await ws.async_handshake("127.0.0.1", path, use_awaitable);
  ws.text(true);
  beast::flat_buffer buffer;
  auto read = [&]() -> awaitable<std::string_view> {
    buffer.clear();
    co_await ws.async_read(buffer, use_awaitable);
    co_return std::string_view(static_cast<const char*>(buffer.data().data()), buffer.size());
  };
  (void)co_await read();  // welcome / connected status
  for (int c = 0; c < o.cycles; ++c) {
    std::string msg;
    if (o.protocol == "realm") {
      msg = R"({"id":"c)" + std::to_string(c) +
            R"(","function":"generate","params":{"prompt":"bench )" + std::to_string(id) +
            R"(","max_tokens":)" + std::to_string(o.tokens) + R"(,"stream":true,"token_delay_ms":)" +
            std::to_string(o.delay_ms) + "}}";
    } else {
      msg = R"({"type":"user_message","id":"m1","data":{"text":"hello","options":{"maxTokens":)" +
            std::to_string(o.tokens) + R"(,"tokenDelayMs":)" + std::to_string(o.delay_ms) + "}}}";
    }
    co_await ws.async_write(net::buffer(msg), use_awaitable);
    for (;;) {
      const std::string_view m = co_await read();
      const std::string_view head = m.substr(0, 48);
      if (o.protocol == "realm") {
        if (m.find("\"status\":\"streaming\"") != std::string_view::npos) {
          ++t.tokens;
        } else if (m.find("\"status\":\"complete\"") != std::string_view::npos) {
          break;
        } else {
          throw std::runtime_error(std::string(m));
        }
      } else if (head.find("llm_chunk") != std::string_view::npos) {
        ++t.tokens;
      } else if (head.find("llm_complete") != std::string_view::npos) {
        break;
      }
    }
  }
  co_await ws.async_close(websocket::close_code::normal, use_awaitable);
  ++t.complete;
}

std::string JsonField(std::string_view body, std::string_view key) {
  const std::string k = "\"" + std::string(key) + "\":\"";
  const size_t p = body.find(k);
  if (p == std::string_view::npos) {
    return "";
  }
  const size_t e = body.find('"', p + k.size());
  return std::string(body.substr(p + k.size(), e - p - k.size()));
}

awaitable<void> CentrifugoSession(const Options& o, Totals& t, int id) {
  auto ex = co_await net::this_coro::executor;
  beast::tcp_stream rest(ex);
  co_await rest.async_connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), o.port},
                              use_awaitable);
  beast::flat_buffer http_buffer;
  auto post = [&](std::string target, std::string body) -> awaitable<std::string> {
    http::request<http::string_body> req(http::verb::post, target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
    req.prepare_payload();
    co_await http::async_write(rest, req, use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(rest, http_buffer, res, use_awaitable);
    co_return res.body();
  };
  const std::string created = co_await post("/api/sessions/create", "");
  const std::string session = JsonField(created, "session_id");
  const std::string token = JsonField(created, "token");
  websocket::stream<beast::tcp_stream> ws(ex);
  co_await beast::get_lowest_layer(ws).async_connect(
      tcp::endpoint{net::ip::make_address("127.0.0.1"), o.port}, use_awaitable);
  beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true));
  co_await ws.async_handshake("127.0.0.1", "/connection/websocket", use_awaitable);
  ws.text(true);
  const std::string connect = R"({"connect":{"token":")" + token + R"(","name":"js"},"id":1})";
  co_await ws.async_write(net::buffer(connect), use_awaitable);
  beast::flat_buffer buffer;
  co_await ws.async_read(buffer, use_awaitable);  // connect reply
  for (int c = 0; c < o.cycles; ++c) {
    char body[256];
    std::snprintf(body, sizeof(body),
                  R"({"session_id":"%s","question":"Question %d from client %d","length_words":%d,"token_delay_seconds":%.6f})",
                  session.c_str(), c, id, o.tokens, o.delay_ms / 1000.0);
    (void)co_await post("/api/run", body);
    bool done = false;
    while (!done) {
      buffer.clear();
      co_await ws.async_read(buffer, use_awaitable);
      const std::string_view m(static_cast<const char*>(buffer.data().data()), buffer.size());
      if (m == "{}") {
        co_await ws.async_write(net::buffer(std::string("{}")), use_awaitable);
        continue;
      }
      size_t pos = 0;
      while ((pos = m.find("{\"token\":", pos)) != std::string_view::npos) {
        ++t.tokens;
        pos += 9;
      }
      done = m.find("{\"done\":true}") != std::string_view::npos;
    }
  }
  co_await ws.async_close(websocket::close_code::normal, use_awaitable);
  ++t.complete;
}

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr,
                 "usage: emulator_bench PROTOCOL PORT SESSIONS TOKENS DELAY_MS CYCLES [PATH]\n");
    return 2;
  }
  Options o;
  o.protocol = argv[1];
  o.port = static_cast<uint16_t>(std::atoi(argv[2]));
  o.sessions = std::atoi(argv[3]);
  o.tokens = std::atoi(argv[4]);
  o.delay_ms = std::atoi(argv[5]);
  o.cycles = std::atoi(argv[6]);
  if (argc > 7) {
    o.path = argv[7];
  }
  net::io_context ioc(1);
  Totals t;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < o.sessions; ++i) {
    auto on_done = [&t](std::exception_ptr e) {
      if (e) {
        ++t.errors;
      }
    };
    if (o.protocol == "realm" || o.protocol == "ws_chat") {
      net::co_spawn(ioc, WsSession(o, t, i), on_done);
    } else if (o.protocol == "centrifugo") {
      net::co_spawn(ioc, CentrifugoSession(o, t, i), on_done);
    } else {
      net::co_spawn(ioc, SseSession(o, t, i), on_done);
    }
  }
  ioc.run();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "{\"protocol\":\"%s\",\"tokens\":%lld,\"sessions_complete\":%d,\"errors\":%d,"
      "\"wall_s\":%.3f}\n",
      o.protocol.c_str(), t.tokens, t.complete, t.errors, wall);
  return t.errors == 0 && t.complete == o.sessions ? 0 : 1;
}
