#include "services/collector/target_scraper.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/beast/core/bind_handler.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/http.hpp"
#include "boost/url/parse.hpp"
#include "lib/common/log.h"
#include "lib/common/redact.h"
#include "lib/metrics/prom_text.h"

namespace llmload::collector {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct TargetScraper::Run {
  explicit Run(net::io_context& ioc) : timer(ioc) {}

  std::string id;
  std::string url;  // as given; logged only through RedactUrl
  bool https = false;
  std::string host;  // without the brackets of an IPv6 literal
  std::string host_header;
  std::string port;
  std::string target;
  absl::Duration interval;
  absl::Duration timeout;
  validation::TargetPolicy policy = validation::TargetPolicy::Default();
  net::steady_timer timer;

  // The scraper thread's.
  bool in_flight = false;
  bool stopping = false;
  bool final_started = false;  // the stop's own scrape
  bool finished = false;
  std::vector<absl::AnyInvocable<void(v1::TargetScrapeReply)>> waiting;
  std::string last_logged_error;

  // Guarded by the scraper's mu_.
  std::unique_ptr<TargetSeriesStore> store;
  uint64_t scrapes = 0;
  uint64_t failures = 0;
  std::string last_error;
};

// One GET under one deadline; `done` runs once, on the scraper thread.
class TargetScraper::ScrapeOp : public std::enable_shared_from_this<ScrapeOp> {
 public:
  using Callback = absl::AnyInvocable<void(absl::Status, std::string)>;

  ScrapeOp(net::io_context& ioc, const Run& run, size_t max_body, Callback done)
      : resolver_(ioc),
        stream_(ioc),
        deadline_(ioc),
        host_(run.host),
        port_(run.port),
        policy_(run.policy),
        timeout_(std::min(run.timeout, run.interval)),
        done_(std::move(done)) {
    request_.method(http::verb::get);
    request_.target(run.target);
    request_.version(11);
    request_.set(http::field::host, run.host_header);
    request_.set(http::field::user_agent, "llmload-collector");
    request_.set(http::field::accept, "text/plain;version=0.0.4");
    request_.set(http::field::connection, "close");
    parser_.body_limit(max_body);
  }

  void Start() {
    deadline_.expires_after(absl::ToChronoNanoseconds(timeout_));
    deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) {
        self->timed_out_ = true;
        self->resolver_.cancel();
        beast::error_code ignored;
        self->stream_.socket().close(ignored);
      }
    });
    resolver_.async_resolve(host_, port_,
                            beast::bind_front_handler(&ScrapeOp::OnResolve, shared_from_this()));
  }

 private:
  void OnResolve(beast::error_code ec, const tcp::resolver::results_type& results) {
    if (ec) {
      return Fail(ec, "resolve");
    }
    std::vector<net::ip::address> addresses;
    for (const auto& entry : results) {
      addresses.push_back(entry.endpoint().address());
    }
    if (absl::Status allowed = policy_.CheckResolved(host_, addresses); !allowed.ok()) {
      deadline_.cancel();
      return Done(std::move(allowed));
    }
    stream_.async_connect(results,
                          beast::bind_front_handler(&ScrapeOp::OnConnect, shared_from_this()));
  }
  void OnConnect(beast::error_code ec, const tcp::endpoint&) {
    if (ec) {
      return Fail(ec, "connect");
    }
    http::async_write(stream_, request_,
                      beast::bind_front_handler(&ScrapeOp::OnWrite, shared_from_this()));
  }
  void OnWrite(beast::error_code ec, size_t) {
    if (ec) {
      return Fail(ec, "write");
    }
    http::async_read(stream_, buffer_, parser_,
                     beast::bind_front_handler(&ScrapeOp::OnRead, shared_from_this()));
  }
  void OnRead(beast::error_code ec, size_t) {
    if (ec) {
      return Fail(ec, "read");
    }
    deadline_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    const http::response<http::string_body>& response = parser_.get();
    if (response.result() != http::status::ok) {
      return Done(absl::UnavailableError(
          absl::StrCat("HTTP ", response.result_int(), " (want 200)")));
    }
    Done(absl::OkStatus(), std::move(parser_.release().body()));
  }
  void Fail(beast::error_code ec, const char* what) {
    deadline_.cancel();
    if (timed_out_) {
      return Done(absl::DeadlineExceededError(
          absl::StrCat("no complete answer within ", absl::FormatDuration(timeout_))));
    }
    Done(absl::UnavailableError(absl::StrCat(what, ": ", ec.message())));
  }
  void Done(absl::Status status, std::string body = {}) {
    if (done_) {
      auto done = std::move(done_);
      done_ = nullptr;
      done(std::move(status), std::move(body));
    }
  }

  tcp::resolver resolver_;
  beast::tcp_stream stream_;
  net::steady_timer deadline_;
  std::string host_;
  std::string port_;
  validation::TargetPolicy policy_;
  absl::Duration timeout_;
  Callback done_;
  bool timed_out_ = false;
  beast::flat_buffer buffer_;
  http::request<http::empty_body> request_;
  http::response_parser<http::string_body> parser_;
};

