#include "services/common/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace llmload {
namespace {

struct BioCloser {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Closer {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyCloser {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioCloser>;
using X509Ptr = std::unique_ptr<X509, X509Closer>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyCloser>;

absl::StatusOr<BioPtr> Open(const std::string& path, const std::string& flag) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  }
  return bio;
}

absl::StatusOr<X509Ptr> ReadCert(const std::string& path, const std::string& flag) {
  auto bio = Open(path, flag);
  if (!bio.ok()) {
    return bio.status();
  }
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", path, " holds no PEM certificate"));
  }
  return cert;
}

unsigned ReloadSeconds(absl::Duration d) {
  return static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(d)));
}

}  // namespace

absl::Status CheckTlsFiles(const TlsFiles& f, char sep) {
  auto flag = [sep](const char* what) { return absl::StrCat("--tls", std::string(1, sep), what,
                                                            std::string(1, sep), "file"); };
  if (f.cert_file.empty() != f.key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag("cert"), " and ", flag("key"),
                                                   " go together: give both or neither"));
  }
  if (!f.cert_file.empty()) {
    auto cert = ReadCert(f.cert_file, flag("cert"));
    if (!cert.ok()) {
      return cert.status();
    }
    auto bio = Open(f.key_file, flag("key"));
    if (!bio.ok()) {
      return bio.status();
    }
    KeyPtr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, nullptr, nullptr));
    if (key == nullptr) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat(flag("key"), ": ", f.key_file, " holds no PEM private key (unencrypted)"));
    }
    if (X509_check_private_key(cert->get(), key.get()) != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat(flag("key"), ": ", f.key_file, " is not the key of ", f.cert_file));
    }
  }
  if (!f.ca_file.empty()) {
    if (auto ca = ReadCert(f.ca_file, flag("ca")); !ca.ok()) {
      return ca.status();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& f) {
  if (!f.server_enabled()) {
    if (!f.ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_ca_file on a server needs --tls_cert_file and --tls_key_file (mutual TLS "
          "is TLS with client certificates)");
    }
    return grpc::InsecureServerCredentials();
  }
  if (absl::Status s = CheckTlsFiles(f, '_'); !s.ok()) {
    return s;
  }
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      f.key_file, f.cert_file, f.ca_file, ReloadSeconds(f.reload));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!f.ca_file.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& f) {
  if (!f.client_enabled()) {
    return grpc::InsecureChannelCredentials();
  }
  if (absl::Status s = CheckTlsFiles(f, '_'); !s.ok()) {
    return s;
  }
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_verify_server_certs(true);
  if (!f.cert_file.empty() || !f.ca_file.empty()) {
    auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        f.key_file, f.cert_file, f.ca_file, ReloadSeconds(f.reload));
    options.set_certificate_provider(provider);
    if (!f.cert_file.empty()) {
      options.watch_identity_key_cert_pairs();
    }
    if (!f.ca_file.empty()) {
      options.watch_root_certs();
    }
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::experimental::TlsCredentials(options);
  if (creds == nullptr) {
    return absl::InvalidArgumentError("the TLS client options were refused by gRPC");
  }
  return creds;
}

}  // namespace llmload
