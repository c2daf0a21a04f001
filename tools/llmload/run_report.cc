#include "tools/llmload/run_report.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "lib/histogram/histogram.h"
#include "lib/load/verdict.h"
#include "lib/metrics/metrics.h"
#include "tools/llmload/json_writer.h"
#include "tools/llmload/report.h"

namespace llmload::cli {
namespace {

constexpr char kSchema[] = "llmload.report/v1";
constexpr char kRedacted[] = "REDACTED";

// ---------------------------------------------------------------- helpers

std::string Iso(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

std::string IsoMicros(int64_t unix_us) { return Iso(absl::FromUnixMicros(unix_us)); }

std::optional<absl::Time> FromProto(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) {
    return std::nullopt;
  }
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

uint64_t Counter(const google::protobuf::Map<std::string, uint64_t>& counters, v1::Counter c) {
  auto it = counters.find(std::string(metrics::CounterName(c)));
  return it == counters.end() ? 0 : it->second;
}

uint64_t Failures(const google::protobuf::Map<std::string, uint64_t>& counters) {
  uint64_t n = 0;
  for (v1::Counter c : metrics::AllCounters()) {
    if (metrics::IsRequestFailureCounter(c)) {
      n += Counter(counters, c);
    }
  }
  return n;
}

const v1::MetricStats* Find(const google::protobuf::RepeatedPtrField<v1::MetricStats>& ms,
                            std::string_view name) {
  for (const v1::MetricStats& m : ms) {
    if (m.metric() == name) {
      return &m;
    }
  }
  return nullptr;
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string CsvField(std::string_view s) {
  if (s.find_first_of(",\"\n\r") == std::string_view::npos) {
    return std::string(s);
  }
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') {
      out += '"';
    }
    out += c;
  }
  out += '"';
  return out;
}

bool LooksSecret(std::string_view name) {
  const std::string n = absl::AsciiStrToLower(std::string(name));
  for (const char* word : {"key", "token", "secret", "password", "passwd", "auth", "sig",
                           "credential", "session", "cookie"}) {
    if (absl::StrContains(n, word)) {
      return true;
    }
  }
  return false;
}

// The URL with its user info and credential-like query values redacted.
std::string RedactUrl(const std::string& url) {
  std::string out = url;
  const size_t scheme = out.find("://");
  const size_t authority = scheme == std::string::npos ? 0 : scheme + 3;
  const size_t path = out.find_first_of("/?#", authority);
  const size_t at = out.rfind('@', path == std::string::npos ? out.size() : path);
  if (at != std::string::npos && at >= authority) {
    out.replace(authority, at - authority, kRedacted);
  }
  const size_t q = out.find('?');
  if (q == std::string::npos) {
    return out;
  }
  const size_t hash = out.find('#', q);
  const std::string query = out.substr(q + 1, hash == std::string::npos ? std::string::npos
                                                                          : hash - q - 1);
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(query, '&')) {
    const size_t eq = part.find('=');
    if (eq != absl::string_view::npos && LooksSecret(std::string(part.substr(0, eq)))) {
      parts.push_back(absl::StrCat(part.substr(0, eq), "=", kRedacted));
    } else {
      parts.emplace_back(part);
    }
  }
  return out.substr(0, q + 1) + absl::StrJoin(parts, "&") +
         (hash == std::string::npos ? "" : out.substr(hash));
}

std::string SpecJson(const v1::RunSpec& spec) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(RedactSpec(spec), &out, opts);
  while (!out.empty() && out.back() == '\n') {
    out.pop_back();
  }
  return out;
}

// ----------------------------------------------------------- derived data

// A window placed on the run's time axis (seconds from the first window).
struct WindowView {
  const v1::WindowStats* w;
  double start_s;
  double width_s;
  double mid_s() const { return start_s + width_s / 2; }
  double PerSecond(uint64_t n) const { return width_s > 0 ? static_cast<double>(n) / width_s : 0; }
};

struct Derived {
  int64_t origin_us = 0;
  double span_s = 0;  // end of the last window
  std::vector<WindowView> windows;
  // Failure classes present in any window, in report order.
  std::vector<v1::Counter> error_classes;
  struct Event {
    double offset_s;
    std::string time;
    std::string message;
  };
  std::vector<Event> events;
};

Derived Derive(const ReportInput& in) {
  Derived d;
  const auto& ws = in.stats.windows();
  if (!ws.empty()) {
    d.origin_us = ws.begin()->start_us();
  }
  for (const v1::WindowStats& w : ws) {
    WindowView v{&w, static_cast<double>(w.start_us() - d.origin_us) / 1e6, w.width_seconds()};
    d.span_s = std::max(d.span_s, v.start_s + v.width_s);
    d.windows.push_back(v);
  }
  for (v1::Counter c : metrics::AllCounters()) {
    if (!metrics::IsRequestFailureCounter(c)) {
      continue;
    }
    for (const v1::WindowStats& w : ws) {
      if (Counter(w.counters(), c) > 0) {
        d.error_classes.push_back(c);
        break;
      }
    }
  }
  if (in.run.has_value()) {
    for (const v1::RunEvent& e : in.run->events()) {
      const std::optional<absl::Time> t = FromProto(e.time());
      Derived::Event ev;
      ev.time = t.has_value() ? Iso(*t) : "";
      ev.offset_s = t.has_value() && d.origin_us != 0
                        ? absl::ToDoubleSeconds(*t - absl::FromUnixMicros(d.origin_us))
                        : 0;
      ev.message = e.message();
      d.events.push_back(std::move(ev));
    }
  }
  return d;
}

// A histogram binned for drawing: log-spaced bins from min to max (ms).
struct Bin {
  double low_ms;
  double high_ms;
  uint64_t count;
};

std::vector<Bin> Distribution(const std::string& encoded, int bins) {
  absl::StatusOr<histogram::Histogram> h = histogram::Histogram::Decode(encoded);
  std::vector<Bin> out;
  if (!h.ok() || h->Empty()) {
    return out;
  }
  const double lo = std::max<double>(1, static_cast<double>(h->Min()));
  const double hi = std::max<double>(lo + 1, static_cast<double>(h->Max()) + 1);
  const double ratio = std::pow(hi / lo, 1.0 / bins);
  for (int i = 0; i < bins; ++i) {
    out.push_back(Bin{lo * std::pow(ratio, i) / 1000, lo * std::pow(ratio, i + 1) / 1000, 0});
  }
  for (size_t idx = 0; idx < histogram::Histogram::NumBuckets(); ++idx) {
    const uint64_t n = h->CountAt(idx);
    if (n == 0) {
      continue;
    }
    const double v = std::clamp(static_cast<double>(histogram::Histogram::BucketValue(idx)), lo,
                                hi - 1e-9);
    int bin = static_cast<int>(std::floor(std::log(v / lo) / std::log(ratio)));
    bin = std::clamp(bin, 0, bins - 1);
    out[static_cast<size_t>(bin)].count += n;
  }
  return out;
}

const v1::HistogramDelta* FindHistogram(const v1::RunStats& stats, v1::Metric m) {
  for (const v1::HistogramDelta& d : stats.histograms()) {
    if (d.metric() == m) {
      return &d;
    }
  }
  return nullptr;
}

// ------------------------------------------------------------------- JSON

void WriteMetric(JsonWriter& j, const v1::MetricStats& m) {
  j.BeginObject();
  j.Key("metric");
  j.String(m.metric());
  j.Key("count");
  j.Uint(m.count());
  for (const auto& [key, value] :
       std::vector<std::pair<const char*, double>>{{"min_ms", m.min_ms()},
                                                   {"mean_ms", m.mean_ms()},
                                                   {"p50_ms", m.p50_ms()},
                                                   {"p90_ms", m.p90_ms()},
                                                   {"p95_ms", m.p95_ms()},
                                                   {"p99_ms", m.p99_ms()},
                                                   {"p999_ms", m.p999_ms()},
                                                   {"max_ms", m.max_ms()}}) {
    j.Key(key);
    j.Number(value);
  }
  j.EndObject();
}

