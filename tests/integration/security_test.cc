// The control plane's defences against the real services: bearer tokens by
// role on every control RPC and the join token on attach and ingest (the
// token files rotated while running), mutual TLS on every link with
// certificates the test makes with the openssl CLI (a certificate from
// another CA refused, a replaced certificate picked up), and the target
// allowlist refusing hosts outside it before anything is dispatched. All
// traffic stays on 127.0.0.1; refused targets are .invalid names and
// documentation addresses that the check stops before any connect.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "tests/testing/mono_clock.h"
#include "tests/testing/process.h"

namespace llmload {
namespace {

using testing_util::BinPath;
using testing_util::ChildProcess;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A CA and the certificates it signs, made with the openssl CLI.
class Pki {
 public:
  explicit Pki(std::string dir) : dir_(std::move(dir)) {}

  ::testing::AssertionResult MakeCa(const std::string& ca) {
    return Run(absl::StrCat(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2",
        " -keyout ", Key(ca), " -out ", Cert(ca), " -subj /CN=", ca,
        " -addext basicConstraints=critical,CA:TRUE",
        " -addext keyUsage=critical,keyCertSign,cRLSign"));
  }

  // A certificate for 127.0.0.1 and localhost, good as server and client.
  ::testing::AssertionResult MakeLeaf(const std::string& ca, const std::string& name) {
    const std::string ext = absl::StrCat(dir_, "/", name, ".ext");
    WriteFile(ext,
              "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
              "basicConstraints=CA:FALSE\n"
              "extendedKeyUsage=serverAuth,clientAuth\n");
    const std::string csr = absl::StrCat(dir_, "/", name, ".csr");
    if (auto r = Run(absl::StrCat("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1",
                                  " -nodes -keyout ", Key(name), " -out ", csr, " -subj /CN=",
                                  name));
        !r) {
      return r;
    }
    return Run(absl::StrCat("openssl x509 -req -days 2 -in ", csr, " -CA ", Cert(ca), " -CAkey ",
                            Key(ca), " -CAcreateserial -out ", Cert(name), " -extfile ", ext));
  }

  std::string Cert(const std::string& name) const { return absl::StrCat(dir_, "/", name, ".crt"); }
  std::string Key(const std::string& name) const { return absl::StrCat(dir_, "/", name, ".key"); }

 private:
  ::testing::AssertionResult Run(const std::string& command) {
    testing_util::ShellResult r = testing_util::RunShell(command);
    if (r.exit_code != 0) {
      return ::testing::AssertionFailure() << command << " failed:\n" << r.output;
    }
    return ::testing::AssertionSuccess();
  }
  std::string dir_;
};

// TLS channel credentials from files (a test client, not llmload's code).
std::shared_ptr<grpc::ChannelCredentials> TlsClient(const std::string& ca, const std::string& cert,
                                                    const std::string& key) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadFile(ca);
  if (!cert.empty()) {
    options.pem_cert_chain = ReadFile(cert);
    options.pem_private_key = ReadFile(key);
  }
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::Channel> Channel(int port,
                                       std::shared_ptr<grpc::ChannelCredentials> credentials =
                                           grpc::InsecureChannelCredentials()) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), std::move(credentials));
}

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = "") {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(testing_util::GrpcDeadline(absl::Seconds(10)));
  if (!token.empty()) {
    ctx->AddMetadata("authorization", "Bearer " + token);
  }
  return ctx;
}

