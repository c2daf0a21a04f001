// examples/*.json are the run specs users pass unchanged to
// `grpcurl -d @ … llmload.v1.Orchestrator/StartRun` and `llmload run -f`:
// each must be a StartRunRequest in strict proto3 JSON (no unknown field,
// as grpcurl requires) whose spec validates, and together they must cover
// every protocol and every load model.

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "lib/validation/validation.h"
#include "llmload/v1/orchestrator.pb.h"

namespace llmload::validation {
namespace {

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::filesystem::path> Examples() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(LLMLOAD_SOURCE_DIR) / "examples")) {
    if (entry.path().extension() == ".json") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(ExamplesTest, EveryExampleIsAValidStartRunRequest) {
  const auto files = Examples();
  ASSERT_GE(files.size(), 9u);
  std::set<std::string> protocols;
  std::set<int> load_models;
  std::set<std::string> names;
  for (const auto& path : files) {
    SCOPED_TRACE(path.filename().string());
    v1::StartRunRequest req;
    google::protobuf::util::JsonParseOptions strict;
    strict.ignore_unknown_fields = false;
    const auto st = google::protobuf::util::JsonStringToMessage(Slurp(path), &req, strict);
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_TRUE(req.has_spec());
    const absl::Status valid = ValidateRunSpec(req.spec());
    EXPECT_TRUE(valid.ok()) << valid;
    // The file is named after the run, so `llmload list` shows where it came from.
    EXPECT_EQ(req.spec().name(), path.stem().string());
    EXPECT_TRUE(names.insert(req.spec().name()).second);
    // Every example aims at the emulator service of docker-compose and of
    // deploy/k8s (both name it `emulator`).
    EXPECT_NE(req.spec().target().url().find("://emulator:8080"), std::string::npos)
        << req.spec().target().url();
    protocols.insert(v1::Protocol_Name(req.spec().target().protocol()));
    load_models.insert(static_cast<int>(req.spec().load().model_case()));
  }
  // Every protocol has an example.
  std::set<std::string> every;
  for (int p = v1::Protocol_MIN; p <= v1::Protocol_MAX; ++p) {
    if (v1::Protocol_IsValid(p) && p != v1::PROTOCOL_UNSPECIFIED) {
      every.insert(v1::Protocol_Name(static_cast<v1::Protocol>(p)));
    }
  }
  EXPECT_EQ(protocols, every);
  EXPECT_EQ(load_models, (std::set<int>{v1::Load::kClosed, v1::Load::kDuration, v1::Load::kOpen}));
}

TEST(ExamplesTest, SmokeIsTheDefaultRunOfTheReadme) {
  v1::StartRunRequest req;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  Slurp(std::filesystem::path(LLMLOAD_SOURCE_DIR) / "examples/smoke.json"), &req)
                  .ok());
  EXPECT_EQ(req.spec().target().protocol(), v1::CENTRIFUGO_EMULATOR);
  EXPECT_EQ(req.spec().load().closed().clients(), 10);
  EXPECT_EQ(req.spec().load().closed().cycles_per_client(), 5);
  EXPECT_EQ(req.spec().emulation().length_words(), 100);
}

}  // namespace
}  // namespace llmload::validation