void WriteCounters(JsonWriter& j, const google::protobuf::Map<std::string, uint64_t>& counters,
                   bool non_zero_only) {
  j.BeginObject();
  for (v1::Counter c : metrics::AllCounters()) {
    const uint64_t v = Counter(counters, c);
    if (non_zero_only && v == 0) {
      continue;
    }
    j.Key(metrics::CounterName(c));
    j.Uint(v);
  }
  j.EndObject();
}

void OptionalTime(JsonWriter& j, const char* key, const google::protobuf::Timestamp& ts) {
  j.Key(key);
  if (std::optional<absl::Time> t = FromProto(ts); t.has_value()) {
    j.String(Iso(*t));
  } else {
    j.Null();
  }
}

std::string RenderJson(const ReportInput& in) {
  const Derived d = Derive(in);
  const v1::RunStats& st = in.stats;
  const load::LoadAccounting a = load::Account(st);
  JsonWriter j;
  j.BeginObject();
  j.Key("schema");
  j.String(kSchema);
  j.Key("generated_at");
  j.String(Iso(in.generated_at));
  j.Key("notes");
  j.BeginArray();
  for (const std::string& n : in.notes) {
    j.String(n);
  }
  j.EndArray();

  j.Key("run");
  j.BeginObject();
  j.Key("id");
  j.String(st.run_id());
  const v1::Run* run = in.run.has_value() ? &*in.run : nullptr;
  j.Key("name");
  run != nullptr ? j.String(run->spec().name()) : j.Null();
  j.Key("state");
  run != nullptr ? j.String(v1::RunState_Name(run->state())) : j.Null();
  j.Key("passed");
  if (run != nullptr && run->has_passed()) {
    j.Bool(run->passed());
  } else {
    j.Null();
  }
  j.Key("error");
  run != nullptr ? j.String(run->error()) : j.Null();
  OptionalTime(j, "created_at", run != nullptr ? run->created_at() : google::protobuf::Timestamp());
  OptionalTime(j, "started_at", run != nullptr ? run->started_at() : google::protobuf::Timestamp());
  OptionalTime(j, "finished_at",
               run != nullptr ? run->finished_at() : google::protobuf::Timestamp());
  j.Key("protocol");
  j.String(st.protocol());
  j.Key("complete");
  j.Bool(st.complete());
  j.Key("labels");
  j.BeginObject();
  if (run != nullptr) {
    std::map<std::string, std::string> labels(run->spec().labels().begin(),
                                              run->spec().labels().end());
    for (const auto& [k, v] : labels) {
      j.Key(k);
      j.String(v);
    }
  }
  j.EndObject();
  j.EndObject();

  j.Key("summary");
  j.BeginObject();
  const std::vector<std::pair<const char*, double>> doubles = {
      {"duration_seconds", st.duration_seconds()},
      {"requests_per_sec", st.throughput().requests_per_sec()},
      {"tokens_per_sec", st.throughput().tokens_per_sec()},
      {"input_tokens_per_sec",
       st.duration_seconds() > 0
           ? static_cast<double>(Counter(st.counters(), v1::INPUT_TOKENS)) / st.duration_seconds()
           : 0},
      {"cycles_per_sec", st.throughput().cycles_per_sec()},
      {"bytes_in_per_sec", st.throughput().bytes_in_per_sec()},
      {"error_rate", a.error_rate},
      {"goodput_ratio", a.goodput_ratio},
      {"goodput_per_sec", a.goodput_per_sec}};
  for (const auto& [k, v] : doubles) {
    j.Key(k);
    j.Number(v);
  }
  const std::vector<std::pair<const char*, uint64_t>> counts = {
      {"requests_ok", a.ok},          {"requests_failed", a.failed},
      {"tokens", Counter(st.counters(), v1::TOKENS)},
      {"input_tokens", Counter(st.counters(), v1::INPUT_TOKENS)},
      {"input_tokens_estimated", Counter(st.counters(), v1::INPUT_TOKENS_ESTIMATED)},
      {"offered", a.offered},         {"dropped", a.dropped},
      {"unfinished", a.unfinished},   {"cancelled", a.cancelled},
      {"good", a.good},
      {"warmup_requests", Counter(st.counters(), v1::WARMUP_REQUESTS)},
      {"warmup_failed", Counter(st.counters(), v1::WARMUP_FAILED)},
      {"warmup_tokens", Counter(st.counters(), v1::WARMUP_TOKENS)},
      {"cooldown_requests", Counter(st.counters(), v1::COOLDOWN_REQUESTS)},
      {"cooldown_tokens", Counter(st.counters(), v1::COOLDOWN_TOKENS)},
      {"batches", st.batches()},      {"records", st.records()},
      {"records_dropped", st.records_dropped()}};
  for (const auto& [k, v] : counts) {
    j.Key(k);
    j.Uint(v);
  }
  j.Key("max_loop_lag_ms");
  j.Number(run != nullptr ? run->max_loop_lag_ms() : 0);
  j.Key("max_cpu_percent_per_loop");
  j.Number(run != nullptr ? run->max_cpu_percent_per_loop() : 0);
  j.Key("generator_saturated");
  j.Bool(run != nullptr && run->generator_saturated());
  j.EndObject();

  j.Key("thresholds");
  j.BeginArray();
  if (run != nullptr) {
    for (const v1::ThresholdResult& r : run->threshold_results()) {
      j.BeginObject();
      j.Key("metric");
      j.String(r.threshold().metric());
      j.Key("passed");
      j.Bool(r.passed());
      j.Key("measured");
      j.Number(r.measured());
      j.Key("description");
      j.String(r.description());
      j.EndObject();
    }
  }
  j.EndArray();
  j.Key("warnings");
  j.BeginArray();
  if (run != nullptr) {
    for (const std::string& w : run->warnings()) {
      j.String(w);
    }
  }
  j.EndArray();

  j.Key("metrics");
  j.BeginArray();
  for (const v1::MetricStats& m : st.metrics()) {
    WriteMetric(j, m);
  }
  j.EndArray();
  // Multi-turn runs (spec.target.turns): one entry per turn number.
  j.Key("turns");
  j.BeginArray();
  for (const v1::TurnStats& t : st.turns()) {
    j.BeginObject();
    j.Key("turn");
    j.Int(t.turn());
    j.Key("requests");
    j.Uint(t.requests());
    j.Key("input_tokens");
    j.Uint(t.input_tokens());
    j.Key("input_tokens_mean");
    j.Number(t.input_tokens_mean());
    j.Key("tokens");
    j.Uint(t.tokens());
    j.Key("ttft");
    WriteMetric(j, t.ttft());
    j.EndObject();
  }
  j.EndArray();
  // spec.targetMetrics: each series scraped from the target, summarised.
  j.Key("target_series");
  j.BeginArray();
  for (const v1::TargetSeries& t : st.target_series()) {
    j.BeginObject();
    j.Key("name");
    j.String(t.name());
    j.Key("labels");
    j.BeginObject();
    for (const v1::TargetLabel& l : t.labels()) {
      j.Key(l.name());
      j.String(l.value());
    }
    j.EndObject();
    j.Key("type");
    j.String(t.type());
    const std::vector<std::pair<const char*, double>> values = {
        {"last", t.value()}, {"min", t.min()},   {"max", t.max()},
        {"mean", t.mean()},  {"increase", t.increase()}};
    for (const auto& [k, v] : values) {
      j.Key(k);
      j.Number(v);
    }
    j.Key("samples");
    j.Uint(t.samples());
    j.EndObject();
  }
  j.EndArray();
  j.Key("counters");
  WriteCounters(j, st.counters(), false);

  j.Key("windows");
  j.BeginArray();
  for (const WindowView& v : d.windows) {
    const v1::WindowStats& w = *v.w;
    j.BeginObject();
    j.Key("start");
    j.String(IsoMicros(w.start_us()));
    j.Key("start_us");
    j.Int(w.start_us());
    j.Key("offset_seconds");
    j.Number(v.start_s);
    j.Key("width_seconds");
    j.Number(w.width_seconds());
    j.Key("batches");
    j.Uint(w.batches());
    j.Key("requests_per_sec");
    j.Number(v.PerSecond(Counter(w.counters(), v1::REQUESTS_OK)));
    j.Key("tokens_per_sec");
    j.Number(v.PerSecond(Counter(w.counters(), v1::TOKENS)));
    j.Key("failures_per_sec");
    j.Number(v.PerSecond(Failures(w.counters())));
    j.Key("active_sessions");
    j.Int(w.active_sessions());
    j.Key("max_cpu_percent");
    j.Number(w.max_cpu_percent());
    j.Key("max_loop_lag_ms");
    j.Number(w.max_loop_lag_ms());
    j.Key("counters");
    WriteCounters(j, w.counters(), true);
    j.Key("metrics");
    j.BeginArray();
    for (const v1::MetricStats& m : w.metrics()) {
      WriteMetric(j, m);
    }
    j.EndArray();
    j.Key("workers");
    j.BeginArray();
    for (const v1::WorkerWindow& ww : w.workers()) {
      j.BeginObject();
      j.Key("worker_id");
      j.String(ww.worker_id());
      j.Key("active_sessions");
      j.Int(ww.active_sessions());
      j.Key("cpu_percent");
      j.Number(ww.cpu_percent());
      j.Key("loop_lag_ms");
      j.Number(ww.loop_lag_ms());
      j.EndObject();
    }
    j.EndArray();
    j.EndObject();
  }
  j.EndArray();

  j.Key("distributions");
  j.BeginArray();
  for (const v1::HistogramDelta& h : st.histograms()) {
    const std::vector<Bin> bins = Distribution(h.encoded(), 40);
    j.BeginObject();
    j.Key("metric");
    j.String(metrics::MetricName(h.metric()));
    j.Key("bins");
    j.BeginArray();
    for (const Bin& b : bins) {
      j.BeginObject();
      j.Key("low_ms");
      j.Number(b.low_ms);
      j.Key("high_ms");
      j.Number(b.high_ms);
      j.Key("count");
      j.Uint(b.count);
      j.EndObject();
    }
    j.EndArray();
    j.EndObject();
  }
  j.EndArray();

  j.Key("workers");
  j.BeginArray();
  for (const v1::WorkerStats& w : st.workers()) {
    j.BeginObject();
    j.Key("worker_id");
    j.String(w.worker_id());
    j.Key("batches");
    j.Uint(w.batches());
    j.Key("final");
    j.Bool(w.final());
    j.Key("requests_ok");
    j.Uint(Counter(w.counters(), v1::REQUESTS_OK));
    j.Key("requests_failed");
    j.Uint(Failures(w.counters()));
    j.Key("tokens");
    j.Uint(Counter(w.counters(), v1::TOKENS));
    j.Key("cpu_percent");
    j.Number(w.cpu_percent());
    j.Key("loop_lag_ms");
    j.Number(w.loop_lag_ms());
    j.Key("active_sessions");
    j.Int(w.active_sessions());
    j.Key("counters");
    WriteCounters(j, w.counters(), false);
    j.Key("metrics");
    j.BeginArray();
    for (const v1::MetricStats& m : w.metrics()) {
      WriteMetric(j, m);
    }
    j.EndArray();
    j.EndObject();
  }
  j.EndArray();

  j.Key("events");
  j.BeginArray();
  for (const Derived::Event& e : d.events) {
    j.BeginObject();
    j.Key("time");
    j.String(e.time);
    j.Key("offset_seconds");
    j.Number(e.offset_s);
    j.Key("message");
    j.String(e.message);
    j.EndObject();
  }
  j.EndArray();

  j.Key("spec");
  if (run != nullptr) {
    j.Raw(SpecJson(run->spec()));
  } else {
    j.Null();
  }
  j.EndObject();
  return j.Take();
}

