// TargetScraper against a small HTTP server on 127.0.0.1: scrapes on its
// interval, one last scrape on Stop, and failures counted, never kept.

#include "services/collector/target_scraper.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/read_until.hpp"
#include "boost/asio/streambuf.hpp"
#include "boost/asio/write.hpp"
#include "gtest/gtest.h"
#include "tests/testing/mono_clock.h"

namespace llmload::collector {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Answers each connection with respond(n), n the 1-based number of the
// request; an empty answer leaves the connection open, unanswered, until
// the server stops.
class TinyHttpServer {
 public:
  explicit TinyHttpServer(std::function<std::string(int)> respond)
      : acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)),
        respond_(std::move(respond)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~TinyHttpServer() {
    stopping_ = true;
    boost::system::error_code ec;
    // Wake the accept up with a connection of our own.
    tcp::socket poke(ioc_);
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  int served() const { return served_.load(); }

 private:
  void Loop() {
    std::vector<tcp::socket> held;
    while (true) {
      tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopping_) {
        return;
      }
      net::streambuf request;
      net::read_until(socket, request, "\r\n\r\n", ec);
      if (ec) {
        continue;
      }
      const std::string answer = respond_(served_.load() + 1);
      if (answer.empty()) {
        held.push_back(std::move(socket));
        continue;
      }
      ++served_;
      net::write(socket, net::buffer(answer), ec);
    }
  }

  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::function<std::string(int)> respond_;
  std::atomic<int> served_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

std::string Ok(const std::string& body) {
  return absl::StrCat("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ",
                      body.size(), "\r\nConnection: close\r\n\r\n", body);
}

v1::TargetMetrics Spec(int port, const std::string& path, int interval_ms) {
  v1::TargetMetrics spec;
  spec.set_url(absl::StrCat("http://127.0.0.1:", port, path));
  spec.add_series("hits_total");
  spec.mutable_interval()->set_nanos(interval_ms * 1000000);
  return spec;
}

v1::TargetScrapeReply StopAndWait(TargetScraper& scraper, const std::string& run_id) {
  absl::Notification done;
  v1::TargetScrapeReply reply;
  scraper.Stop(run_id, [&](v1::TargetScrapeReply r) {
    reply = std::move(r);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  return reply;
}

TEST(TargetScraperTest, ScrapesOnItsIntervalAndOnceMoreOnStop) {
  TinyHttpServer server([](int n) {
    return Ok(absl::StrCat("# TYPE hits_total counter\nhits_total ", n, "\nother 1\n"));
  });
  TargetScraper scraper;
  ASSERT_TRUE(scraper.Start("run-1", Spec(server.port(), "/metrics", 100)).ok());
  const absl::Time deadline = testing_util::MonoNow() + absl::Seconds(10);
  while (server.served() < 3 && testing_util::MonoNow() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll, not spin
  }
  ASSERT_GE(server.served(), 3);
  const v1::TargetScrapeReply reply = StopAndWait(scraper, "run-1");
  const int served = server.served();  // no scrape after the stop's answer
  EXPECT_EQ(reply.scrapes(), static_cast<uint64_t>(served));
  EXPECT_EQ(reply.failures(), 0u);

  v1::RunStats stats;
  ASSERT_TRUE(scraper.Fill("run-1", &stats));
  ASSERT_EQ(stats.target_series_size(), 1);
  const v1::TargetSeries& s = stats.target_series(0);
  EXPECT_EQ(s.name(), "hits_total");
  EXPECT_EQ(s.type(), "counter");
  EXPECT_EQ(s.value(), served);
  EXPECT_EQ(s.min(), 1);
  EXPECT_EQ(s.samples(), static_cast<uint64_t>(served));
  EXPECT_EQ(s.increase(), served - 1);
  EXPECT_EQ(server.served(), served);

  // A stopped run answers another stop at once with the same counts.
  EXPECT_EQ(StopAndWait(scraper, "run-1").scrapes(), static_cast<uint64_t>(served));
  EXPECT_FALSE(scraper.Fill("never-scraped", &stats));
  EXPECT_EQ(StopAndWait(scraper, "never-scraped").scrapes(), 0u);
}

TEST(TargetScraperTest, FailedScrapesAreCountedAndKeepNothing) {
  TinyHttpServer server([](int n) {
    if (n % 2 == 1) {
      return std::string("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    return Ok("hits_total{a=\"b} 1\n");  // not the text format
  });
  TargetScraper scraper;
  ASSERT_TRUE(scraper.Start("run-2", Spec(server.port(), "/x?y=1", 100)).ok());
  const absl::Time deadline = testing_util::MonoNow() + absl::Seconds(10);
  while (server.served() < 2 && testing_util::MonoNow() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll, not spin
  }
  const v1::TargetScrapeReply reply = StopAndWait(scraper, "run-2");
  EXPECT_EQ(reply.scrapes(), 0u);
  EXPECT_EQ(reply.failures(), static_cast<uint64_t>(server.served()));
  EXPECT_GE(reply.failures(), 3u);
  v1::RunStats stats;
  ASSERT_TRUE(scraper.Fill("run-2", &stats));
  EXPECT_EQ(stats.target_series_size(), 0);
}

TEST(TargetScraperTest, AnUnansweredScrapeTimesOut) {
  TinyHttpServer server([](int) { return std::string(); });  // never answers
  TargetScraper::Options options;
  options.timeout = absl::Milliseconds(150);
  TargetScraper scraper(options);
  ASSERT_TRUE(scraper.Start("run-3", Spec(server.port(), "/metrics", 1000)).ok());
  const v1::TargetScrapeReply reply = StopAndWait(scraper, "run-3");
  EXPECT_EQ(reply.scrapes(), 0u);
  EXPECT_GE(reply.failures(), 1u);
  EXPECT_EQ(reply.last_error(), "no complete answer within 150ms");
}

TEST(TargetScraperTest, ResolvedAddressesMustPassTheAllowList) {
  TinyHttpServer server([](int) { return Ok("hits_total 1\n"); });
  TargetScraper scraper;
  // localhost is allowed by the default list and resolves to loopback.
  v1::TargetMetrics spec = Spec(server.port(), "/metrics", 100);
  spec.set_url(absl::StrCat("http://localhost:", server.port(), "/metrics"));
  spec.mutable_interval()->set_seconds(30);  // no scrape on the interval here
  spec.mutable_interval()->set_nanos(0);
  ASSERT_TRUE(scraper.Start("run-5", spec, "default").ok());
  EXPECT_EQ(StopAndWait(scraper, "run-5").scrapes(), 2u);  // the first and the last

  // A list without loopback: nothing is fetched.
  ASSERT_TRUE(scraper.Start("run-6", spec, "10.0.0.0/8").ok());
  const v1::TargetScrapeReply reply = StopAndWait(scraper, "run-6");
  EXPECT_EQ(reply.scrapes(), 0u);
  EXPECT_EQ(reply.failures(), 2u);
  EXPECT_NE(reply.last_error().find("target host \"localhost\" is not allowed"),
            std::string::npos)
      << reply.last_error();
  EXPECT_EQ(server.served(), 2);

  EXPECT_EQ(scraper.Start("run-7", spec, "not a list!").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TargetScraperTest, RefusesSelectorsThatDoNotParse) {
  TargetScraper scraper;
  v1::TargetMetrics spec = Spec(1, "/metrics", 100);
  spec.add_series("bad{");
  const absl::Status s = scraper.Start("run-4", spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().substr(0, 22), "targetMetrics.series[1");
}

}  // namespace
}  // namespace llmload::collector
