// File: report.h
//
// The text the CLI prints: progress lines and the final report, in the
// layout of the original emulator client (`LOAD TEST RESULTS`, bracketed
// key=value lines), extended with llmload's metrics. Pure.

#pragma once

#include <string>

#include "llmload/v1/orchestrator.pb.h"
#include "llmload/v1/run.pb.h"

namespace llmload::cli {

// "Test progress. [state=RUNNING, cycles=50/100, requests_ok=48, …]"
std::string FormatProgress(const v1::Run& run, double elapsed_seconds);
// The same with WatchRun's live statistics (rates, ttft/itl percentiles).
std::string FormatProgress(const v1::RunUpdate& update);
// A one-line progress bar for a terminal, `width` characters of bar:
// "[#########.........]  45%  13.5s/30.0s  ok=120 fail=0  12.0 req/s ..."
std::string FormatProgressBar(const v1::RunUpdate& update, int width);
// True when the run passed: COMPLETED and no threshold failed.
bool RunPassed(const v1::Run& run);
// The LOAD TEST RESULTS block.
std::string FormatReport(const v1::Run& run);
// One line per run for `llmload list`.
std::string FormatRunLine(const v1::Run& run);

}  // namespace llmload::cli
