#include "lib/protocol/server_json.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "boost/json/parse.hpp"
#include "lib/protocol/centrifugo_server.h"

namespace llmload::protocol::server_json {
namespace {

namespace json = boost::json;

json::string_view Jv(std::string_view s) { return json::string_view(s.data(), s.size()); }
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::StatusOr<json::object> ParseObject(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(Jv(body), ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("body is not valid JSON: ", ec.message()));
  }
  if (!v.is_object()) {
    return absl::InvalidArgumentError("body is not a JSON object");
  }
  return std::move(v.get_object());
}

void AppendQuoted(std::string* out, std::string_view s) { centrifugo::AppendJsonQuoted(out, s); }

std::string ContentText(const json::value& content) {
  if (content.is_string()) {
    return std::string(content.get_string());
  }
  std::string out;
  if (content.is_array()) {
    for (const json::value& part : content.get_array()) {
      if (!part.is_object()) {
        continue;
      }
      const json::value* text = part.get_object().if_contains("text");
      if (text != nullptr && text->is_string()) {
        if (!out.empty()) {
          out.push_back('\n');
        }
        out.append(text->get_string().data(), text->get_string().size());
      }
    }
  }
  return out;
}

int64_t CountWords(std::string_view s) {
  int64_t n = 0;
  bool in_word = false;
  for (char c : s) {
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (!space && !in_word) {
      ++n;
    }
    in_word = !space;
  }
  return n;
}

std::optional<std::string_view> GetString(const json::object& obj, std::string_view key) {
  const json::value* v = obj.if_contains(Jv(key));
  if (v == nullptr || !v->is_string()) {
    return std::nullopt;
  }
  return std::string_view(v->get_string().data(), v->get_string().size());
}

absl::StatusOr<std::optional<int64_t>> GetInt(const json::object& obj, std::string_view key) {
  const json::value* v = obj.if_contains(Jv(key));
  if (v == nullptr || v->is_null()) {
    return std::optional<int64_t>();
  }
  if (v->is_int64()) {
    return std::optional<int64_t>(v->get_int64());
  }
  if (v->is_uint64()) {
    return std::optional<int64_t>(static_cast<int64_t>(
        std::min<uint64_t>(v->get_uint64(), static_cast<uint64_t>(INT64_MAX))));
  }
  if (v->is_double() && std::isfinite(v->get_double()) &&
      std::floor(v->get_double()) == v->get_double() && std::fabs(v->get_double()) < 9e18) {
    return std::optional<int64_t>(static_cast<int64_t>(v->get_double()));
  }
  return absl::InvalidArgumentError(absl::StrCat(Av(key), ": expected an integer"));
}

absl::StatusOr<std::optional<double>> GetNumber(const json::object& obj, std::string_view key) {
  const json::value* v = obj.if_contains(Jv(key));
  if (v == nullptr || v->is_null()) {
    return std::optional<double>();
  }
  if (!v->is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(Av(key), ": expected a number"));
  }
  boost::system::error_code ec;
  return std::optional<double>(v->to_number<double>(ec));
}

absl::StatusOr<bool> GetBool(const json::object& obj, std::string_view key, bool fallback) {
  const json::value* v = obj.if_contains(Jv(key));
  if (v == nullptr || v->is_null()) {
    return fallback;
  }
  if (!v->is_bool()) {
    return absl::InvalidArgumentError(absl::StrCat(Av(key), ": expected a boolean"));
  }
  return v->get_bool();
}

}  // namespace llmload::protocol::server_json
