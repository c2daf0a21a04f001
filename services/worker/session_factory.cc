#include "services/worker/session_factory.h"

#include "services/worker/centrifugo_session.h"
#include "services/worker/http_stream_session.h"
#include "services/worker/ws_llm_session.h"

namespace llmload::worker {

bool SessionSupported(v1::Protocol protocol) {
  switch (protocol) {
    case v1::CENTRIFUGO_EMULATOR:
    case v1::OPENAI_CHAT:
    case v1::ANTHROPIC_MESSAGES:
    case v1::GEMINI:
    case v1::OPENAI_RESPONSES:
    case v1::HTTP_JSON:
    case v1::WS_CHAT:
    case v1::REALM:
      return true;
    default:
      return false;
  }
}

std::shared_ptr<Session> MakeSession(v1::Protocol protocol, std::shared_ptr<LoopShard> shard,
                                     int32_t client_id) {
  switch (protocol) {
    case v1::OPENAI_CHAT:
    case v1::ANTHROPIC_MESSAGES:
    case v1::GEMINI:
    case v1::OPENAI_RESPONSES:
    case v1::HTTP_JSON:
      return MakeHttpStreamSession(std::move(shard), client_id);
    case v1::WS_CHAT:
    case v1::REALM:
      return MakeWsLlmSession(std::move(shard), client_id);
    default:
      return MakeCentrifugoSession(std::move(shard), client_id);
  }
}

}  // namespace llmload::worker
