#include "services/emulator/router.h"

#include "boost/beast/http/field.hpp"

namespace llmload::emulator {

namespace http = boost::beast::http;

HttpResponse JsonResponse(http::status status, std::string body) {
  HttpResponse r;
  r.message.result(status);
  r.message.version(11);
  r.message.set(http::field::content_type, "application/json");
  r.message.body() = std::move(body);
  r.message.prepare_payload();
  return r;
}

std::string_view RequestPath(const HttpRequest& request) {
  std::string_view target(request.target().data(), request.target().size());
  const size_t q = target.find_first_of("?#");
  return q == std::string_view::npos ? target : target.substr(0, q);
}

void Router::AddHttp(http::verb method, std::string path, HttpHandler handler) {
  routes_.push_back(Route{method, std::move(path), false, std::move(handler)});
}

void Router::AddHttpPrefix(http::verb method, std::string prefix, HttpHandler handler) {
  routes_.push_back(Route{method, std::move(prefix), true, std::move(handler)});
}

void Router::AddWebSocket(std::string path, WebSocketEndpoint* endpoint) {
  websockets_.emplace_back(std::move(path), endpoint);
}

WebSocketEndpoint* Router::FindWebSocket(const HttpRequest& request) const {
  if (request.method() != http::verb::get) {
    return nullptr;
  }
  const std::string_view path = RequestPath(request);
  for (const auto& [ws_path, endpoint] : websockets_) {
    if (ws_path == path) {
      return endpoint;
    }
  }
  return nullptr;
}

HttpResponse Router::Dispatch(const HttpRequest& request) const {
  const std::string_view path = RequestPath(request);
  std::string allow;
  for (const Route& route : routes_) {
    std::string_view suffix;
    if (route.prefix) {
      if (path.size() <= route.path.size() || path.substr(0, route.path.size()) != route.path) {
        continue;
      }
      suffix = path.substr(route.path.size());
      if (suffix.find('/') != std::string_view::npos) {
        continue;
      }
    } else if (path != route.path) {
      continue;
    }
    if (route.method == request.method()) {
      return route.handler(request, suffix);
    }
    if (!allow.empty()) {
      allow += ", ";
    }
    const auto name = http::to_string(route.method);
    allow.append(name.data(), name.size());
  }
  for (const auto& [ws_path, endpoint] : websockets_) {
    if (ws_path == path) {
      if (request.method() == http::verb::get) {
        return JsonResponse(http::status::bad_request,
                            "{\"detail\":\"Expected a WebSocket upgrade request\"}");
      }
      if (!allow.empty()) {
        allow += ", ";
      }
      allow += "GET";
    }
  }
  if (!allow.empty()) {
    HttpResponse r = JsonResponse(http::status::method_not_allowed,
                                  "{\"detail\":\"Method Not Allowed\"}");
    r.message.set(http::field::allow, allow);
    return r;
  }
  return JsonResponse(http::status::not_found, "{\"detail\":\"Not Found\"}");
}

}  // namespace llmload::emulator
