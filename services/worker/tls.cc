#include "services/worker/tls.h"

#include <openssl/ssl.h>

#include <boost/asio/ssl/host_name_verification.hpp>

#include "absl/strings/str_cat.h"

namespace llmload::worker {

namespace ssl = boost::asio::ssl;

absl::StatusOr<std::shared_ptr<ssl::context>> MakeClientTlsContext(const v1::Target& target) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  // A waiting connection gives its record buffers (about 34 KiB) back to
  // the allocator; OpenSSL takes them again for the next record.
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (target.insecure_skip_verify()) {
    ctx->set_verify_mode(ssl::verify_none, ec);
    return ctx;
  }
  if (!target.ca_file().empty()) {
    ctx->load_verify_file(target.ca_file(), ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.target.caFile: cannot load ", target.ca_file(), ": ", ec.message()));
    }
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot load the system CA store: ", ec.message()));
    }
  }
  ctx->set_verify_mode(ssl::verify_peer, ec);
  return ctx;
}

bool SetUpTlsClient(ssl::stream<boost::asio::ip::tcp::socket>& stream, const std::string& host,
                    bool verify) {
  if (verify) {
    stream.set_verify_callback(ssl::host_name_verification(host));
  }
  return SSL_set_tlsext_host_name(stream.native_handle(), host.c_str()) == 1;
}

}  // namespace llmload::worker
