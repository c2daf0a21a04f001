// A planted key, passed every way a user might pass it, against the real
// suite: by name (apiKeyEnv, headersFromEnv) it reaches the target and runs;
// as a literal (a header, URL userinfo, a URL query) the run is refused
// without the key being quoted. Afterwards the key is in none of the
// services' logs, none of their database files, no GetRun / ListRuns /
// WatchRun answer, no CLI report (text or JSON) and not in /metrics.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/mono_clock.h"
#include "tests/testing/stack.h"

namespace llmload {
namespace {

std::string RandomKey() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::uniform_int_distribution<int> pick(0, sizeof(kAlphabet) - 2);
  std::string key = "sk-";
  while (key.size() < 40) {
    key.push_back(kAlphabet[pick(rd)]);
  }
  return key;
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out);
  return out;
}

class SecretsTest : public testing_util::StackTest {
 protected:
  void SetUp() override {
    key_ = RandomKey();
    // The workers inherit it: the only place the key legitimately lives.
    ASSERT_EQ(setenv("LLMLOAD_TEST_PLANTED_KEY", key_.c_str(), 1), 0);
    StartStack(testing_util::StackOptions());
  }
  void TearDown() override {
    StackTest::TearDown();
    unsetenv("LLMLOAD_TEST_PLANTED_KEY");
  }

  v1::RunSpec Spec(v1::Protocol protocol, const std::string& url) {
    v1::RunSpec spec;
    spec.set_name("secrets");
    spec.mutable_target()->set_protocol(protocol);
    spec.mutable_target()->set_url(url);
    spec.mutable_target()->set_model("emu-model");
    spec.mutable_load()->mutable_closed()->set_clients(2);
    spec.mutable_load()->mutable_closed()->set_cycles_per_client(2);
    spec.mutable_emulation()->set_length_words(5);
    spec.mutable_emulation()->mutable_token_delay()->set_nanos(1000000);
    return spec;
  }

  // StartRun refused with INVALID_ARGUMENT, the key not in the answer.
  void ExpectRefused(const v1::RunSpec& spec, const std::string& way) {
    v1::StartRunRequest req;
    *req.mutable_spec() = spec;
    v1::Run run;
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
    const grpc::Status st = stub_->StartRun(&ctx, req, &run);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << way;
    EXPECT_EQ(st.error_message().find(key_), std::string::npos) << way << ": " << st.error_message();
  }

  std::string key_;
};

TEST_F(SecretsTest, APlantedKeyAppearsNowhere) {
  // 1. By name: the runs complete.
  std::vector<std::string> runs;
  v1::RunSpec by_api_key_env = Spec(v1::OPENAI_CHAT, EmulatorUrl());
  by_api_key_env.mutable_target()->set_api_key_env("LLMLOAD_TEST_PLANTED_KEY");
  v1::RunSpec by_header_env = Spec(v1::ANTHROPIC_MESSAGES, EmulatorUrl());
  (*by_header_env.mutable_target()->mutable_headers_from_env())["x-gateway-token"] =
      "LLMLOAD_TEST_PLANTED_KEY";
  for (const v1::RunSpec& spec : {by_api_key_env, by_header_env}) {
    const v1::Run started = StartRun(spec);
    ASSERT_FALSE(started.id().empty());
    const v1::Run done = WaitForEnd(started.id(), absl::Seconds(60));
    EXPECT_EQ(done.state(), v1::COMPLETED) << done.error();
    EXPECT_EQ(done.progress().requests_ok(), 4);
    runs.push_back(started.id());
  }

  // 2. As literals: refused, never quoted.
  v1::RunSpec literal_header = Spec(v1::OPENAI_CHAT, EmulatorUrl());
  (*literal_header.mutable_target()->mutable_headers())["Authorization"] = "Bearer " + key_;
  ExpectRefused(literal_header, "a literal header");
  v1::RunSpec literal_google = Spec(v1::GEMINI, EmulatorUrl());
  (*literal_google.mutable_target()->mutable_headers())["x-goog-api-key"] = key_;
  ExpectRefused(literal_google, "a literal x-goog-api-key");
  ExpectRefused(Spec(v1::OPENAI_CHAT, absl::StrCat("http://user:", key_, "@127.0.0.1:",
                                                   emulator_port_)),
                "URL userinfo");
  ExpectRefused(Spec(v1::GEMINI, absl::StrCat(EmulatorUrl(), "/v1beta?key=", key_)),
                "a URL query");

  // 3. Every answer about the runs.
  std::string answers;
  for (const std::string& id : runs) {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
    v1::GetRunRequest req;
    req.set_id(id);
    v1::Run run;
    ASSERT_TRUE(stub_->GetRun(&ctx, req, &run).ok());
    answers += run.SerializeAsString() + Json(run);
    grpc::ClientContext wctx;
    wctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
    v1::WatchRunRequest wreq;
    wreq.set_id(id);
    auto reader = stub_->WatchRun(&wctx, wreq);
    v1::RunUpdate update;
    int updates = 0;
    while (reader->Read(&update)) {
      answers += update.SerializeAsString() + Json(update);
      ++updates;
    }
    EXPECT_GE(updates, 1);
    for (const char* format : {"", " --json"}) {
      const testing_util::ShellResult r = testing_util::RunShell(
          absl::StrCat("timeout 30 ", testing_util::BinPath("llmload"), " get ", id,
                       " --orchestrator 127.0.0.1:", orchestrator_port_, format));
      EXPECT_EQ(r.exit_code, 0) << r.output;
      EXPECT_NE(r.output.find(id), std::string::npos) << r.output;
      answers += r.output;
    }
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(testing_util::GrpcDeadline(absl::Seconds(20)));
    v1::ListRunsResponse list;
    ASSERT_TRUE(stub_->ListRuns(&ctx, v1::ListRunsRequest(), &list).ok());
    EXPECT_GE(list.runs_size(), 2);
    answers += list.SerializeAsString() + Json(list);
  }
  int status = 0;
  answers += testing_util::HttpGet(metrics_port_, "/metrics", &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(answers.find(key_), std::string::npos) << "the key is in an answer";

  // 4. Every file the services wrote (logs, databases and their WAL files),
  // after they stopped.
  StackTest::TearDown();
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_)) {
    if (!entry.is_regular_file()) {
      continue;
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    ++files;
    EXPECT_EQ(bytes.str().find(key_), std::string::npos) << "the key is in " << entry.path();
  }
  EXPECT_GE(files, 4);  // logs of every service and the two databases at least
}

}  // namespace
}  // namespace llmload