// -------------------------------------------------------------------- CSV

constexpr char kCsvHeader[] =
    "scope,worker_id,window_start,window_start_us,width_seconds,metric,kind,count,value,"
    "rate_per_sec,mean_ms,min_ms,p50_ms,p90_ms,p95_ms,p99_ms,p999_ms,max_ms\n";

struct CsvScope {
  std::string scope;
  std::string worker;
  std::string window_start;
  std::string window_start_us;
  double width = 0;
};

std::string CsvPrefix(const CsvScope& s) {
  return absl::StrCat(s.scope, ",", CsvField(s.worker), ",", s.window_start, ",",
                      s.window_start_us, ",", ExactNumber(s.width), ",");
}

void CsvLatency(std::string& out, const CsvScope& s, const v1::MetricStats& m) {
  absl::StrAppend(&out, CsvPrefix(s), m.metric(), ",latency,", m.count(), ",,,",
                  ExactNumber(m.mean_ms()), ",", ExactNumber(m.min_ms()), ",",
                  ExactNumber(m.p50_ms()), ",", ExactNumber(m.p90_ms()), ",",
                  ExactNumber(m.p95_ms()), ",", ExactNumber(m.p99_ms()), ",",
                  ExactNumber(m.p999_ms()), ",", ExactNumber(m.max_ms()), "\n");
}

void CsvValue(std::string& out, const CsvScope& s, std::string_view name, const char* kind,
              double value, std::optional<double> rate) {
  absl::StrAppend(&out, CsvPrefix(s), std::string(name), ",", kind, ",,", ExactNumber(value), ",",
                  rate.has_value() ? ExactNumber(*rate) : "", ",,,,,,,,\n");
}

std::string RenderCsv(const ReportInput& in) {
  const v1::RunStats& st = in.stats;
  std::string out = kCsvHeader;
  const double duration = st.duration_seconds();
  const auto rate = [](uint64_t n, double seconds) -> std::optional<double> {
    return seconds > 0 ? std::optional<double>(static_cast<double>(n) / seconds) : std::nullopt;
  };
  const CsvScope run{"run", "", "", "", duration};
  for (const v1::MetricStats& m : st.metrics()) {
    CsvLatency(out, run, m);
  }
  for (v1::Counter c : metrics::AllCounters()) {
    const uint64_t v = Counter(st.counters(), c);
    CsvValue(out, run, metrics::CounterName(c), "counter", static_cast<double>(v), rate(v, duration));
  }
  for (const v1::WorkerStats& w : st.workers()) {
    const CsvScope ws{"worker", w.worker_id(), "", "", duration};
    for (const v1::MetricStats& m : w.metrics()) {
      CsvLatency(out, ws, m);
    }
    for (v1::Counter c : metrics::AllCounters()) {
      const uint64_t v = Counter(w.counters(), c);
      CsvValue(out, ws, metrics::CounterName(c), "counter", static_cast<double>(v),
               rate(v, duration));
    }
  }
  for (const v1::WindowStats& w : st.windows()) {
    const CsvScope ws{"window", "", IsoMicros(w.start_us()), std::to_string(w.start_us()),
                      w.width_seconds()};
    for (const v1::MetricStats& m : w.metrics()) {
      CsvLatency(out, ws, m);
    }
    for (v1::Counter c : metrics::AllCounters()) {
      const uint64_t v = Counter(w.counters(), c);
      if (v != 0 || c == v1::REQUESTS_OK || c == v1::TOKENS) {
        CsvValue(out, ws, metrics::CounterName(c), "counter", static_cast<double>(v),
                 rate(v, w.width_seconds()));
      }
    }
    CsvValue(out, ws, "active_sessions", "gauge", static_cast<double>(w.active_sessions()),
             std::nullopt);
    CsvValue(out, ws, "max_cpu_percent", "gauge", w.max_cpu_percent(), std::nullopt);
    CsvValue(out, ws, "max_loop_lag_ms", "gauge", w.max_loop_lag_ms(), std::nullopt);
  }
  return out;
}

