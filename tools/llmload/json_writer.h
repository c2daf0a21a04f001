// File: json_writer.h
//
// A small streaming JSON writer with two-space indentation, for reports a
// person may read as well as a program: keys keep the order they are
// written in, numbers are the shortest decimal that reads back exactly.
//
//   JsonWriter w;
//   w.BeginObject();
//   w.Key("schema"); w.String("llmload.report/v1");
//   w.Key("count"); w.Uint(3);
//   w.EndObject();
//   std::string text = w.Take();
//
// The caller keeps the calls balanced (a Key before every value in an
// object). Thread-compatible.

#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmload::cli {

class JsonWriter {
 public:
  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }

  void Key(std::string_view key) {
    Separate();
    AppendString(key);
    out_ += ": ";
    after_key_ = true;
  }
  void String(std::string_view v) {
    Value();
    AppendString(v);
  }
  void Number(double v) {
    Value();
    out_ += Shortest(v);
  }
  void Int(int64_t v) {
    Value();
    out_ += std::to_string(v);
  }
  void Uint(uint64_t v) {
    Value();
    out_ += std::to_string(v);
  }
  void Bool(bool v) {
    Value();
    out_ += v ? "true" : "false";
  }
  void Null() {
    Value();
    out_ += "null";
  }
  // Inserts already-serialized JSON as a value (re-indented is not needed:
  // it is placed as is).
  void Raw(std::string_view json) {
    Value();
    out_ += json;
  }

  std::string Take() {
    out_ += '\n';
    return std::move(out_);
  }

  // The shortest decimal that reads back as exactly `v`; non-finite values
  // (which JSON cannot hold) become null.
  static std::string Shortest(double v) {
    if (!std::isfinite(v)) {
      return "null";
    }
    if (v == 0) {
      return "0";
    }
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    return ec == std::errc() ? std::string(buf, end) : std::string("null");
  }

  static void Escape(std::string_view s, std::string& out) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (const char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20) {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
          } else {
            out += ch;
          }
      }
    }
  }

 private:
  void AppendString(std::string_view s) {
    out_ += '"';
    Escape(s, out_);
    out_ += '"';
  }
  void Newline() {
    out_ += '\n';
    out_.append(2 * counts_.size(), ' ');
  }
  // Before a key or an array element: the comma and the line break.
  void Separate() {
    if (counts_.empty()) {
      return;
    }
    if (counts_.back()++ > 0) {
      out_ += ',';
    }
    Newline();
  }
  void Value() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    Separate();
  }
  void Open(char c) {
    Value();
    out_ += c;
    counts_.push_back(0);
  }
  void Close(char c) {
    const bool empty = counts_.back() == 0;
    counts_.pop_back();
    if (!empty) {
      Newline();
    }
    out_ += c;
  }

  std::string out_;
  std::vector<int> counts_;  // values written in each open container
  bool after_key_ = false;
};

}  // namespace llmload::cli
