#include "services/worker/http_pool.h"

#include <algorithm>
#include <optional>

#include <boost/asio/connect.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

namespace llmload::worker {

namespace beast = boost::beast;

// One keep-alive connection. Owned by the pool while idle and by the pending
// operation while busy.
class HttpPool::Conn : public std::enable_shared_from_this<HttpPool::Conn> {
 public:
  Conn(std::shared_ptr<HttpPool> pool, net::io_context& ioc)
      : pool_(std::move(pool)), socket_(ioc), timer_(ioc) {}

  bool used() const { return used_; }

  void Send(http::request<http::string_body> req, Callback cb) {
    req_ = std::move(req);
    cb_ = std::move(cb);
    result_ = HttpResult{};
    got_bytes_ = false;
    timed_out_ = false;
    pool_->busy_.insert(this);
    timer_.expires_after(pool_->timeout_);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) {
        self->timed_out_ = true;
        boost::system::error_code ignored;
        self->socket_.close(ignored);
      }
    });
    if (socket_.is_open()) {
      DoWrite();
      return;
    }
    net::async_connect(socket_, pool_->endpoints_,
                       [self = shared_from_this()](const boost::system::error_code& ec,
                                                   const tcp::endpoint&) {
                         if (ec) {
                           return self->Finish(ec);
                         }
                         boost::system::error_code ignored;
                         self->socket_.set_option(tcp::no_delay(true), ignored);
                         self->DoWrite();
                       });
  }

  void Close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  void DoWrite() {
    used_ = true;
    http::async_write(socket_, req_,
                      [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                        self->result_.bytes_out += n;
                        if (ec) {
                          return self->Finish(ec);
                        }
                        self->DoReadHeader();
                      });
  }

  void DoReadHeader() {
    parser_.emplace();
    parser_->body_limit(1 << 20);
    http::async_read_header(socket_, buffer_, *parser_,
                            [self = shared_from_this()](const boost::system::error_code& ec,
                                                        size_t n) {
                              self->result_.bytes_in += n;
                              if (ec) {
                                return self->Finish(ec);
                              }
                              self->got_bytes_ = true;
                              const unsigned status = self->parser_->get().result_int();
                              if (status / 100 == 1 && status != 101) {
                                // Interim response (RFC 9110 section 15.2): skip it.
                                return self->DoReadHeader();
                              }
                              self->result_.headers_at = Clock::now();
                              self->DoReadBody();
                            });
  }

  void DoReadBody() {
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                       self->result_.bytes_in += n;
                       if (ec) {
                         return self->Finish(ec);
                       }
                       self->result_.response = parser_release(*self->parser_);
                       self->Finish({});
                     });
  }

  static http::response<http::string_body> parser_release(
      http::response_parser<http::string_body>& p) {
    return p.release();
  }

  void Finish(boost::system::error_code ec) {
    timer_.cancel();
    if (timed_out_ && ec) {
      ec = net::error::timed_out;
    }
    result_.ec = ec;
    Callback cb = std::move(cb_);
    std::shared_ptr<HttpPool> pool = pool_;
    auto self = shared_from_this();
    pool->busy_.erase(this);
    const bool retry = ec && !got_bytes_ && reused_ && !timed_out_ && !pool->closed_ &&
                       ec != net::error::operation_aborted;
    if (retry) {
      // The idle connection was stale: one fresh attempt.
      Close();
      auto fresh = std::make_shared<Conn>(pool, pool->ioc_);
      fresh->Send(std::move(req_), std::move(cb));
      return;
    }
    const bool keep = !ec && result_.response.keep_alive() && !pool->closed_;
    HttpResult result = std::move(result_);
    if (keep) {
      reused_ = true;
      // An idle connection keeps no copy of its last exchange: the pool's
      // connections are few, but each would otherwise hold a request, a
      // parser and a read buffer until it is used again.
      req_ = {};
      parser_.reset();
      if (buffer_.size() == 0) {
        buffer_.shrink_to_fit();
      }
      pool->Release(self);
    } else {
      Close();
    }
    pool->Pump();
    cb(std::move(result));
  }

  std::shared_ptr<HttpPool> pool_;
  tcp::socket socket_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  std::optional<http::response_parser<http::string_body>> parser_;
  Callback cb_;
  HttpResult result_;
  bool used_ = false;
  bool reused_ = false;
  bool got_bytes_ = false;
  bool timed_out_ = false;
};

HttpPool::HttpPool(net::io_context& ioc, std::vector<tcp::endpoint> endpoints, std::string host,
                   std::chrono::milliseconds timeout, size_t max_conns)
    : ioc_(ioc),
      endpoints_(std::move(endpoints)),
      host_(std::move(host)),
      timeout_(timeout),
      max_conns_(std::max<size_t>(max_conns, 1)) {}

HttpPool::~HttpPool() = default;

http::request<http::string_body> HttpPool::Message(HttpCall call) const {
  http::request<http::string_body> req{call.verb, std::move(call.target), 11};
  req.set(http::field::host, host_);
  if (!call.body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(call.body);
  }
  req.keep_alive(true);
  req.prepare_payload();
  return req;
}

void HttpPool::Request(HttpCall call, Callback cb) {
  if (closed_) {
    HttpResult r;
    r.ec = net::error::operation_aborted;
    cb(std::move(r));
    return;
  }
  if (idle_.empty() && busy_.size() >= max_conns_) {
    waiting_.emplace_back(std::move(call), std::move(cb));
    return;
  }
  Dispatch(std::move(call), std::move(cb));
}

void HttpPool::Dispatch(HttpCall call, Callback cb) {
  std::shared_ptr<Conn> conn;
  if (!idle_.empty()) {
    conn = std::move(idle_.back());
    idle_.pop_back();
  } else {
    conn = std::make_shared<Conn>(shared_from_this(), ioc_);
  }
  conn->Send(Message(std::move(call)), std::move(cb));
}

void HttpPool::Release(std::shared_ptr<Conn> conn) {
  idle_.push_back(std::move(conn));
}

void HttpPool::Pump() {
  while (!waiting_.empty() && !closed_ && (!idle_.empty() || busy_.size() < max_conns_)) {
    auto [call, cb] = std::move(waiting_.front());
    waiting_.pop_front();
    Dispatch(std::move(call), std::move(cb));
  }
}

void HttpPool::CloseAll() {
  closed_ = true;
  // Requests still waiting fail without being sent.
  std::deque<std::pair<HttpCall, Callback>> waiting;
  waiting.swap(waiting_);
  for (auto& [call, cb] : waiting) {
    HttpResult r;
    r.ec = net::error::operation_aborted;
    cb(std::move(r));
  }
  for (auto& c : idle_) {
    c->Close();
  }
  idle_.clear();
  // Closing makes each pending operation finish, which erases it from busy_.
  std::vector<Conn*> busy(busy_.begin(), busy_.end());
  for (Conn* c : busy) {
    c->Close();
  }
}

}  // namespace llmload::worker