// ------------------------------------------------------------------- HTML

constexpr double kW = 760;   // chart width (viewBox units)
constexpr double kH = 230;   // chart height
constexpr double kL = 62;    // plot area margins
constexpr double kR = 14;
constexpr double kT = 22;
constexpr double kB = 34;

// A round step near range/n (1, 2 or 5 times a power of ten).
double NiceStep(double range, int n) {
  if (!(range > 0)) {
    return 1;
  }
  const double raw = range / n;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * mag) {
      return m * mag;
    }
  }
  return 10 * mag;
}

std::string Num(double v) {
  if (v == 0) {
    return "0";
  }
  const double a = std::fabs(v);
  if (a >= 1e6) {
    return absl::StrFormat("%.3gM", v / 1e6);
  }
  if (a >= 1e4) {
    return absl::StrFormat("%.3gk", v / 1e3);
  }
  if (a >= 100) {
    return absl::StrFormat("%.0f", v);
  }
  if (a >= 1) {
    return absl::StrFormat("%.3g", v);
  }
  return absl::StrFormat("%.2g", v);
}

std::string Coord(double v) { return absl::StrFormat("%.1f", v); }

struct Line {
  std::string label;
  std::string color;
  std::vector<std::pair<double, double>> points;  // (seconds, value)
  bool dashed = false;
};

struct TimeChart {
  std::string id;
  std::string title;
  std::string unit;
  std::vector<Line> lines;
  // Reference levels drawn as dashed grey lines (e.g. the saturation limit).
  std::vector<std::pair<double, std::string>> references;
};

std::string Legend(const std::vector<Line>& lines) {
  std::string out = "<div class=\"legend\">";
  for (const Line& l : lines) {
    absl::StrAppend(&out, "<span><i style=\"background:", l.color, "\"></i>",
                    HtmlEscape(l.label), "</span>");
  }
  out += "</div>";
  return out;
}

std::string Figure(const std::string& id, const std::string& title, const std::string& legend,
                   const std::string& svg) {
  return absl::StrCat("<figure class=\"chart\" id=\"chart-", id, "\"><figcaption>",
                      HtmlEscape(title), "</figcaption>", legend, svg, "</figure>\n");
}

std::string EmptyFigure(const std::string& id, const std::string& title, const std::string& why) {
  return absl::StrCat("<figure class=\"chart empty\" id=\"chart-", id, "\"><figcaption>",
                      HtmlEscape(title), "</figcaption><p class=\"muted\">", HtmlEscape(why),
                      "</p></figure>\n");
}

std::string RenderTimeChart(const TimeChart& c, double x_max, const Derived& d) {
  size_t points = 0;
  double y_max = 0;
  for (const Line& l : c.lines) {
    points += l.points.size();
    for (const auto& [x, y] : l.points) {
      y_max = std::max(y_max, y);
    }
  }
  for (const auto& [level, label] : c.references) {
    y_max = std::max(y_max, level);
  }
  if (points == 0) {
    return EmptyFigure(c.id, c.title, "No data in this run.");
  }
  const double step_y = NiceStep(y_max > 0 ? y_max : 1, 4);
  const double top = std::max(step_y, std::ceil(y_max / step_y) * step_y);
  const double right = x_max > 0 ? x_max : 1;
  const double pw = kW - kL - kR;
  const double ph = kH - kT - kB;
  const auto X = [&](double x) { return kL + x / right * pw; };
  const auto Y = [&](double y) { return kT + ph - y / top * ph; };
  std::string svg = absl::StrCat(
      "<svg class=\"plot\" viewBox=\"0 0 ", kW, " ", kH,
      "\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\" data-chart=\"", c.id,
      "\" data-points=\"", points, "\" aria-label=\"", HtmlEscape(c.title), "\">");
  // Grid and axes.
  for (double y = 0; y <= top * 1.0001; y += step_y) {
    absl::StrAppend(&svg, "<line class=\"grid\" x1=\"", Coord(kL), "\" x2=\"", Coord(kW - kR),
                    "\" y1=\"", Coord(Y(y)), "\" y2=\"", Coord(Y(y)), "\"/>",
                    "<text class=\"tick\" x=\"", Coord(kL - 6), "\" y=\"", Coord(Y(y) + 4),
                    "\" text-anchor=\"end\">", Num(y), "</text>");
  }
  const double step_x = NiceStep(right, 8);
  for (double x = 0; x <= right * 1.0001; x += step_x) {
    absl::StrAppend(&svg, "<line class=\"tickmark\" x1=\"", Coord(X(x)), "\" x2=\"", Coord(X(x)),
                    "\" y1=\"", Coord(kT + ph), "\" y2=\"", Coord(kT + ph + 4), "\"/>",
                    "<text class=\"tick\" x=\"", Coord(X(x)), "\" y=\"", Coord(kT + ph + 16),
                    "\" text-anchor=\"middle\">", Num(x), "</text>");
  }
  absl::StrAppend(&svg, "<text class=\"axis\" x=\"", Coord(kW - kR), "\" y=\"", Coord(kH - 2),
                  "\" text-anchor=\"end\">seconds into the run</text>", "<text class=\"axis\" x=\"",
                  Coord(kL), "\" y=\"", Coord(kT - 8), "\">", HtmlEscape(c.unit), "</text>");
  absl::StrAppend(&svg, "<rect class=\"frame\" x=\"", Coord(kL), "\" y=\"", Coord(kT),
                  "\" width=\"", Coord(pw), "\" height=\"", Coord(ph), "\"/>");
  for (const auto& [level, label] : c.references) {
    absl::StrAppend(&svg, "<line class=\"reference\" x1=\"", Coord(kL), "\" x2=\"",
                    Coord(kW - kR), "\" y1=\"", Coord(Y(level)), "\" y2=\"", Coord(Y(level)),
                    "\"><title>", HtmlEscape(label), "</title></line>");
  }
  // Events: where the run's story changed (worker lost, work moved).
  for (const Derived::Event& e : d.events) {
    if (e.offset_s < 0 || e.offset_s > right) {
      continue;
    }
    absl::StrAppend(&svg, "<line class=\"event\" x1=\"", Coord(X(e.offset_s)), "\" x2=\"",
                    Coord(X(e.offset_s)), "\" y1=\"", Coord(kT), "\" y2=\"", Coord(kT + ph),
                    "\"><title>", HtmlEscape(absl::StrFormat("%.1fs ", e.offset_s)),
                    HtmlEscape(e.message), "</title></line>");
  }
  for (const Line& l : c.lines) {
    if (l.points.empty()) {
      continue;
    }
    std::string path;
    for (size_t i = 0; i < l.points.size(); ++i) {
      absl::StrAppend(&path, i == 0 ? "M" : " L", Coord(X(l.points[i].first)), " ",
                      Coord(Y(l.points[i].second)));
    }
    absl::StrAppend(&svg, "<path class=\"series\" fill=\"none\" stroke=\"", l.color,
                    "\" stroke-width=\"1.8\"", l.dashed ? " stroke-dasharray=\"5 3\"" : "",
                    " d=\"", path, "\"><title>", HtmlEscape(l.label), "</title></path>");
    if (l.points.size() <= 3) {
      for (const auto& [x, y] : l.points) {
        absl::StrAppend(&svg, "<circle class=\"dot\" r=\"3\" fill=\"", l.color, "\" cx=\"",
                        Coord(X(x)), "\" cy=\"", Coord(Y(y)), "\"/>");
      }
    }
  }
  svg += "</svg>";
  return Figure(c.id, c.title, Legend(c.lines), svg);
}

