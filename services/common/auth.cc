#include "services/common/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/log.h"

namespace llmload {
namespace {

TokenSource::Digest DigestOf(std::string_view token) {
  TokenSource::Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  return d;
}

std::vector<std::string> SplitTokens(std::string_view text, char sep) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(absl::string_view(text.data(), text.size()), sep)) {
    absl::string_view t = absl::StripAsciiWhitespace(part);
    if (!t.empty() && t.front() != '#') {
      out.emplace_back(t);
    }
  }
  return out;
}

// The token of an `authorization: Bearer <token>` header, "" when absent.
std::string_view BearerOf(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return {};
  }
  std::string_view value(it->second.data(), it->second.size());
  constexpr std::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(value.data(), kScheme.size()),
                              absl::string_view(kScheme.data(), kScheme.size()))) {
    return {};
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && value.front() == ' ') {
    value.remove_prefix(1);
  }
  return value;
}

const char* AccessName(Access a) {
  switch (a) {
    case Access::kRead:
      return "read";
    case Access::kOperate:
      return "operator";
    case Access::kJoin:
      return "join";
  }
  return "?";
}

class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const TokenSource* source) : source_(source) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      if (std::string token = source_->First(); !token.empty()) {
        methods->GetSendInitialMetadata()->emplace("authorization",
                                                   absl::StrCat("Bearer ", token));
      }
    }
    methods->Proceed();
  }

 private:
  const TokenSource* source_;
};

class BearerInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(std::shared_ptr<const TokenSource> source)
      : source_(std::move(source)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerInterceptor(source_.get());
  }

 private:
  std::shared_ptr<const TokenSource> source_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TokenSource>> TokenSource::Create(std::string name,
                                                                   std::string literal,
                                                                   std::string file,
                                                                   absl::Duration recheck) {
  auto source = std::unique_ptr<TokenSource>(new TokenSource());
  source->name_ = std::move(name);
  source->file_ = std::move(file);
  source->recheck_ = recheck;
  source->literal_tokens_ = SplitTokens(literal, ',');
  if (!source->file_.empty()) {
    auto tokens = ReadFile(source->file_);
    if (!tokens.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source->name_, ": ", tokens.status().message()));
    }
    if (tokens->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source->name_, ": ", source->file_, " holds no token"));
    }
  }
  source->configured_ = !source->literal_tokens_.empty() || !source->file_.empty();
  absl::MutexLock lock(&source->mu_);
  source->MaybeReload();
  return source;
}

absl::StatusOr<std::vector<std::string>> TokenSource::ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return SplitTokens(text.str(), '\n');
}

void TokenSource::MaybeReload() const {
  const absl::Time now = absl::Now();
  if (now < next_check_) {
    return;
  }
  next_check_ = now + recheck_;
  std::vector<std::string> from_file;
  if (!file_.empty()) {
    struct stat st {};
    if (::stat(file_.c_str(), &st) != 0) {
      if (!warned_) {
        LLMLOAD_LOG(kWarn, "Token file unreadable; keeping the tokens read before.")
            .Kv("flag", name_)
            .Kv("path", file_);
        warned_ = true;
      }
      return;
    }
    const int64_t mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    if (st.st_size == file_size_ && mtime_ns == file_mtime_ns_) {
      return;
    }
    auto tokens = ReadFile(file_);
    if (!tokens.ok() || tokens->empty()) {
      if (!warned_) {
        LLMLOAD_LOG(kWarn, "Token file unreadable or empty; keeping the tokens read before.")
            .Kv("flag", name_)
            .Kv("path", file_);
        warned_ = true;
      }
      return;
    }
    if (file_size_ >= 0) {
      LLMLOAD_LOG(kInfo, "Token file changed; tokens reloaded.")
          .Kv("flag", name_)
          .Kv("tokens", tokens->size());
    }
    warned_ = false;
    file_size_ = st.st_size;
    file_mtime_ns_ = mtime_ns;
    from_file = *std::move(tokens);
  } else if (!loaded_.tokens.empty() || literal_tokens_.empty()) {
    return;  // literal tokens only: loaded once
  }
  Loaded next;
  next.tokens = literal_tokens_;
  next.tokens.insert(next.tokens.end(), from_file.begin(), from_file.end());
  for (const std::string& t : next.tokens) {
    next.digests.push_back(DigestOf(t));
  }
  loaded_ = std::move(next);
}