v1::RunSpec SmokeSpec(int emulator_port) {
  v1::RunSpec spec;
  spec.set_name("security");
  spec.mutable_target()->set_protocol(v1::CENTRIFUGO_EMULATOR);
  spec.mutable_target()->set_url(absl::StrCat("http://127.0.0.1:", emulator_port));
  spec.mutable_load()->mutable_closed()->set_clients(4);
  spec.mutable_load()->mutable_closed()->set_cycles_per_client(2);
  spec.mutable_emulation()->set_length_words(5);
  spec.mutable_emulation()->mutable_token_delay()->set_nanos(1000000);
  return spec;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing_util::MakeTempDir("security"); }

  void StartEmulator() {
    emulator_port_ = testing_util::FreePort();
    emulator_ = ChildProcess::Start(
        BinPath("llmload-emulator"),
        {"--host=127.0.0.1", absl::StrCat("--port=", emulator_port_), "--threads=1"},
        dir_ + "/emulator.log", dir_);
    ASSERT_TRUE(testing_util::WaitForTcp(emulator_port_, absl::Seconds(20)));
  }

  void StartServices(const std::vector<std::string>& common_args) {
    collector_port_ = testing_util::FreePort();
    orchestrator_port_ = testing_util::FreePort();
    std::vector<std::string> c = {absl::StrCat("--grpc_address=127.0.0.1:", collector_port_),
                                  "--metrics_address="};
    c.insert(c.end(), common_args.begin(), common_args.end());
    collector_ = ChildProcess::Start(BinPath("llmload-collector"), c, dir_ + "/collector.log",
                                     dir_);
    std::vector<std::string> o = {absl::StrCat("--grpc_address=127.0.0.1:", orchestrator_port_),
                                  absl::StrCat("--collector=127.0.0.1:", collector_port_),
                                  "--heartbeat_timeout_seconds=2"};
    o.insert(o.end(), common_args.begin(), common_args.end());
    orchestrator_ = ChildProcess::Start(BinPath("llmload-orchestrator"), o,
                                        dir_ + "/orchestrator.log", dir_);
    ASSERT_TRUE(testing_util::WaitForTcp(collector_port_, absl::Seconds(20)));
    ASSERT_TRUE(testing_util::WaitForTcp(orchestrator_port_, absl::Seconds(20)));
  }

  std::unique_ptr<ChildProcess> StartWorker(const std::string& id,
                                            const std::vector<std::string>& args,
                                            const std::vector<std::string>& env = {}) {
    std::vector<std::string> w = {absl::StrCat("--orchestrator=127.0.0.1:", orchestrator_port_),
                                  absl::StrCat("--collector=127.0.0.1:", collector_port_),
                                  absl::StrCat("--worker_id=", id), "--metrics_address=",
                                  "--threads=1"};
    w.insert(w.end(), args.begin(), args.end());
    return ChildProcess::Start(BinPath("llmload-worker"), w, dir_ + "/" + id + ".log", dir_, env);
  }

  // `llmload ARGS` with `env`; returns exit code and output.
  testing_util::ShellResult Cli(const std::string& env, const std::string& args) {
    return testing_util::RunShell(absl::StrCat("cd ", dir_, " && env ", env, " ",
                                               BinPath("llmload"), " ", args));
  }

  void TearDown() override {
    for (auto* p : {&worker_, &orchestrator_, &collector_, &emulator_}) {
      if (*p != nullptr) {
        (*p)->Stop();
      }
    }
    if (HasFailure()) {
      for (const char* log : {"collector.log", "orchestrator.log", "worker.log"}) {
        std::cerr << "---- " << log << "\n" << ReadFile(dir_ + "/" + log);
      }
    }
  }

  std::string dir_;
  int emulator_port_ = 0, collector_port_ = 0, orchestrator_port_ = 0;
  std::unique_ptr<ChildProcess> emulator_, collector_, orchestrator_, worker_;
};

