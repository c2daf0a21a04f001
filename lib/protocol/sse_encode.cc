#include "lib/protocol/sse_encode.h"

namespace llmload::protocol::sse {

void AppendEventStart(std::string* out, std::string_view event, bool crlf) {
  if (!event.empty()) {
    out->append("event: ");
    out->append(event);
    out->append(crlf ? "\r\n" : "\n");
  }
  out->append("data: ");
}

void AppendEventEnd(std::string* out, bool crlf) { out->append(crlf ? "\r\n\r\n" : "\n\n"); }

void AppendEvent(std::string* out, std::string_view event, std::string_view data, bool crlf) {
  AppendEventStart(out, event, crlf);
  out->append(data);
  AppendEventEnd(out, crlf);
}

}  // namespace llmload::protocol::sse