std::string RenderDistribution(const std::string& id, const std::string& title,
                               const std::vector<Bin>& bins) {
  uint64_t max_count = 0;
  for (const Bin& b : bins) {
    max_count = std::max(max_count, b.count);
  }
  if (bins.empty() || max_count == 0) {
    return EmptyFigure(id, title, "No samples in this run.");
  }
  const double pw = kW - kL - kR;
  const double ph = kH - kT - kB;
  const double step_y = NiceStep(static_cast<double>(max_count), 4);
  const double top = std::max(step_y, std::ceil(static_cast<double>(max_count) / step_y) * step_y);
  const double lo = std::log10(bins.front().low_ms);
  const double hi = std::log10(bins.back().high_ms);
  const double span = hi > lo ? hi - lo : 1;
  const auto X = [&](double ms) { return kL + (std::log10(ms) - lo) / span * pw; };
  const auto Y = [&](double n) { return kT + ph - n / top * ph; };
  std::string svg = absl::StrCat(
      "<svg class=\"plot\" viewBox=\"0 0 ", kW, " ", kH,
      "\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\" data-chart=\"", id,
      "\" data-points=\"", bins.size(), "\" aria-label=\"", HtmlEscape(title), "\">");
  for (double y = 0; y <= top * 1.0001; y += step_y) {
    absl::StrAppend(&svg, "<line class=\"grid\" x1=\"", Coord(kL), "\" x2=\"", Coord(kW - kR),
                    "\" y1=\"", Coord(Y(y)), "\" y2=\"", Coord(Y(y)), "\"/>",
                    "<text class=\"tick\" x=\"", Coord(kL - 6), "\" y=\"", Coord(Y(y) + 4),
                    "\" text-anchor=\"end\">", Num(y), "</text>");
  }
  // Ticks at 1, 2, 5 times powers of ten within the range.
  for (int e = static_cast<int>(std::floor(lo)) - 1; e <= static_cast<int>(std::ceil(hi)); ++e) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double ms = m * std::pow(10, e);
      if (std::log10(ms) < lo - 1e-9 || std::log10(ms) > hi + 1e-9) {
        continue;
      }
      absl::StrAppend(&svg, "<line class=\"tickmark\" x1=\"", Coord(X(ms)), "\" x2=\"",
                      Coord(X(ms)), "\" y1=\"", Coord(kT + ph), "\" y2=\"", Coord(kT + ph + 4),
                      "\"/><text class=\"tick\" x=\"", Coord(X(ms)), "\" y=\"",
                      Coord(kT + ph + 16), "\" text-anchor=\"middle\">", Num(ms), "</text>");
    }
  }
  // The range's ends, labelled whatever the ticks above cover.
  absl::StrAppend(&svg, "<text class=\"tick\" x=\"", Coord(kL), "\" y=\"", Coord(kH - 2),
                  "\" text-anchor=\"start\">", Num(bins.front().low_ms), " ms</text>");
  absl::StrAppend(&svg, "<text class=\"axis\" x=\"", Coord(kW - kR), "\" y=\"", Coord(kH - 2),
                  "\" text-anchor=\"end\">to ", Num(bins.back().high_ms),
                  " ms (log scale)</text>",
                  "<text class=\"axis\" x=\"", Coord(kL), "\" y=\"", Coord(kT - 8),
                  "\">samples</text>",
                  "<rect class=\"frame\" x=\"", Coord(kL), "\" y=\"", Coord(kT), "\" width=\"",
                  Coord(pw), "\" height=\"", Coord(ph), "\"/>");
  for (const Bin& b : bins) {
    if (b.count == 0) {
      continue;
    }
    const double x0 = X(b.low_ms);
    const double x1 = X(b.high_ms);
    absl::StrAppend(&svg, "<rect class=\"bar\" x=\"", Coord(x0), "\" y=\"",
                    Coord(Y(static_cast<double>(b.count))), "\" width=\"",
                    Coord(std::max(0.5, x1 - x0 - 0.6)), "\" height=\"",
                    Coord(ph - (Y(static_cast<double>(b.count)) - kT)), "\"><title>",
                    absl::StrFormat("%s-%s ms: %d", Num(b.low_ms), Num(b.high_ms), b.count),
                    "</title></rect>");
  }
  svg += "</svg>";
  return Figure(id, title, "", svg);
}

constexpr const char* kP50 = "#2b6cb0";
constexpr const char* kP90 = "#d69e2e";
constexpr const char* kP99 = "#c53030";
constexpr const char* kPalette[] = {"#2b6cb0", "#c53030", "#2f855a", "#d69e2e",
                                    "#6b46c1", "#dd6b20", "#319795", "#97266d"};

TimeChart LatencyChart(const Derived& d, v1::Metric m, const std::string& title) {
  TimeChart c;
  c.id = std::string(metrics::MetricName(m));
  c.title = title;
  c.unit = "ms";
  const std::string name(metrics::MetricName(m));
  Line p50{"p50", kP50, {}, false};
  Line p90{"p90", kP90, {}, false};
  Line p99{"p99", kP99, {}, false};
  for (const WindowView& v : d.windows) {
    if (const v1::MetricStats* s = Find(v.w->metrics(), name); s != nullptr && s->count() > 0) {
      p50.points.emplace_back(v.mid_s(), s->p50_ms());
      p90.points.emplace_back(v.mid_s(), s->p90_ms());
      p99.points.emplace_back(v.mid_s(), s->p99_ms());
    }
  }
  c.lines = {p50, p90, p99};
  return c;
}

std::string Card(const std::string& label, const std::string& value, const std::string& cls = "") {
  return absl::StrCat("<div class=\"card ", cls, "\"><div class=\"label\">", HtmlEscape(label),
                      "</div><div class=\"value\">", HtmlEscape(value), "</div></div>");
}

std::string Ms(const v1::MetricStats* m, double (v1::MetricStats::*field)() const) {
  if (m == nullptr || m->count() == 0) {
    return "-";
  }
  return absl::StrFormat("%.1f ms", (m->*field)());
}

