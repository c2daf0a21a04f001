// The worker reads the run spec with protobuf's inline accessors, compiled
// with the worker's flags, while the shared libprotobuf (JSON, reflection,
// map bookkeeping) and the generated llmload_proto code write it. Every one
// of them must agree on where each field lives. A message with a map field is
// where a sanitizer build can disagree (cmake/protobuf_tsan_abi.h): there,
// every field laid out after v1::Target's `headers` was read at the wrong
// offset. Part of the ThreadSanitizer stage of scripts/test.sh.

#include <string>

#include <google/protobuf/util/json_util.h>

#include "gtest/gtest.h"
#include "llmload/v1/orchestrator.pb.h"

namespace llmload::v1 {
namespace {

constexpr char kTargetJson[] = R"({
  "protocol": "OPENAI_CHAT",
  "url": "http://127.0.0.1:1/base",
  "model": "m",
  "headers": {"X-A": "1", "X-B": "2"},
  "apiKeyEnv": "KEY_ENV",
  "wsUrl": "ws://127.0.0.1:2/ws",
  "requestTimeout": "3s",
  "prompts": ["p1", "p2"],
  "insecureSkipVerify": true,
  "reconnectAttempts": 7,
  "reconnectBackoff": "0.250s",
  "sourceAddresses": ["127.0.0.2"],
  "tenant": "t",
  "noStream": true
})";

// Every kind of field on both sides of the map: enum, strings, the map
// itself, a sub-message, repeated strings, bool and int.
void ExpectTheTargetOfTheJson(const Target& t) {
  EXPECT_EQ(t.protocol(), OPENAI_CHAT);
  EXPECT_EQ(t.url(), "http://127.0.0.1:1/base");
  EXPECT_EQ(t.model(), "m");
  ASSERT_EQ(t.headers().size(), 2u);
  EXPECT_EQ(t.headers().at("X-A"), "1");
  EXPECT_EQ(t.headers().at("X-B"), "2");
  EXPECT_EQ(t.api_key_env(), "KEY_ENV");
  EXPECT_EQ(t.ws_url(), "ws://127.0.0.1:2/ws");
  EXPECT_TRUE(t.has_request_timeout());
  EXPECT_EQ(t.request_timeout().seconds(), 3);
  ASSERT_EQ(t.prompts_size(), 2);
  EXPECT_EQ(t.prompts(1), "p2");
  EXPECT_TRUE(t.insecure_skip_verify());
  EXPECT_EQ(t.reconnect_attempts(), 7);
  EXPECT_EQ(t.reconnect_backoff().nanos(), 250000000);
  ASSERT_EQ(t.source_addresses_size(), 1);
  EXPECT_EQ(t.source_addresses(0), "127.0.0.2");
  EXPECT_EQ(t.tenant(), "t");
  EXPECT_TRUE(t.no_stream());
}

TEST(SpecLayoutTest, TargetFieldsAroundTheHeadersMapReadBackAsWritten) {
  // Written by the shared library (JSON parser, through reflection).
  RunSpec spec;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  std::string(R"({"target": )") + kTargetJson + "}", &spec)
                  .ok());
  ExpectTheTargetOfTheJson(spec.target());

  // Copied by the generated code, as ShardRunner::Create copies the spec.
  ShardAssignment assignment;
  *assignment.mutable_spec() = spec;
  const RunSpec copy = assignment.spec();
  ExpectTheTargetOfTheJson(copy.target());

  // Swapped by the library's out-of-line map code.
  Target swapped;
  swapped.Swap(assignment.mutable_spec()->mutable_target());
  ExpectTheTargetOfTheJson(swapped);
  EXPECT_TRUE(assignment.spec().target().headers().empty());
  EXPECT_EQ(assignment.spec().target().protocol(), PROTOCOL_UNSPECIFIED);

  // Changed here (inline map code), then serialized and parsed by the
  // generated code and printed by the library.
  (*swapped.mutable_headers())["X-C"] = "3";
  std::string wire;
  ASSERT_TRUE(swapped.SerializeToString(&wire));
  Target parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  EXPECT_EQ(parsed.headers().size(), 3u);
  EXPECT_EQ(parsed.headers().at("X-C"), "3");
  EXPECT_EQ(parsed.tenant(), "t");
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(parsed, &json).ok());
  EXPECT_NE(json.find(R"("X-C":"3")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("tenant":"t")"), std::string::npos) << json;
}

}  // namespace
}  // namespace llmload::v1