TargetScraper::TargetScraper(Options options)
    : options_(options), work_(net::make_work_guard(ioc_)) {
  thread_ = std::thread([this] { ioc_.run(); });
}

TargetScraper::~TargetScraper() { Shutdown(); }

absl::Status TargetScraper::Start(const std::string& run_id, const v1::TargetMetrics& spec,
                                  const std::string& allow_targets) {
  absl::StatusOr<validation::TargetPolicy> policy =
      allow_targets.empty() ? validation::TargetPolicy::Default()
                            : validation::TargetPolicy::Parse(allow_targets);
  if (!policy.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("allow_targets: ", policy.status().message()));
  }
  std::vector<TargetSeriesStore::Selector> selectors;
  for (int i = 0; i < spec.series_size(); ++i) {
    absl::StatusOr<metrics::PromSelector> parsed = metrics::ParseSelector(spec.series(i));
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("targetMetrics.series[", i, "]: ", parsed.status().message()));
    }
    selectors.push_back({spec.series(i), *std::move(parsed)});
  }
  auto parsed = boost::urls::parse_uri(spec.url());
  if (!parsed || !parsed->has_authority() || parsed->encoded_host().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("targetMetrics.url: not an absolute http(s) URL: ", RedactUrl(spec.url())));
  }
  auto run = std::make_shared<Run>(ioc_);
  run->id = run_id;
  run->url = spec.url();
  run->https = absl::EqualsIgnoreCase(std::string(parsed->scheme()), "https");
  std::string host(parsed->encoded_host());
  run->host_header = host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  run->host = host;
  run->port = parsed->has_port() ? std::string(parsed->port()) : (run->https ? "443" : "80");
  if (parsed->has_port()) {
    absl::StrAppend(&run->host_header, ":", run->port);
  }
  run->target = parsed->encoded_path().empty() ? "/" : std::string(parsed->encoded_path());
  if (parsed->has_query()) {
    absl::StrAppend(&run->target, "?", std::string(parsed->encoded_query()));
  }
  run->interval = absl::Seconds(spec.interval().seconds()) +
                  absl::Nanoseconds(spec.interval().nanos());
  if (run->interval <= absl::ZeroDuration()) {
    run->interval = absl::Seconds(1);
  }
  run->timeout = options_.timeout;
  run->policy = *std::move(policy);
  run->store = std::make_unique<TargetSeriesStore>(std::move(selectors));
  std::shared_ptr<Run> replaced;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) {
      return absl::UnavailableError("collector is shutting down");
    }
    auto it = active_.find(run_id);
    if (it != active_.end()) {
      replaced = std::move(it->second);
    }
    active_[run_id] = run;
    finished_.erase(run_id);
  }
  LLMLOAD_LOG(kInfo, "Scraping the target's metrics.")
      .Kv("run_id", run_id)
      .Kv("url", RedactUrl(spec.url()))
      .Kv("series", absl::StrCat(spec.series_size()))
      .Kv("interval", absl::FormatDuration(run->interval));
  net::post(ioc_, [this, run, replaced] {
    if (replaced != nullptr) {
      replaced->finished = true;
      replaced->timer.cancel();
    }
    ScrapeNow(run);
  });
  return absl::OkStatus();
}

void TargetScraper::Stop(const std::string& run_id,
                         absl::AnyInvocable<void(v1::TargetScrapeReply)> done) {
  std::shared_ptr<Run> run;
  v1::TargetScrapeReply reply;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = active_.find(run_id); it != active_.end() && !shut_down_) {
      run = it->second;
    } else if (auto f = finished_.find(run_id); f != finished_.end()) {
      reply = ReplyOf(*f->second);
    }
  }
  if (run == nullptr) {
    done(std::move(reply));
    return;
  }
  net::post(ioc_, [this, run, done = std::move(done)]() mutable {
    if (run->finished) {
      v1::TargetScrapeReply r;
      {
        absl::MutexLock lock(&mu_);
        r = ReplyOf(*run);
      }
      done(std::move(r));
      return;
    }
    run->waiting.push_back(std::move(done));
    if (!run->stopping) {
      run->stopping = true;
      run->timer.cancel();
      // A scrape in flight may have been answered before the run's last
      // request: the stop's own scrape starts after it (OnScraped).
      if (!run->in_flight) {
        run->final_started = true;
        ScrapeNow(run);
      }
    }
  });
}