TEST_F(SecurityTest, EveryControlRpcNeedsTheRightTokenAndWorkersTheJoinToken) {
  const std::string op = "op-7c1f0e9a4b2d", reader = "read-5e8a13c0d7f2", join = "join-9b4e2a61";
  WriteFile(dir_ + "/operator", "# operators\n" + op + "\n");
  WriteFile(dir_ + "/reader", reader + "\n");
  WriteFile(dir_ + "/join", join + "\n");
  StartEmulator();
  ASSERT_NO_FATAL_FAILURE(StartServices({"--operator_token_file=" + dir_ + "/operator",
                                         "--read_token_file=" + dir_ + "/reader",
                                         "--join_token_file=" + dir_ + "/join"}));
  auto orchestrator = v1::Orchestrator::NewStub(Channel(orchestrator_port_));
  auto collector = v1::Collector::NewStub(Channel(collector_port_));

  // Each RPC with no token, a wrong one, the read token and the operator
  // token: the code says whether the token got it past the check (past
  // it, the call fails for its own reason: unknown run, no worker).
  using Call = std::function<grpc::Status(const std::string& token)>;
  const v1::RunSpec spec = SmokeSpec(emulator_port_);
  struct Rpc {
    std::string name;
    bool operate;
    Call call;
  };
  std::vector<Rpc> rpcs = {
      {"StartRun", true,
       [&](const std::string& t) {
         v1::StartRunRequest req;
         *req.mutable_spec() = spec;
         v1::Run run;
         return orchestrator->StartRun(Ctx(t).get(), req, &run);
       }},
      {"StopRun", true,
       [&](const std::string& t) {
         v1::StopRunRequest req;
         req.set_id("no-such-run");
         v1::Run run;
         return orchestrator->StopRun(Ctx(t).get(), req, &run);
       }},
      {"GetRun", false,
       [&](const std::string& t) {
         v1::GetRunRequest req;
         req.set_id("no-such-run");
         v1::Run run;
         return orchestrator->GetRun(Ctx(t).get(), req, &run);
       }},
      {"ListRuns", false,
       [&](const std::string& t) {
         v1::ListRunsResponse resp;
         return orchestrator->ListRuns(Ctx(t).get(), v1::ListRunsRequest(), &resp);
       }},
      {"ListWorkers", false,
       [&](const std::string& t) {
         v1::ListWorkersResponse resp;
         return orchestrator->ListWorkers(Ctx(t).get(), v1::ListWorkersRequest(), &resp);
       }},
      {"WatchRun", false,
       [&](const std::string& t) {
         v1::WatchRunRequest req;
         req.set_id("no-such-run");
         auto ctx = Ctx(t);
         auto reader = orchestrator->WatchRun(ctx.get(), req);
         v1::RunUpdate u;
         while (reader->Read(&u)) {
         }
         return reader->Finish();
       }},
      {"GetRunStats", false,
       [&](const std::string& t) {
         v1::GetRunStatsRequest req;
         req.set_run_id("no-such-run");
         v1::RunStats stats;
         return collector->GetRunStats(Ctx(t).get(), req, &stats);
       }},
      {"WatchRunStats", false,
       [&](const std::string& t) {
         v1::WatchRunStatsRequest req;
         req.set_run_id("no-such-run");
         auto ctx = Ctx(t);
         ctx->set_deadline(testing_util::GrpcDeadline(absl::Milliseconds(500)));
         auto reader = collector->WatchRunStats(ctx.get(), req);
         v1::RunStats s;
         while (reader->Read(&s)) {
         }
         return reader->Finish();
       }},
      {"GetRunRecords", false,
       [&](const std::string& t) {
         v1::GetRunRecordsRequest req;
         req.set_run_id("no-such-run");
         auto ctx = Ctx(t);
         auto reader = collector->GetRunRecords(ctx.get(), req);
         v1::RequestRecords r;
         while (reader->Read(&r)) {
         }
         return reader->Finish();
       }},
  };
  auto is_auth_refusal = [](const grpc::Status& s) {
    return s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
           s.error_code() == grpc::StatusCode::PERMISSION_DENIED;
  };
  for (const Rpc& rpc : rpcs) {
    SCOPED_TRACE(rpc.name);
    EXPECT_EQ(rpc.call("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(rpc.call("not-a-token").error_code(), grpc::StatusCode::UNAUTHENTICATED);
    const grpc::Status as_reader = rpc.call(reader);
    if (rpc.operate) {
      EXPECT_EQ(as_reader.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    } else {
      EXPECT_FALSE(is_auth_refusal(as_reader)) << as_reader.error_message();
    }
    const grpc::Status as_operator = rpc.call(op);
    EXPECT_FALSE(is_auth_refusal(as_operator)) << as_operator.error_message();
  }

  // The join token's RPCs: SealShard and Ingest refuse everything else.
  for (const std::string& t : {std::string(), reader, op}) {
    v1::SealShardRequest req;
    req.set_run_id("r");
    req.set_worker_id("w");
    v1::SealedShard sealed;
    const grpc::Status s = collector->SealShard(Ctx(t).get(), req, &sealed);
    EXPECT_TRUE(is_auth_refusal(s)) << s.error_message();
    auto ctx = Ctx(t);
    auto ingest = collector->Ingest(ctx.get());
    v1::SampleBatch batch;
    batch.set_run_id("r");
    batch.set_worker_id("w");
    batch.set_sequence(1);
    ingest->Write(batch);
    ingest->WritesDone();
    v1::IngestAck ack;
    EXPECT_FALSE(ingest->Read(&ack));
    EXPECT_TRUE(is_auth_refusal(ingest->Finish()));
  }
  // No batch got in.
  {
    v1::GetRunStatsRequest req;
    req.set_run_id("r");
    v1::RunStats stats;
    EXPECT_EQ(collector->GetRunStats(Ctx(op).get(), req, &stats).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }

  // A worker without the join token never attaches, and says why.
  worker_ = StartWorker("worker", {});
  ASSERT_TRUE(testing_util::WaitUntil(
      [&] { return worker_->ReadLog().find("needs the join token") != std::string::npos; },
      absl::Seconds(20), "the worker's refusal"));
  v1::ListWorkersResponse workers;
  ASSERT_TRUE(orchestrator->ListWorkers(Ctx(reader).get(), v1::ListWorkersRequest(), &workers).ok());
  EXPECT_EQ(workers.workers_size(), 0);
  worker_->Stop();
  // With it (from the environment), it attaches and a run started with the
  // CLI's operator token (from a file) completes.
  worker_ = StartWorker("worker", {}, {"LLMLOAD_JOIN_TOKEN=" + join});
  ASSERT_TRUE(testing_util::WaitUntil(
      [&] {
        v1::ListWorkersResponse r;
        return orchestrator->ListWorkers(Ctx(reader).get(), v1::ListWorkersRequest(), &r).ok() &&
               r.workers_size() == 1;
      },
      absl::Seconds(20), "the worker to attach"));
  WriteFile(dir_ + "/spec.json", absl::StrCat(R"({"name": "security", "target": {"protocol": )",
                                              R"("CENTRIFUGO_EMULATOR", "url": "http://127.0.0.1:)",
                                              emulator_port_,
                                              R"("}, "load": {"closed": {"clients": 4, )",
                                              R"("cyclesPerClient": 2}}, "emulation": )",
                                              R"({"lengthWords": 5, "tokenDelay": "0.001s"}})"));
  const std::string orch = absl::StrCat("--orchestrator 127.0.0.1:", orchestrator_port_);
  testing_util::ShellResult refused =
      Cli("LLMLOAD_TOKEN=" + reader, absl::StrCat("run -f spec.json ", orch));
  EXPECT_NE(refused.exit_code, 0) << refused.output;
  EXPECT_NE(refused.output.find("PERMISSION_DENIED"), std::string::npos) << refused.output;
  testing_util::ShellResult done =
      Cli("LLMLOAD_TOKEN=", absl::StrCat("run -f spec.json --token-file operator --timeout 60 ",
                                         orch));
  EXPECT_EQ(done.exit_code, 0) << done.output;
  EXPECT_NE(done.output.find("COMPLETED"), std::string::npos) << done.output;

  // Rotation: a new operator token written to the file is taken within
  // seconds, and the old one stops working.
  const std::string op2 = "op-rotated-31d9c4";
  WriteFile(dir_ + "/operator", op2 + "\n");
  ASSERT_TRUE(testing_util::WaitUntil(
      [&] {
        v1::ListRunsResponse r;
        return orchestrator->ListRuns(Ctx(op2).get(), v1::ListRunsRequest(), &r).ok();
      },
      absl::Seconds(10), "the rotated token"));
  v1::ListRunsResponse runs;
  EXPECT_EQ(orchestrator->ListRuns(Ctx(op).get(), v1::ListRunsRequest(), &runs).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // No token reached a log.
  for (const char* log : {"collector.log", "orchestrator.log", "worker.log"}) {
    const std::string text = ReadFile(dir_ + "/" + log);
    for (const std::string& t : {op, op2, reader, join}) {
      EXPECT_EQ(text.find(t), std::string::npos) << log;
    }
  }
}

TEST_F(SecurityTest, MutualTlsOnEveryLinkRefusesOtherCasAndPicksUpReplacedCertificates) {
  Pki pki(dir_);
  ASSERT_TRUE(pki.MakeCa("ca"));
  ASSERT_TRUE(pki.MakeCa("other-ca"));
  ASSERT_TRUE(pki.MakeLeaf("ca", "service"));
  ASSERT_TRUE(pki.MakeLeaf("ca", "client"));
  ASSERT_TRUE(pki.MakeLeaf("other-ca", "stranger"));
  StartEmulator();
  const std::vector<std::string> tls = {"--tls_cert_file=" + pki.Cert("service"),
                                        "--tls_key_file=" + pki.Key("service"),
                                        "--tls_ca_file=" + pki.Cert("ca"),
                                        "--tls_reload_seconds=1"};
  ASSERT_NO_FATAL_FAILURE(StartServices(tls));
  // Worker -> orchestrator and collector, orchestrator -> collector: all mTLS.
  worker_ = StartWorker("worker", tls);
  auto trusted = v1::Orchestrator::NewStub(
      Channel(orchestrator_port_, TlsClient(pki.Cert("ca"), pki.Cert("client"), pki.Key("client"))));
  ASSERT_TRUE(testing_util::WaitUntil(
      [&] {
        v1::ListWorkersResponse r;
        return trusted->ListWorkers(Ctx().get(), v1::ListWorkersRequest(), &r).ok() &&
               r.workers_size() == 1;
      },
      absl::Seconds(20), "the worker to attach over mTLS"));

  // The CLI over mTLS runs to completion (statistics from the collector
  // reach GetRun through the orchestrator's mTLS link).
  testing_util::ShellResult done = Cli(
      "",
      absl::StrCat("run --url http://127.0.0.1:", emulator_port_, " --clients 3 --cycles 2 ",
                   "--length 5 --delay 0.001 --timeout 60 --orchestrator 127.0.0.1:",
                   orchestrator_port_, " --tls-ca-file ", pki.Cert("ca"), " --tls-cert-file ",
                   pki.Cert("client"), " --tls-key-file ", pki.Key("client")));
  EXPECT_EQ(done.exit_code, 0) << done.output;
  EXPECT_NE(done.output.find("COMPLETED"), std::string::npos) << done.output;
  EXPECT_NE(done.output.find("ok=6,"), std::string::npos) << done.output;

  // Refused: plaintext, TLS without a client certificate, a client
  // certificate from another CA.
  for (const auto& credentials :
       {grpc::InsecureChannelCredentials(), TlsClient(pki.Cert("ca"), "", ""),
        TlsClient(pki.Cert("ca"), pki.Cert("stranger"), pki.Key("stranger"))}) {
    for (int port : {orchestrator_port_, collector_port_}) {
      auto channel = Channel(port, credentials);
      v1::ListWorkersResponse r;
      grpc::Status s = v1::Orchestrator::NewStub(channel)->ListWorkers(
          Ctx().get(), v1::ListWorkersRequest(), &r);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << port << " " << s.error_message();
    }
  }
  // The container probe speaks TLS with the service's own certificate.
  testing_util::ShellResult probe = Cli(
      absl::StrCat("LLMLOAD_TLS_CERT_FILE=", pki.Cert("service"),
                   " LLMLOAD_TLS_KEY_FILE=", pki.Key("service")),
      absl::StrCat("health --address 127.0.0.1:", collector_port_));
  EXPECT_EQ(probe.exit_code, 0) << probe.output;

  // The collector's certificate replaced on disk by one from another CA: a
  // client that trusts only that CA gets through once it is picked up.
  auto only_other = [&] {
    auto stub = v1::Collector::NewStub(Channel(
        collector_port_,
        TlsClient(pki.Cert("other-ca"), pki.Cert("client"), pki.Key("client"))));
    v1::GetRunStatsRequest req;
    req.set_run_id("no-such-run");
    v1::RunStats stats;
    return stub->GetRunStats(Ctx().get(), req, &stats);
  };
  EXPECT_EQ(only_other().error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(pki.MakeLeaf("other-ca", "service-next"));
  std::filesystem::copy_file(pki.Key("service-next"), pki.Key("service"),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(pki.Cert("service-next"), pki.Cert("service"),
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_TRUE(testing_util::WaitUntil(
      [&] { return only_other().error_code() == grpc::StatusCode::NOT_FOUND; },
      absl::Seconds(20), "the replaced certificate to be served"));
}

TEST_F(SecurityTest, TargetsOutsideTheAllowlistAreRefusedBeforeAnythingIsDispatched) {
  StartEmulator();
  ASSERT_NO_FATAL_FAILURE(StartServices({}));
  worker_ = StartWorker("worker", {});
  auto orchestrator = v1::Orchestrator::NewStub(Channel(orchestrator_port_));
  ASSERT_TRUE(testing_util::WaitUntil(
      [&] {
        v1::ListWorkersResponse r;
        return orchestrator->ListWorkers(Ctx().get(), v1::ListWorkersRequest(), &r).ok() &&
               r.workers_size() == 1;
      },
      absl::Seconds(20), "the worker to attach"));
  for (const std::string& url : {std::string("http://api.example.invalid/v1"),
                                 std::string("http://192.0.2.7:8080"),
                                 std::string("http://[2001:db8::7]:8080")}) {
    SCOPED_TRACE(url);
    v1::StartRunRequest req;
    *req.mutable_spec() = SmokeSpec(emulator_port_);
    req.mutable_spec()->mutable_target()->set_url(url);
    v1::Run run;
    grpc::Status s = orchestrator->StartRun(Ctx().get(), req, &run);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(s.error_message().find("--allow_targets"), std::string::npos) << s.error_message();
  }
  v1::ListRunsResponse runs;
  ASSERT_TRUE(orchestrator->ListRuns(Ctx().get(), v1::ListRunsRequest(), &runs).ok());
  EXPECT_EQ(runs.runs_size(), 0);
  EXPECT_EQ(worker_->ReadLog().find("Shard started."), std::string::npos);
  // The default lets the emulator on loopback through.
  v1::StartRunRequest req;
  *req.mutable_spec() = SmokeSpec(emulator_port_);
  v1::Run run;
  EXPECT_TRUE(orchestrator->StartRun(Ctx().get(), req, &run).ok());
}

}  // namespace
}  // namespace llmload
