// File: report.h
//
// The text the CLI prints: progress lines and the final report, in the
// layout of the original emulator client (`LOAD TEST RESULTS`, bracketed
// key=value lines), extended with llmload's metrics. Pure.

#pragma once

#include <string>

#include "llmload/v1/run.pb.h"

namespace llmload::cli {

// "Test progress. [state=RUNNING, cycles=50/100, requests_ok=48, …]"
std::string FormatProgress(const v1::Run& run, double elapsed_seconds);
// The LOAD TEST RESULTS block.
std::string FormatReport(const v1::Run& run);
// One line per run for `llmload list`.
std::string FormatRunLine(const v1::Run& run);

}  // namespace llmload::cli
