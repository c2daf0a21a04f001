// File: conversation.h
//
// The client-side history of a multi-turn conversation (Target.turns) for
// the protocols that resend it with every request (OpenAI, Anthropic,
// Gemini): the user messages asked so far and the assistant text actually
// received, in order.
//
//   conv.Begin(step.turn, prompt.text, prompt.conversation);  // 1: afresh
//   body = RequestBody(..., conv.Messages());
//   conv.AppendReply(chunk_text);               // per content chunk
//   conv.End(/*answered=*/true);
//
// A turn whose request fails, or is abandoned before any text arrived,
// leaves no trace: the history keeps alternating user / assistant, as the
// providers require. Sending the same request again (a resend after a stale
// keep-alive connection) begins it afresh.
//
// Loop-confined, like the session that owns it.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/protocol/provider_stream.h"
#include "llmload/v1/run.pb.h"

namespace llmload::worker {

class Conversation {
 public:
  // The next request is turn `turn` of its conversation (1: a new one). `user` is the turn's user message; on
  // turn 1 a dataset entry (`entry`, may be null) is sent whole instead.
  void Begin(int32_t turn, std::string_view user,
             const v1::PromptConversation* entry);
  // The messages the request sends: the history, then this turn's.
  const std::vector<protocol::llm::ChatMessage>& Messages() const { return views_; }
  // Text of the answer as it arrives.
  void AppendReply(std::string_view text) { reply_.append(text); }
  // The request ended. `answered`: it completed or was abandoned mid-answer;
  // the turn stays in the history when some text arrived.
  void End(bool answered);

  // Messages kept as history (sent again by the next turn).
  size_t history_size() const { return committed_; }

 private:
  void Rebuild();

  std::vector<std::pair<std::string, std::string>> messages_;  // (role, content)
  size_t committed_ = 0;  // messages_[0, committed_) is the history
  std::string reply_;
  std::vector<protocol::llm::ChatMessage> views_;
};

}  // namespace llmload::worker
