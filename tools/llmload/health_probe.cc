// The network half of `llmload health` (see health.h): one gRPC Health/Check
// or one HTTP GET, each under the --timeout deadline.

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "tools/llmload/health.h"

namespace llmload::cli {
namespace {

using Clock = std::chrono::steady_clock;

int Report(const HealthOptions& o, int code, const std::string& what) {
  if (!o.quiet) {
    std::FILE* out = code == kHealthServing ? stdout : stderr;
    std::fprintf(out, "%s [address=%s, %s=%s]\n", what.c_str(), o.address.c_str(),
                 o.http_path.empty() ? "service" : "http",
                 o.http_path.empty() ? (o.service.empty() ? "\"\"" : o.service.c_str())
                                     : o.http_path.c_str());
  }
  return code;
}

// A service started with --tls_cert_file (LLMLOAD_TLS_CERT_FILE, which the
// probe inherits in its container) serves TLS only. The probe then speaks
// TLS without verifying the server (it checks liveness, sends nothing
// secret, and usually dials 127.0.0.1, which no certificate names) and
// presents the same certificate, for a server that requires one (mTLS).
std::shared_ptr<grpc::ChannelCredentials> ProbeCredentials() {
  const char* cert = std::getenv("LLMLOAD_TLS_CERT_FILE");
  const char* key = std::getenv("LLMLOAD_TLS_KEY_FILE");
  if (cert == nullptr || *cert == '\0' || key == nullptr || *key == '\0') {
    return grpc::InsecureChannelCredentials();
  }
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_verify_server_certs(false);
  options.set_check_call_host(false);
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  options.set_certificate_provider(
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(key, cert, 60));
  options.watch_identity_key_cert_pairs();
  return grpc::experimental::TlsCredentials(options);
}

int GrpcCheck(const HealthOptions& o) {
  auto channel = grpc::CreateChannel(o.address, ProbeCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::microseconds(static_cast<int64_t>(o.timeout_seconds * 1e6)));
  const std::string request = EncodeHealthCheckRequest(o.service);
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request_buffer,
                 &response_buffer, [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status st = done.get_future().get();
  if (!st.ok()) {
    const bool unreachable = st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                             st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    const std::string why = st.error_message().empty()
                                ? absl::StrCat("gRPC code ", static_cast<int>(st.error_code()))
                                : st.error_message();
    return Report(o, unreachable ? kHealthUnreachable : kHealthNotServing,
                  absl::StrCat(unreachable ? "UNREACHABLE: " : "NOT_SERVING: ", why));
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (response_buffer.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  absl::StatusOr<int32_t> status = DecodeHealthCheckResponse(bytes);
  if (!status.ok()) {
    return Report(o, kHealthNotServing, std::string(status.status().message()));
  }
  return Report(o, *status == 1 ? kHealthServing : kHealthNotServing, ServingStatusName(*status));
}

int MillisLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// One GET over a fresh connection; the status code, or -1 when the server
// could not be reached or did not answer in time.
int HttpStatus(const HealthOptions& o, Clock::time_point deadline, std::string* error) {
  const size_t colon = o.address.rfind(':');
  std::string host = o.address.substr(0, colon);
  const std::string port = o.address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    *error = absl::StrCat("cannot resolve ", host, ": ", ::gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      continue;
    }
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      ::close(fd);
      fd = -1;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof(err);
    if (::poll(&p, 1, MillisLeft(deadline)) != 1 ||
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    *error = "connection failed";
    return -1;
  }
  const std::string request = absl::StrCat("GET ", o.http_path, " HTTP/1.1\r\nHost: ", o.address,
                                           "\r\nUser-Agent: llmload-health\r\n"
                                           "Connection: close\r\n\r\n");
  size_t sent = 0;
  std::string response;
  while (true) {
    if (sent < request.size()) {
      const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        break;
      }
    }
    if (response.find("\r\n") != std::string::npos) {
      break;
    }
    pollfd p{fd, static_cast<short>(sent < request.size() ? POLLOUT : POLLIN), 0};
    if (::poll(&p, 1, MillisLeft(deadline)) != 1) {
      break;
    }
    if (sent < request.size()) {
      continue;
    }
    char buf[512];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        continue;
      }
      break;
    }
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // "HTTP/1.1 200 OK"
  int code = -1;
  const size_t sp = response.find(' ');
  if (absl::StartsWith(response, "HTTP/") && sp != std::string::npos &&
      absl::SimpleAtoi(response.substr(sp + 1, 3), &code)) {
    return code;
  }
  *error = response.empty() ? "no answer" : "not an HTTP answer";
  return -1;
}

int HttpCheck(const HealthOptions& o) {
  const auto deadline =
      Clock::now() + std::chrono::microseconds(static_cast<int64_t>(o.timeout_seconds * 1e6));
  std::string error;
  const int code = HttpStatus(o, deadline, &error);
  if (code < 0) {
    return Report(o, kHealthUnreachable, absl::StrCat("UNREACHABLE: ", error));
  }
  if (code >= 200 && code < 300) {
    return Report(o, kHealthServing, absl::StrCat("SERVING: HTTP ", code));
  }
  return Report(o, kHealthNotServing, absl::StrCat("NOT_SERVING: HTTP ", code));
}

}  // namespace

int RunHealth(const HealthOptions& options) {
  if (options.help) {
    std::fputs(HealthUsageText().c_str(), stdout);
    return kHealthServing;
  }
  return options.http_path.empty() ? GrpcCheck(options) : HttpCheck(options);
}

int HealthMain(const std::vector<std::string>& args) {
  absl::StatusOr<HealthOptions> options =
      ParseHealthArgs(args, [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        return v == nullptr ? std::nullopt : std::optional<std::string>(v);
      });
  if (!options.ok()) {
    std::fprintf(stderr, "llmload %s\n\n%s", std::string(options.status().message()).c_str(),
                 HealthUsageText().c_str());
    return kHealthUnreachable;
  }
  return RunHealth(*options);
}

}  // namespace llmload::cli