constexpr char kCss[] = R"css(
:root { --fg: #1a202c; --muted: #5a6472; --line: #d8dde3; --bg: #ffffff; --soft: #f4f6f8;
        --ok: #276749; --bad: #c53030; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: var(--bg); margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.muted { color: var(--muted); }
.meta { color: var(--muted); margin: 0 0 12px; display: flex; flex-wrap: wrap; gap: 2px 14px; }
.meta span { white-space: nowrap; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; font-weight: 600;
           color: #fff; vertical-align: middle; margin-left: 8px; font-size: 14px; }
.verdict.pass { background: var(--ok); color: #fff; }
.verdict.fail { background: var(--bad); color: #fff; }
.verdict.unknown { background: var(--muted); color: #fff; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.card { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.card .label { color: var(--muted); font-size: 12px; }
.card .value { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card.bad .value { color: var(--bad); }
.grid2 { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 10px 18px; }
.grid2 > * { min-width: 0; }
@media (max-width: 900px) { .grid2 { grid-template-columns: minmax(0, 1fr); } }
figure.chart { margin: 0; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px;
               break-inside: avoid; page-break-inside: avoid; }
figure.chart figcaption { font-weight: 600; font-size: 13px; }
svg.plot { width: 100%; height: auto; display: block; }
svg .grid { stroke: #e6e9ed; stroke-width: 1; }
svg .frame { fill: none; stroke: #b8c0ca; stroke-width: 1; }
svg .tickmark { stroke: #8a94a0; }
svg .tick { font-size: 11px; fill: #4a5563; }
svg .axis { font-size: 11px; fill: #6b7480; }
svg .event { stroke: #805ad5; stroke-width: 1.2; stroke-dasharray: 3 3; }
svg .reference { stroke: #a0aec0; stroke-width: 1; stroke-dasharray: 6 4; }
svg .bar { fill: #4a7fb8; }
.legend { font-size: 12px; color: var(--muted); margin: 2px 0; }
.legend { display: flex; flex-wrap: wrap; gap: 0 12px; }
.legend span { white-space: nowrap; }
.legend i { display: inline-block; width: 14px; height: 3px; margin-right: 4px; vertical-align: middle; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: 13px; }
th, td { text-align: right; padding: 3px 8px; border-bottom: 1px solid var(--line); }
th:first-child, td:first-child { text-align: left; }
th { background: var(--soft); font-weight: 600; }
td.left, th.left { text-align: left; }
.pass { color: var(--ok); font-weight: 600; } .fail { color: var(--bad); font-weight: 600; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px;
      overflow-x: auto; font-size: 12px; white-space: pre-wrap; word-break: break-word; }
ul.warnings li { color: var(--bad); }
.share { display: inline-block; height: 8px; background: #4a7fb8; vertical-align: middle; }
footer { margin-top: 30px; color: var(--muted); font-size: 12px; }
@media print {
  body { font-size: 11px; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  .grid2 { grid-template-columns: 1fr 1fr; }
  .card { border-color: #999; }
  table, pre { break-inside: auto; }
  tr { break-inside: avoid; }
}
@page { size: A4; margin: 12mm; }
)css";

std::string MetricRow(const v1::MetricStats& m) {
  return absl::StrFormat(
      "<tr><td>%s</td><td>%d</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td>"
      "<td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td></tr>\n",
      HtmlEscape(m.metric()), m.count(), m.min_ms(), m.mean_ms(), m.p50_ms(), m.p90_ms(),
      m.p95_ms(), m.p99_ms(), m.p999_ms(), m.max_ms());
}

constexpr char kMetricHead[] =
    "<tr><th>metric</th><th>count</th><th>min</th><th>mean</th><th>p50</th><th>p90</th>"
    "<th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n";

std::string RenderHtml(const ReportInput& in) {
  const Derived d = Derive(in);
  const v1::RunStats& st = in.stats;
  const v1::Run* run = in.run.has_value() ? &*in.run : nullptr;
  const load::LoadAccounting a = load::Account(st);
  const std::string name =
      run != nullptr && !run->spec().name().empty() ? run->spec().name() : "llmload run";
  std::string h;
  absl::StrAppend(&h,
                  "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                  "<meta name=\"generator\" content=\"llmload report\">\n<title>",
                  HtmlEscape(name), " – ", HtmlEscape(st.run_id()),
                  "</title>\n<style>", kCss, "</style>\n</head>\n<body>\n<main>\n");
  // Header and verdict.
  std::string verdict = "<span class=\"verdict unknown\">NO VERDICT</span>";
  if (run != nullptr && run->state() == v1::COMPLETED && run->has_passed()) {
    verdict = run->passed() ? "<span class=\"verdict pass\">PASSED</span>"
                            : "<span class=\"verdict fail\">FAILED</span>";
  } else if (run != nullptr && run->state() != v1::COMPLETED) {
    verdict = absl::StrCat("<span class=\"verdict fail\">", v1::RunState_Name(run->state()),
                           "</span>");
  }
  absl::StrAppend(&h, "<header><h1>", HtmlEscape(name), verdict, "</h1>\n<p class=\"meta\">",
                  "<span>run <b>", HtmlEscape(st.run_id()), "</b></span>");
  if (run != nullptr) {
    absl::StrAppend(&h, "<span>state ", v1::RunState_Name(run->state()), "</span>");
    if (std::optional<absl::Time> t = FromProto(run->started_at()); t.has_value()) {
      absl::StrAppend(&h, "<span>started ", Iso(*t), "</span>");
    }
    if (std::optional<absl::Time> t = FromProto(run->finished_at()); t.has_value()) {
      absl::StrAppend(&h, "<span>finished ", Iso(*t), "</span>");
    }
  }
  if (!st.protocol().empty()) {
    absl::StrAppend(&h, "<span>protocol ", HtmlEscape(st.protocol()), "</span>");
  }
  absl::StrAppend(&h, "<span>", st.workers_size(), " worker(s)</span><span>report made ",
                  Iso(in.generated_at), "</span></p>\n");
  if (run != nullptr && !run->error().empty()) {
    absl::StrAppend(&h, "<p class=\"fail\">Error: ", HtmlEscape(run->error()), "</p>\n");
  }
  for (const std::string& n : in.notes) {
    absl::StrAppend(&h, "<p class=\"muted\">Note: ", HtmlEscape(n), "</p>\n");
  }
  h += "</header>\n";

  // Summary.
  const auto metric = [&](v1::Metric m) { return Find(st.metrics(), metrics::MetricName(m)); };
  h += "<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">";
  absl::StrAppend(&h, Card("duration", absl::StrFormat("%.1f s", st.duration_seconds())),
                  Card("requests ok", absl::StrCat(a.ok)),
                  Card("requests failed", absl::StrCat(a.failed), a.failed > 0 ? "bad" : ""),
                  Card("error rate", absl::StrFormat("%.2f %%", 100 * a.error_rate),
                       a.error_rate > load::kWarnErrorRate ? "bad" : ""),
                  Card("requests/s", absl::StrFormat("%.2f", st.throughput().requests_per_sec())),
                  Card("tokens/s", absl::StrFormat("%.1f", st.throughput().tokens_per_sec())),
                  Card("goodput", absl::StrFormat("%.1f %% · %.2f/s", 100 * a.goodput_ratio,
                                                  a.goodput_per_sec)),
                  Card("TTFT p50 / p99", Ms(metric(v1::TTFT), &v1::MetricStats::p50_ms) + " / " +
                                             Ms(metric(v1::TTFT), &v1::MetricStats::p99_ms)),
                  Card("ITL p50 / p99", Ms(metric(v1::ITL), &v1::MetricStats::p50_ms) + " / " +
                                            Ms(metric(v1::ITL), &v1::MetricStats::p99_ms)),
                  Card("e2e p50 / p99", Ms(metric(v1::E2E), &v1::MetricStats::p50_ms) + " / " +
                                            Ms(metric(v1::E2E), &v1::MetricStats::p99_ms)));
  if (const uint64_t input = Counter(st.counters(), v1::INPUT_TOKENS); input > 0) {
    // The target's own count where it reported usage, else estimated.
    const uint64_t estimated = Counter(st.counters(), v1::INPUT_TOKENS_ESTIMATED);
    absl::StrAppend(
        &h, Card(estimated > 0 ? "input tokens/s (part estimated)" : "input tokens/s",
                 absl::StrFormat("%.1f", st.duration_seconds() > 0
                                             ? static_cast<double>(input) / st.duration_seconds()
                                             : 0.0)));
  }
  if (a.cancelled > 0) {
    absl::StrAppend(&h, Card("requests cancelled", absl::StrCat(a.cancelled)));
  }
  h += "</div>\n";
  absl::StrAppend(&h, "<p class=\"muted\">Load: offered ", a.offered, ", dropped ", a.dropped,
                  ", admitted ", a.admitted, ", refused ", a.refused, ", unfinished ",
                  a.unfinished, ", good ", a.good,
                  run != nullptr && (run->spec().objectives().has_ttft() ||
                                     run->spec().objectives().has_mean_itl() ||
                                     run->spec().objectives().has_e2e())
                      ? ""
                      : " (no per-request objectives: every ok request counts as good)",
                  ".</p>\n");
  // Verdict: thresholds and warnings.
  h += "<h2>Verdict</h2>\n";
  if (run == nullptr) {
    h += "<p class=\"muted\">The orchestrator's record of this run was not available: no "
         "thresholds or events.</p>\n";
  } else if (run->threshold_results_size() == 0) {
    absl::StrAppend(&h, "<p>No thresholds were set; the run ", RunPassed(*run) ? "completed" : "did not complete",
                    ".</p>\n");
  } else {
    h += "<table><tr><th class=\"left\">result</th><th class=\"left\">threshold</th>"
         "<th>measured</th></tr>\n";
    for (const v1::ThresholdResult& r : run->threshold_results()) {
      absl::StrAppend(&h, "<tr><td class=\"", r.passed() ? "pass\">pass" : "fail\">FAIL",
                      "</td><td class=\"left\">", HtmlEscape(r.description()), "</td><td>",
                      absl::StrFormat("%.3f", r.measured()), "</td></tr>\n");
    }
    h += "</table>\n";
  }
  if (run != nullptr && run->warnings_size() > 0) {
    h += "<ul class=\"warnings\">";
    for (const std::string& w : run->warnings()) {
      absl::StrAppend(&h, "<li>", HtmlEscape(w), "</li>");
    }
    h += "</ul>\n";
  }
  h += "</section>\n";

  // Latency over time, with the generator's health beside it.
  const double x_max = d.span_s;
  h += "<section id=\"latency\"><h2>Latency over time</h2>\n<p class=\"muted\">Percentiles "
       "per time window; dashed purple lines mark run events. The load generator's own CPU "
       "use and event-loop lag are beside them: when they are high, the generator, not the "
       "target, may be the limit.</p>\n<div class=\"grid2\">\n";
  h += RenderTimeChart(LatencyChart(d, v1::TTFT, "Time to first token (TTFT)"), x_max, d);
  {
    TimeChart cpu;
    cpu.id = "generator-cpu";
    cpu.title = "Load generator CPU (largest over workers)";
    cpu.unit = "% of a core";
    Line all{"max over workers", "#2f855a", {}, false};
    for (const WindowView& v : d.windows) {
      if (v.w->workers_size() > 0) {
        all.points.emplace_back(v.mid_s(), v.w->max_cpu_percent());
      }
    }
    cpu.lines.push_back(all);
    cpu.references.emplace_back(90, "90 %: saturation");
    h += RenderTimeChart(cpu, x_max, d);
  }
  h += RenderTimeChart(LatencyChart(d, v1::ITL, "Inter-token latency (ITL)"), x_max, d);
  {
    TimeChart lag;
    lag.id = "generator-lag";
    lag.title = "Load generator event-loop lag (largest over workers)";
    lag.unit = "ms";
    Line all{"max over workers", "#6b46c1", {}, false};
    for (const WindowView& v : d.windows) {
      if (v.w->workers_size() > 0) {
        all.points.emplace_back(v.mid_s(), v.w->max_loop_lag_ms());
      }
    }
    lag.lines.push_back(all);
    lag.references.emplace_back(load::kWarnLoopLagMs, "50 ms: saturation");
    h += RenderTimeChart(lag, x_max, d);
  }
  h += RenderTimeChart(LatencyChart(d, v1::E2E, "End-to-end request latency (e2e)"), x_max, d);
  {
    TimeChart sessions;
    sessions.id = "active-sessions";
    sessions.title = "Active sessions";
    sessions.unit = "sessions";
    Line line{"open at window end", "#319795", {}, false};
    for (const WindowView& v : d.windows) {
      line.points.emplace_back(v.mid_s(), static_cast<double>(v.w->active_sessions()));
    }
    sessions.lines.push_back(line);
    h += RenderTimeChart(sessions, x_max, d);
  }
  h += "</div></section>\n";

  // Throughput and errors.
  h += "<section id=\"throughput\"><h2>Throughput and errors</h2><div class=\"grid2\">\n";
  {
    TimeChart rps;
    rps.id = "requests-per-sec";
    rps.title = "Requests per second";
    rps.unit = "req/s";
    Line ok{"ok", "#2b6cb0", {}, false};
    Line failed{"failed", "#c53030", {}, false};
    for (const WindowView& v : d.windows) {
      ok.points.emplace_back(v.mid_s(), v.PerSecond(Counter(v.w->counters(), v1::REQUESTS_OK)));
      failed.points.emplace_back(v.mid_s(), v.PerSecond(Failures(v.w->counters())));
    }
    rps.lines = {ok, failed};
    h += RenderTimeChart(rps, x_max, d);
    TimeChart tps;
    tps.id = "tokens-per-sec";
    tps.title = "Tokens per second";
    tps.unit = "tokens/s";
    Line tokens{"output tokens", "#dd6b20", {}, false};
    Line input{"input tokens", "#805ad5", {}, false};
    for (const WindowView& v : d.windows) {
      tokens.points.emplace_back(v.mid_s(), v.PerSecond(Counter(v.w->counters(), v1::TOKENS)));
      input.points.emplace_back(v.mid_s(),
                                v.PerSecond(Counter(v.w->counters(), v1::INPUT_TOKENS)));
    }
    tps.lines.push_back(tokens);
    if (Counter(st.counters(), v1::INPUT_TOKENS) > 0) {
      tps.lines.push_back(input);
    }
    h += RenderTimeChart(tps, x_max, d);
    TimeChart errors;
    errors.id = "errors";
    errors.title = d.error_classes.empty() ? "Errors by class (none in this run)"
                                           : "Errors by class";
    errors.unit = "errors/s";
    if (d.error_classes.empty()) {
      Line none{"all classes", "#c53030", {}, false};
      for (const WindowView& v : d.windows) {
        none.points.emplace_back(v.mid_s(), 0);
      }
      errors.lines.push_back(none);
    }
    size_t color = 0;
    for (v1::Counter c : d.error_classes) {
      Line l{std::string(metrics::CounterName(c)), kPalette[color++ % std::size(kPalette)], {},
             false};
      for (const WindowView& v : d.windows) {
        l.points.emplace_back(v.mid_s(), v.PerSecond(Counter(v.w->counters(), c)));
      }
      errors.lines.push_back(l);
    }
    h += RenderTimeChart(errors, x_max, d);
  }
  h += "</div></section>\n";

  // Distributions from the merged histograms.
  h += "<section id=\"distributions\"><h2>Latency distributions</h2>\n<p class=\"muted\">From "
       "the run's merged histograms (every sample, relative error at most 0.05 %), binned on "
       "a log scale.</p><div class=\"grid2\">\n";
  for (const auto& [m, title] : std::vector<std::pair<v1::Metric, std::string>>{
           {v1::TTFT, "TTFT distribution"},
           {v1::ITL, "ITL distribution"},
           {v1::E2E, "e2e distribution"},
           {v1::TPOT, "Time per output token (TPOT) distribution"}}) {
    const v1::HistogramDelta* hd = FindHistogram(st, m);
    h += RenderDistribution(absl::StrCat("dist-", std::string(metrics::MetricName(m))), title,
                            hd == nullptr ? std::vector<Bin>() : Distribution(hd->encoded(), 40));
  }
  h += "</div>\n<h2>All metrics (ms)</h2>\n<table>";
  h += kMetricHead;
  for (const v1::MetricStats& m : st.metrics()) {
    h += MetricRow(m);
  }
  h += "</table></section>\n";

  // Workers.
  h += "<section id=\"workers\"><h2>Per worker</h2>\n<table><tr><th>worker</th><th>requests "
       "ok</th><th class=\"left\">share</th><th>failed</th><th>tokens</th><th>TTFT p50</th><th>TTFT "
       "p99</th><th>e2e p99</th><th>CPU %</th><th>loop lag ms</th><th>batches</th><th>final</th></tr>\n";
  uint64_t most = 1;
  for (const v1::WorkerStats& w : st.workers()) {
    most = std::max(most, Counter(w.counters(), v1::REQUESTS_OK));
  }
  for (const v1::WorkerStats& w : st.workers()) {
    const v1::MetricStats* ttft = Find(w.metrics(), "ttft");
    const v1::MetricStats* e2e = Find(w.metrics(), "e2e");
    const uint64_t ok = Counter(w.counters(), v1::REQUESTS_OK);
    absl::StrAppend(
        &h, "<tr><td>", HtmlEscape(w.worker_id()), "</td><td>", ok,
        "</td><td class=\"left\"><span class=\"share\" style=\"width:",
        absl::StrFormat("%.0f", 120.0 * static_cast<double>(ok) / static_cast<double>(most)),
        "px\"></span></td><td>", Failures(w.counters()), "</td><td>",
        Counter(w.counters(), v1::TOKENS), "</td><td>",
        Ms(ttft, &v1::MetricStats::p50_ms), "</td><td>", Ms(ttft, &v1::MetricStats::p99_ms),
        "</td><td>", Ms(e2e, &v1::MetricStats::p99_ms), "</td><td>",
        absl::StrFormat("%.0f", w.cpu_percent()), "</td><td>",
        absl::StrFormat("%.1f", w.loop_lag_ms()), "</td><td>", w.batches(), "</td><td>",
        w.final() ? "yes" : "<span class=\"fail\">no</span>", "</td></tr>\n");
  }
  h += "</table></section>\n";

  // Events.
  h += "<section id=\"events\"><h2>Events</h2>\n";
  if (d.events.empty()) {
    h += "<p class=\"muted\">No events were recorded.</p>\n";
  } else {
    h += "<table><tr><th class=\"left\">time (UTC)</th><th>into the run</th><th "
         "class=\"left\">event</th></tr>\n";
    for (const Derived::Event& e : d.events) {
      absl::StrAppend(&h, "<tr><td class=\"left\">", HtmlEscape(e.time), "</td><td>",
                      absl::StrFormat("%.1f s", e.offset_s), "</td><td class=\"left\">",
                      HtmlEscape(e.message), "</td></tr>\n");
    }
    h += "</table>\n";
  }
  h += "</section>\n";

  // Spec.
  h += "<section id=\"spec\"><h2>Run spec</h2>\n";
  if (run != nullptr) {
    absl::StrAppend(&h, "<p class=\"muted\">Header values, URL credentials and credential-like "
                        "query values are redacted.</p><pre>",
                    HtmlEscape(SpecJson(run->spec())), "</pre>\n");
  } else {
    h += "<p class=\"muted\">Not available.</p>\n";
  }
  h += "</section>\n";
  absl::StrAppend(&h, "<footer>Made by llmload report from the collector's stored results (",
                  st.windows_size(), " time windows, ", st.batches(),
                  " batches). Latencies are measured on each worker's monotonic clock; window "
                  "times are the workers' wall clocks.</footer>\n</main>\n</body>\n</html>\n");
  return h;
}

// ------------------------------------------------------------------- text

std::string RenderText(const ReportInput& in) {
  v1::Run run;
  if (in.run.has_value()) {
    run = *in.run;
  } else {
    run.set_id(in.stats.run_id());
  }
  *run.mutable_stats() = in.stats;
  std::string out = FormatReport(run);
  for (const std::string& n : in.notes) {
    absl::StrAppend(&out, "Note: ", n, "\n");
  }
  return out;
}

}  // namespace

std::string ExactNumber(double v) { return JsonWriter::Shortest(v); }

absl::StatusOr<ReportFormat> ParseReportFormat(std::string_view name) {
  if (name == "text") {
    return ReportFormat::kText;
  }
  if (name == "json") {
    return ReportFormat::kJson;
  }
  if (name == "csv") {
    return ReportFormat::kCsv;
  }
  if (name == "html") {
    return ReportFormat::kHtml;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--format: expected text, json, csv or html, got '", std::string(name), "'"));
}

std::optional<ReportFormat> ReportFormatFromPath(std::string_view path) {
  const std::string p = absl::AsciiStrToLower(std::string(path));
  if (absl::EndsWith(p, ".html") || absl::EndsWith(p, ".htm")) {
    return ReportFormat::kHtml;
  }
  if (absl::EndsWith(p, ".json")) {
    return ReportFormat::kJson;
  }
  if (absl::EndsWith(p, ".csv")) {
    return ReportFormat::kCsv;
  }
  if (absl::EndsWith(p, ".txt")) {
    return ReportFormat::kText;
  }
  return std::nullopt;
}

std::string RenderReport(const ReportInput& input, ReportFormat format) {
  switch (format) {
    case ReportFormat::kJson:
      return RenderJson(input);
    case ReportFormat::kCsv:
      return RenderCsv(input);
    case ReportFormat::kHtml:
      return RenderHtml(input);
    case ReportFormat::kText:
      break;
  }
  return RenderText(input);
}

v1::RunSpec RedactSpec(const v1::RunSpec& spec) {
  v1::RunSpec out = spec;
  v1::Target* t = out.mutable_target();
  for (auto& [name, value] : *t->mutable_headers()) {
    value = kRedacted;
  }
  t->set_url(RedactUrl(t->url()));
  for (std::string& url : *t->mutable_urls()) {
    url = RedactUrl(url);
  }
  if (!t->ws_url().empty()) {
    t->set_ws_url(RedactUrl(t->ws_url()));
  }
  return out;
}

RecordsFormat RecordsFormatFromPath(std::string_view path) {
  return absl::EndsWith(absl::AsciiStrToLower(std::string(path)), ".csv") ? RecordsFormat::kCsv
                                                               : RecordsFormat::kJsonLines;
}

std::string RecordsHeader(RecordsFormat format) {
  if (format == RecordsFormat::kJsonLines) {
    return "";
  }
  return "worker_id,client_id,request_index,start_us,intended_start_us,ttft_ms,e2e_ms,tokens,"
         "chunks,outcome\n";
}

std::string RecordLine(const v1::RequestRecord& r, RecordsFormat format) {
  const std::string outcome(metrics::CounterName(r.outcome()));
  const double ttft_ms = static_cast<double>(r.ttft_us()) / 1000;
  const double e2e_ms = static_cast<double>(r.e2e_us()) / 1000;
  if (format == RecordsFormat::kCsv) {
    return absl::StrCat(CsvField(r.worker_id()), ",", r.client_id(), ",", r.request_index(), ",",
                        r.start_us(), ",", r.intended_start_us(), ",", ExactNumber(ttft_ms), ",",
                        ExactNumber(e2e_ms), ",", r.tokens(), ",", r.chunks(), ",", outcome,
                        "\n");
  }
  std::string worker;
  JsonWriter::Escape(r.worker_id(), worker);
  return absl::StrCat("{\"worker_id\": \"", worker, "\", \"client_id\": ", r.client_id(),
                      ", \"request_index\": ", r.request_index(), ", \"start_us\": ", r.start_us(),
                      ", \"intended_start_us\": ", r.intended_start_us(),
                      ", \"ttft_ms\": ", ExactNumber(ttft_ms), ", \"e2e_ms\": ",
                      ExactNumber(e2e_ms), ", \"tokens\": ", r.tokens(),
                      ", \"chunks\": ", r.chunks(), ", \"outcome\": \"", outcome, "\"}\n");
}

}  // namespace llmload::cli
