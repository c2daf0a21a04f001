// File: run_report.h
//
// `llmload report`: a finished run rendered as text, JSON, CSV or one
// self-contained HTML file, from what the collector stored (statistics per
// worker and per time window, merged histograms) and what the orchestrator
// stored (spec, verdict, events). Pure: the caller fetches the data and
// passes the time the report is made.
//
//   ReportInput in;
//   in.run = run;              // GetRun (optional: absent when unreachable)
//   in.stats = stats;          // GetRunStats per_worker, windows, histograms
//   in.generated_at = absl::Now();
//   std::string html = RenderReport(in, ReportFormat::kHtml);
//
// The JSON layout is versioned ("schema": "llmload.report/v1") and
// documented in docs/report-json.md; the CSV layout in README.md.
//
// Per-request records render as JSON lines or CSV (RecordsHeader /
// RecordLine), one request a line.
//
// Thread-safe (stateless).

#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "llmload/v1/run.pb.h"
#include "llmload/v1/stats.pb.h"

namespace llmload::cli {

enum class ReportFormat { kText, kJson, kCsv, kHtml };

// "text", "json", "csv", "html"; INVALID_ARGUMENT otherwise.
absl::StatusOr<ReportFormat> ParseReportFormat(std::string_view name);
// The format a file name implies: .html/.htm, .json, .csv, .txt; nullopt
// for any other extension.
std::optional<ReportFormat> ReportFormatFromPath(std::string_view path);

struct ReportInput {
  // The run as the orchestrator keeps it (spec, state, verdict, events).
  std::optional<v1::Run> run;
  // The collector's statistics: per worker, windows and histograms.
  v1::RunStats stats;
  absl::Time generated_at;
  // Said in every format (e.g. "orchestrator unreachable: ...").
  std::vector<std::string> notes;
};

std::string RenderReport(const ReportInput& input, ReportFormat format);

// A copy of `spec` safe to show: header values, the URLs' user info and
// the values of query parameters that look like credentials are replaced by
// "REDACTED".
v1::RunSpec RedactSpec(const v1::RunSpec& spec);

// Per-request records: format by the file's extension (.csv, else JSON lines).
enum class RecordsFormat { kJsonLines, kCsv };
RecordsFormat RecordsFormatFromPath(std::string_view path);
// The CSV header line (with its newline); empty for JSON lines.
std::string RecordsHeader(RecordsFormat format);
// One record as one line (with its newline).
std::string RecordLine(const v1::RequestRecord& record, RecordsFormat format);

// The shortest decimal that reads back as exactly `v` (CSV and JSON numbers).
std::string ExactNumber(double v);

}  // namespace llmload::cli