bool TokenSource::Matches(std::string_view token) const {
  const Digest presented = DigestOf(token);
  absl::MutexLock lock(&mu_);
  MaybeReload();
  int matched = 0;
  for (const Digest& d : loaded_.digests) {
    matched |= CRYPTO_memcmp(d.data(), presented.data(), d.size()) == 0 ? 1 : 0;
  }
  return matched != 0 && !token.empty();
}

std::string TokenSource::First() const {
  absl::MutexLock lock(&mu_);
  MaybeReload();
  return loaded_.tokens.empty() ? std::string() : loaded_.tokens.front();
}

absl::StatusOr<std::shared_ptr<const ServerAuth>> ServerAuth::Create(
    std::unique_ptr<TokenSource> operate, std::unique_ptr<TokenSource> read,
    std::unique_ptr<TokenSource> join) {
  auto drop_unconfigured = [](std::unique_ptr<TokenSource>& s) {
    if (s != nullptr && !s->configured()) {
      s.reset();
    }
  };
  drop_unconfigured(operate);
  drop_unconfigured(read);
  drop_unconfigured(join);
  if (read != nullptr && operate == nullptr) {
    return absl::InvalidArgumentError(
        "a read token is configured without an operator token: nobody could start a run "
        "(set --operator_token_file or LLMLOAD_OPERATOR_TOKEN too)");
  }
  auto auth = std::shared_ptr<ServerAuth>(new ServerAuth());
  auth->operate_ = std::move(operate);
  auth->read_ = std::move(read);
  auth->join_ = std::move(join);
  return std::shared_ptr<const ServerAuth>(std::move(auth));
}

std::shared_ptr<const ServerAuth> ServerAuth::Open() {
  return std::shared_ptr<const ServerAuth>(new ServerAuth());
}

grpc::Status ServerAuth::Check(const grpc::ServerContextBase& context, Access access,
                               std::string_view method) const {
  const bool open = access == Access::kJoin ? join_open() : control_open();
  if (open) {
    return grpc::Status::OK;
  }
  const std::string_view token = BearerOf(context);
  auto matches = [&](const std::unique_ptr<TokenSource>& s) {
    return s != nullptr && s->Matches(token);
  };
  // Evaluate every source, so the time taken does not say which matched.
  const bool is_operator = matches(operate_);
  const bool is_reader = matches(read_);
  const bool is_joiner = matches(join_);
  bool allowed = false;
  bool known = is_operator || is_reader || is_joiner;
  switch (access) {
    case Access::kOperate:
      allowed = is_operator;
      break;
    case Access::kRead:
      // llmload's own processes (the orchestrator reading statistics) hold
      // the join token.
      allowed = is_operator || is_reader || is_joiner;
      break;
    case Access::kJoin:
      allowed = is_joiner;
      break;
  }
  if (allowed) {
    return grpc::Status::OK;
  }
  const std::string what(method);
  LLMLOAD_LOG(kWarn, "Refused a call without the right token.")
      .Kv("method", what)
      .Kv("needs", AccessName(access))
      .Kv("token", token.empty() ? "none" : (known ? "another role's" : "unknown"))
      .Kv("peer", context.peer());
  if (token.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat(what, " needs a bearer token (", AccessName(access),
                                     "): send 'authorization: Bearer <token>' (llmload: set "
                                     "LLMLOAD_TOKEN or --token-file)"));
  }
  if (!known) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat(what, ": the bearer token is not valid here"));
  }
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      absl::StrCat(what, " needs the ", AccessName(access),
                                   " token; this token may not call it"));
}

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> BearerTokenInterceptor(
    std::shared_ptr<const TokenSource> source) {
  return std::make_unique<BearerInterceptorFactory>(std::move(source));
}

}  // namespace llmload
