#include "services/emulator/router.h"

#include <string>

#include "gtest/gtest.h"

namespace llmload::emulator {
namespace {

namespace http = boost::beast::http;

HttpRequest Request(http::verb method, std::string target) {
  HttpRequest r(method, target, 11);
  return r;
}

class NullEndpoint : public WebSocketEndpoint {
 public:
  void Accept(ServerStream, HttpRequest, ConnectionGuard, EventLoop&) override {}
};

class RouterTest : public testing::Test {
 protected:
  void SetUp() override {
    router_.AddHttp(http::verb::get, "/health", [](const HttpRequest&, std::string_view) {
      return JsonResponse(http::status::ok, "{\"status\":\"ok\"}");
    });
    router_.AddHttp(http::verb::post, "/api/sessions/create", [](const HttpRequest&, std::string_view) {
      return JsonResponse(http::status::ok, "create");
    });
    router_.AddHttpPrefix(http::verb::delete_, "/api/sessions/",
                          [](const HttpRequest&, std::string_view id) {
                            return JsonResponse(http::status::ok, "delete " + std::string(id));
                          });
    router_.AddWebSocket("/connection/websocket", &endpoint_);
  }

  Router router_;
  NullEndpoint endpoint_;
};

TEST_F(RouterTest, DispatchesExactPathAndIgnoresQuery) {
  HttpResponse r = router_.Dispatch(Request(http::verb::get, "/health?x=1"));
  EXPECT_EQ(r.message.result(), http::status::ok);
  EXPECT_EQ(r.message.body(), "{\"status\":\"ok\"}");
  EXPECT_EQ(r.message[http::field::content_type], "application/json");
  EXPECT_EQ(r.message[http::field::content_length], "15");
}

TEST_F(RouterTest, PrefixRoutePassesTheSuffix) {
  HttpResponse r = router_.Dispatch(Request(http::verb::delete_, "/api/sessions/abc-1"));
  EXPECT_EQ(r.message.result(), http::status::ok);
  EXPECT_EQ(r.message.body(), "delete abc-1");
}

TEST_F(RouterTest, UnknownPathIsFastApi404) {
  for (const char* target : {"/", "/nope", "/api/sessions/a/b", "/api/sessions/", "/healthz"}) {
    HttpResponse r = router_.Dispatch(Request(http::verb::delete_, target));
    EXPECT_EQ(r.message.result(), http::status::not_found) << target;
    EXPECT_EQ(r.message.body(), "{\"detail\":\"Not Found\"}") << target;
  }
}

TEST_F(RouterTest, WrongMethodIs405WithAllow) {
  HttpResponse r = router_.Dispatch(Request(http::verb::post, "/health"));
  EXPECT_EQ(r.message.result(), http::status::method_not_allowed);
  EXPECT_EQ(r.message.body(), "{\"detail\":\"Method Not Allowed\"}");
  EXPECT_EQ(r.message[http::field::allow], "GET");
  // Both the exact and the prefix route match the path.
  HttpResponse both = router_.Dispatch(Request(http::verb::get, "/api/sessions/create"));
  EXPECT_EQ(both.message.result(), http::status::method_not_allowed);
  EXPECT_EQ(both.message[http::field::allow], "POST, DELETE");
}

TEST_F(RouterTest, WebSocketPathWithoutUpgrade) {
  HttpRequest get = Request(http::verb::get, "/connection/websocket");
  EXPECT_EQ(router_.Dispatch(get).message.result(), http::status::bad_request);
  EXPECT_EQ(router_.FindWebSocket(get), &endpoint_);
  HttpRequest post = Request(http::verb::post, "/connection/websocket");
  EXPECT_EQ(router_.FindWebSocket(post), nullptr);
  EXPECT_EQ(router_.Dispatch(post).message.result(), http::status::method_not_allowed);
  EXPECT_EQ(router_.FindWebSocket(Request(http::verb::get, "/health")), nullptr);
}

}  // namespace
}  // namespace llmload::emulator
