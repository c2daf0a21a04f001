#include "lib/metrics/prom_text.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace llmload::metrics {
namespace {

bool IsNameStart(char c) { return absl::ascii_isalpha(c) || c == '_' || c == ':'; }
bool IsNameChar(char c) { return IsNameStart(c) || absl::ascii_isdigit(c); }
bool IsLabelStart(char c) { return absl::ascii_isalpha(c) || c == '_'; }
bool IsLabelChar(char c) { return IsLabelStart(c) || absl::ascii_isdigit(c); }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// A cursor over one line.
class Cursor {
 public:
  explicit Cursor(absl::string_view s) : s_(s) {}
  bool done() const { return at_ >= s_.size(); }
  char peek() const { return done() ? '\0' : s_[at_]; }
  void SkipBlanks() {
    while (!done() && IsBlank(s_[at_])) {
      ++at_;
    }
  }
  bool Eat(char c) {
    if (peek() == c && !done()) {
      ++at_;
      return true;
    }
    return false;
  }
  absl::string_view Take(bool (*first)(char), bool (*rest)(char)) {
    const size_t begin = at_;
    if (done() || !first(s_[at_])) {
      return {};
    }
    ++at_;
    while (!done() && rest(s_[at_])) {
      ++at_;
    }
    return s_.substr(begin, at_ - begin);
  }
  absl::string_view Token() {
    const size_t begin = at_;
    while (!done() && !IsBlank(s_[at_])) {
      ++at_;
    }
    return s_.substr(begin, at_ - begin);
  }
  // A quoted label value with its escapes undone.
  absl::StatusOr<std::string> Quoted() {
    if (!Eat('"')) {
      return absl::InvalidArgumentError("label value must start with '\"'");
    }
    std::string out;
    while (!done()) {
      const char c = s_[at_++];
      if (c == '"') {
        return out;
      }
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (done()) {
        break;
      }
      const char e = s_[at_++];
      if (e == '\\' || e == '"') {
        out.push_back(e);
      } else if (e == 'n') {
        out.push_back('\n');
      } else {
        return absl::InvalidArgumentError(absl::StrCat("bad escape '\\", std::string(1, e),
                                                       "' in a label value"));
      }
    }
    return absl::InvalidArgumentError("unterminated label value");
  }

 private:
  absl::string_view s_;
  size_t at_ = 0;
};

// `{a="1",b="2"}` (the cursor at '{'); sorted, duplicates refused.
absl::StatusOr<PromLabels> ParseLabels(Cursor& c) {
  PromLabels labels;
  if (!c.Eat('{')) {
    return labels;
  }
  while (true) {
    c.SkipBlanks();
    if (c.Eat('}')) {
      break;
    }
    const absl::string_view name = c.Take(IsLabelStart, IsLabelChar);
    if (name.empty()) {
      return absl::InvalidArgumentError("expected a label name");
    }
    c.SkipBlanks();
    if (!c.Eat('=')) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected '=' after label ", name, " (only equality is supported)"));
    }
    if (c.peek() == '~') {
      return absl::InvalidArgumentError(absl::StrCat(
          "label ", name, ": regular-expression matchers are not supported (only equality is)"));
    }
    c.SkipBlanks();
    absl::StatusOr<std::string> value = c.Quoted();
    if (!value.ok()) {
      return value.status();
    }
    labels.emplace_back(std::string(name), *std::move(value));
    c.SkipBlanks();
    if (c.Eat(',')) {
      continue;
    }
    if (c.Eat('}')) {
      break;
    }
    return absl::InvalidArgumentError("expected ',' or '}' after a label");
  }
  std::sort(labels.begin(), labels.end());
  for (size_t i = 1; i < labels.size(); ++i) {
    if (labels[i].first == labels[i - 1].first) {
      return absl::InvalidArgumentError(absl::StrCat("label ", labels[i].first, " given twice"));
    }
  }
  return labels;
}

absl::StatusOr<double> ParseValue(absl::string_view token) {
  if (token == "NaN") {
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (token == "+Inf" || token == "Inf") {
    return std::numeric_limits<double>::infinity();
  }
  if (token == "-Inf") {
    return -std::numeric_limits<double>::infinity();
  }
  double v = 0;
  // SimpleAtod also takes "inf"/"nan" spellings and hex; the format does
  // not, so only decimal digits, signs, '.', and exponents pass.
  const bool plain = !token.empty() && std::all_of(token.begin(), token.end(), [](char ch) {
    return absl::ascii_isdigit(ch) || ch == '.' || ch == '-' || ch == '+' || ch == 'e' ||
           ch == 'E';
  });
  if (!plain || !absl::SimpleAtod(token, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("bad sample value '", token.substr(0, 40),
                                                   "'"));
  }
  return v;
}

const char* KnownType(absl::string_view t) {
  for (const char* k : {"counter", "gauge", "histogram", "summary", "untyped"}) {
    if (t == k) {
      return k;
    }
  }
  return nullptr;
}

// The type of a sample named `name`: its own family's, or that of the
// histogram / summary family whose suffixed line it is.
std::string TypeOf(const std::map<std::string, std::string, std::less<>>& types,
                   absl::string_view name) {
  if (auto it = types.find(name); it != types.end()) {
    return it->second;
  }
  for (absl::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (!absl::EndsWith(name, suffix)) {
      continue;
    }
    auto it = types.find(name.substr(0, name.size() - suffix.size()));
    if (it == types.end()) {
      continue;
    }
    if (it->second == "histogram" || (it->second == "summary" && suffix != "_bucket")) {
      return it->second;
    }
  }
  return "untyped";
}

absl::Status LineError(size_t line, const absl::Status& s) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", s.message()));
}