bool TargetScraper::Fill(const std::string& run_id, v1::RunStats* stats) const {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(run_id);
  if (it == active_.end()) {
    it = finished_.find(run_id);
    if (it == finished_.end()) {
      return false;
    }
  }
  it->second->store->Fill(stats);
  return true;
}

void TargetScraper::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) {
      return;
    }
    shut_down_ = true;
  }
  net::post(ioc_, [this] {
    std::vector<std::shared_ptr<Run>> runs;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [id, run] : active_) {
        runs.push_back(run);
      }
    }
    for (const std::shared_ptr<Run>& run : runs) {
      if (!run->finished) {
        Finish(run);
      }
    }
    ioc_.stop();
  });
  work_.reset();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void TargetScraper::ScrapeNow(const std::shared_ptr<Run>& run) {
  run->in_flight = true;
  if (run->https) {
    net::post(ioc_, [this, run] {
      OnScraped(run, absl::UnimplementedError("https:// targets are not scraped yet (use http://)"),
                {});
    });
    return;
  }
  std::make_shared<ScrapeOp>(ioc_, *run, options_.max_body_bytes,
                             [this, run](absl::Status status, std::string body) {
                               OnScraped(run, std::move(status), body);
                             })
      ->Start();
}

void TargetScraper::OnScraped(const std::shared_ptr<Run>& run, absl::Status status,
                              const std::string& body) {
  run->in_flight = false;
  if (run->finished) {
    return;
  }
  absl::StatusOr<std::vector<metrics::PromSample>> samples;
  if (status.ok()) {
    samples = metrics::ParseExposition(body);
    if (!samples.ok()) {
      status = absl::Status(samples.status().code(),
                            absl::StrCat("not the Prometheus text format: ",
                                         samples.status().message()));
    }
  }
  uint64_t failures = 0;
  {
    absl::MutexLock lock(&mu_);
    if (status.ok()) {
      run->store->AddScrape(absl::ToUnixMicros(absl::Now()), *samples);
      ++run->scrapes;
    } else {
      ++run->failures;
      run->last_error = std::string(status.message());
    }
    failures = run->failures;
  }
  // One line per new kind of failure (and every 60th), not one per scrape.
  if (!status.ok() &&
      (status.message() != run->last_logged_error || failures % 60 == 1)) {
    run->last_logged_error = std::string(status.message());
    LLMLOAD_LOG(kWarn, "A scrape of the target's metrics failed; the run goes on.")
        .Kv("run_id", run->id)
        .Kv("url", RedactUrl(run->url))
        .Kv("failures", absl::StrCat(failures))
        .Kv("error", std::string(status.message()));
  }
  if (run->stopping && !run->final_started) {
    run->final_started = true;
    ScrapeNow(run);
  } else if (run->stopping) {
    Finish(run);
  } else {
    Schedule(run);
  }
}

void TargetScraper::Schedule(const std::shared_ptr<Run>& run) {
  run->timer.expires_after(absl::ToChronoNanoseconds(run->interval));
  run->timer.async_wait([this, run](beast::error_code ec) {
    if (ec || run->finished || run->stopping) {
      return;
    }
    ScrapeNow(run);
  });
}

void TargetScraper::Finish(const std::shared_ptr<Run>& run) {
  run->finished = true;
  run->timer.cancel();
  v1::TargetScrapeReply reply;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = active_.find(run->id); it != active_.end() && it->second == run) {
      active_.erase(it);
      finished_[run->id] = run;
      finished_order_.push_back(run->id);
      while (finished_order_.size() > options_.max_finished_runs) {
        const std::string oldest = finished_order_.front();
        finished_order_.pop_front();
        auto f = finished_.find(oldest);
        if (f != finished_.end() && f->second->finished &&
            std::find(finished_order_.begin(), finished_order_.end(), oldest) ==
                finished_order_.end()) {
          finished_.erase(f);
        }
      }
    }
    reply = ReplyOf(*run);
  }
  LLMLOAD_LOG(kInfo, "Stopped scraping the target's metrics.")
      .Kv("run_id", run->id)
      .Kv("scrapes", absl::StrCat(reply.scrapes()))
      .Kv("failures", absl::StrCat(reply.failures()));
  std::vector<absl::AnyInvocable<void(v1::TargetScrapeReply)>> waiting = std::move(run->waiting);
  run->waiting.clear();
  for (auto& done : waiting) {
    done(reply);
  }
}

v1::TargetScrapeReply TargetScraper::ReplyOf(const Run& run) const {
  v1::TargetScrapeReply reply;
  reply.set_scrapes(run.scrapes);
  reply.set_failures(run.failures);
  reply.set_last_error(run.last_error);
  return reply;
}

}  // namespace llmload::collector
