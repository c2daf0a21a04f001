// Fuzzes the HTTP/1.1 response reader as a keep-alive connection sees it:
// the input is a stream of responses, read one after another (Reset after
// each completes) and ended by EOF. The first byte picks the size of the
// reads. Never crash; never consume more than was fed; hold no more than the
// head limit; never hand out more body than was input; and produce the same
// heads, body bytes, completions and final status whether the input comes
// whole or in pieces.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lib/protocol/http1_client.h"

namespace {

namespace http1 = llmload::protocol::http1;

constexpr size_t kMaxHead = 512;

// Everything observable about a run, flattened into one string for
// comparison.
class Transcript final : public http1::ResponseSink {
 public:
  void OnHead(const http1::ResponseHead& head) override {
    if (in_response_ || head.head_bytes > kMaxHead || head.status < 200 || head.status > 599) {
      __builtin_trap();
    }
    in_response_ = true;
    text += "H" + std::to_string(head.status) + (head.keep_alive ? "k" : "c") + "|" +
            head.retry_after + "|" + head.retry_after_ms + "|" + std::to_string(head.head_bytes) +
            "\n";
  }
  bool OnBody(std::string_view bytes) override {
    if (!in_response_ || bytes.empty()) {
      __builtin_trap();
    }
    body_bytes += bytes.size();
    text.append(bytes);
    return true;
  }
  void OnComplete() override {
    if (!in_response_) {
      __builtin_trap();
    }
    in_response_ = false;
    text += "\nC\n";
  }

  std::string text;
  size_t body_bytes = 0;

 private:
  bool in_response_ = false;
};

// Reads `input` in reads of `step` bytes; returns the transcript.
std::string ReadAll(std::string_view input, size_t step) {
  http1::ResponseReader reader(kMaxHead);
  Transcript t;
  absl::Status status;
  for (size_t at = 0; at < input.size() && status.ok(); at += step) {
    std::string_view read = input.substr(at, step);
    while (!read.empty()) {
      absl::StatusOr<size_t> used = reader.Feed(read, t);
      if (!used.ok()) {
        status = used.status();
        break;
      }
      if (*used > read.size()) {
        __builtin_trap();
      }
      if (reader.buffered() > kMaxHead) {
        __builtin_trap();
      }
      read.remove_prefix(*used);
      if (reader.complete()) {
        reader.Reset();
      } else if (!read.empty()) {
        __builtin_trap();  // the sink never stops the reader
      }
    }
  }
  if (status.ok()) {
    status = reader.OnEof(t);
  }
  if (t.body_bytes > input.size()) {
    __builtin_trap();
  }
  t.text += "status " + std::to_string(static_cast<int>(status.code()));
  return t.text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const size_t step = 1 + data[0] % 64;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string whole = ReadAll(input, input.size() + 1);
  if (ReadAll(input, step) != whole) {
    __builtin_trap();
  }
  if (input.size() <= 4096 && ReadAll(input, 1) != whole) {
    __builtin_trap();
  }
  return 0;
}
