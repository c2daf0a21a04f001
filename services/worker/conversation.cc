#include "services/worker/conversation.h"

namespace llmload::worker {

void Conversation::Begin(int32_t turn, std::string_view user,
                         const v1::PromptConversation* entry) {
  if (turn <= 1) {
    messages_.clear();
    committed_ = 0;
  } else {
    messages_.resize(committed_);  // drops a pending turn (a resend begins it afresh)
  }
  reply_.clear();
  if (turn <= 1 && entry != nullptr && entry->messages_size() > 0) {
    for (const v1::PromptMessage& m : entry->messages()) {
      messages_.emplace_back(m.role(), m.content());
    }
  } else {
    messages_.emplace_back("user", std::string(user));
  }
  Rebuild();
}

void Conversation::End(bool answered) {
  if (answered && !reply_.empty()) {
    messages_.emplace_back("assistant", std::move(reply_));
    committed_ = messages_.size();
  } else {
    messages_.resize(committed_);
  }
  reply_.clear();
  Rebuild();
}

void Conversation::Rebuild() {
  views_.clear();
  for (const auto& [role, content] : messages_) {
    views_.push_back(protocol::llm::ChatMessage{role, content});
  }
}

}  // namespace llmload::worker