void AppendEscaped(std::string* out, absl::string_view v) {
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out->push_back('\\');
      out->push_back(c);
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

}  // namespace

absl::StatusOr<std::vector<PromSample>> ParseExposition(absl::string_view text) {
  if (text.size() > kMaxExpositionBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("exposition of ", text.size(), " bytes is over the limit of ",
                     kMaxExpositionBytes));
  }
  std::vector<PromSample> samples;
  std::map<std::string, std::string, std::less<>> types;
  size_t number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    Cursor c(line);
    c.SkipBlanks();
    if (c.done()) {
      continue;
    }
    if (c.Eat('#')) {
      c.SkipBlanks();
      const absl::string_view keyword = c.Token();
      if (keyword != "TYPE") {
        continue;  // HELP and plain comments carry nothing we keep
      }
      c.SkipBlanks();
      const absl::string_view name = c.Take(IsNameStart, IsNameChar);
      c.SkipBlanks();
      const absl::string_view type = c.Token();
      c.SkipBlanks();
      if (name.empty() || type.empty() || !c.done()) {
        return LineError(number, absl::InvalidArgumentError("malformed # TYPE line"));
      }
      // Types outside 0.0.4 (OpenMetrics' info, stateset, ...) read as
      // untyped: their samples are still plain numbers.
      const char* known = KnownType(type);
      types[std::string(name)] = known != nullptr ? known : "untyped";
      continue;
    }
    PromSample sample;
    sample.name = std::string(c.Take(IsNameStart, IsNameChar));
    if (sample.name.empty()) {
      return LineError(number, absl::InvalidArgumentError("expected a metric name"));
    }
    absl::StatusOr<PromLabels> labels = ParseLabels(c);
    if (!labels.ok()) {
      return LineError(number, labels.status());
    }
    sample.labels = *std::move(labels);
    const bool gap = IsBlank(c.peek());
    c.SkipBlanks();
    if (!gap || c.done()) {
      return LineError(number, absl::InvalidArgumentError("expected a value after the series"));
    }
    absl::StatusOr<double> value = ParseValue(c.Token());
    if (!value.ok()) {
      return LineError(number, value.status());
    }
    sample.value = *value;
    c.SkipBlanks();
    if (!c.done()) {
      const absl::string_view ts = c.Token();
      int64_t ignored = 0;
      if (!absl::SimpleAtoi(ts, &ignored)) {
        return LineError(number, absl::InvalidArgumentError(
                                     absl::StrCat("bad timestamp '", ts.substr(0, 40), "'")));
      }
      c.SkipBlanks();
      if (!c.done()) {
        return LineError(number, absl::InvalidArgumentError("unexpected text after timestamp"));
      }
    }
    if (samples.size() >= kMaxExpositionSamples) {
      return absl::InvalidArgumentError(
          absl::StrCat("more than ", kMaxExpositionSamples, " samples"));
    }
    samples.push_back(std::move(sample));
  }
  // A TYPE line may follow its family's first sample in sloppy exporters;
  // assign types once every TYPE line is known.
  for (PromSample& s : samples) {
    s.type = TypeOf(types, s.name);
  }
  return samples;
}

absl::StatusOr<PromSelector> ParseSelector(absl::string_view text) {
  Cursor c(text);
  c.SkipBlanks();
  PromSelector sel;
  sel.name = std::string(c.Take(IsNameStart, IsNameChar));
  if (sel.name.empty()) {
    return absl::InvalidArgumentError(
        "must start with a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
  }
  c.SkipBlanks();
  absl::StatusOr<PromLabels> labels = ParseLabels(c);
  if (!labels.ok()) {
    return labels.status();
  }
  sel.labels = *std::move(labels);
  c.SkipBlanks();
  if (!c.done()) {
    return absl::InvalidArgumentError("unexpected text after the selector");
  }
  return sel;
}

bool Matches(const PromSelector& selector, const PromSample& sample) {
  if (selector.name != sample.name) {
    return false;
  }
  // Both sorted by name: one merge pass.
  auto it = sample.labels.begin();
  for (const auto& [name, value] : selector.labels) {
    while (it != sample.labels.end() && it->first < name) {
      ++it;
    }
    if (it == sample.labels.end() || it->first != name || it->second != value) {
      return false;
    }
  }
  return true;
}

std::string SeriesKey(absl::string_view name, const PromLabels& labels) {
  std::string out(name);
  if (labels.empty()) {
    return out;
  }
  out.push_back('{');
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) {
      out.push_back(',');
    }
    out.append(labels[i].first);
    out.append("=\"");
    AppendEscaped(&out, labels[i].second);
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

}  // namespace llmload::metrics
