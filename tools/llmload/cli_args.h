// File: cli_args.h
//
// Command-line parsing for the `llmload` tool. The tool keeps the flags of
// the original emulator client (`--clients 10`, `--max-concurrent 50`, with
// dashes and separate values) and their environment variables, so it uses
// this small table-driven parser rather than absl flags. Pure: the
// environment is passed in.

#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "llmload/v1/run.pb.h"

namespace llmload::cli {

struct Options {
  std::string command;  // local, run, get, list, stop, watch, workers, report, compare, help
  std::vector<std::string> positional;  // e.g. the run id

  // Closed-model run shape (flags of the original client).
  int32_t clients = 10;
  int32_t cycles = 5;
  int32_t length_words = 100;
  double delay_seconds = 0.01;
  int32_t max_concurrent = 50;

  // Load model (closed unless one of these is set).
  double duration_seconds = 0;  // --duration: duration model (--clients connections)
  double rate = 0;              // --rate: open model for --duration seconds
  std::string arrivals = "poisson";
  std::vector<std::pair<double, double>> ramp;  // --ramp RATE:SECONDS,...
  int32_t max_in_flight = 0;
  uint64_t seed = 0;
  double think_min_seconds = 0;  // --think S or MIN:MAX
  double think_max_seconds = 0;

  // Verdict.
  std::vector<std::string> thresholds;  // --threshold, as given
  bool abort_on_fail = false;
  double slo_ttft_seconds = 0;  // goodput objectives
  double slo_itl_seconds = 0;
  double slo_e2e_seconds = 0;

  // local
  int32_t workers = 2;
  int32_t worker_threads = 1;
  std::string bin_dir;    // default: the directory of the llmload binary
  std::string state_dir;  // default: a fresh temp dir
  bool keep_state = false;
  std::string allow_targets;  // the local orchestrator's --allow_targets

  // Links to the orchestrator and the collector (every remote command).
  std::string token_file;       // --token-file; the token may also be in LLMLOAD_TOKEN
  std::string tls_ca_file;      // verify the servers with this CA (turns TLS on)
  std::string tls_cert_file;    // client certificate for mutual TLS
  std::string tls_key_file;
  std::string tls_server_name;  // name expected in the servers' certificates

  // run / get / list / stop / watch
  std::string orchestrator = "127.0.0.1:50051";
  std::string spec_file;  // -f: RunSpec or {"spec": …} in proto JSON
  std::string url;        // target URL (run without -f)
  std::string name;
  int32_t limit = 20;     // list
  bool detach = false;    // run: print the run id and return
  bool json = false;      // print results as proto JSON
  double progress_interval_seconds = 5;
  double timeout_seconds = 0;  // 0: none

  // report / compare, and --report / --records at the end of local and run
  std::string collector = "127.0.0.1:50052";  // where stored results are read
  std::string format;       // report: text, json, csv, html (default: from -o, else text)
  std::string output;       // report: -o FILE ("" or "-": stdout)
  std::string report_file;  // local, run: write the report here (format from the extension)
  std::string records_file;  // records to FILE.jsonl or FILE.csv (report, local, run)
  // Per-request records in the spec (local, run): sample rate, seed, cap.
  // --records FILE alone records every request (rate 1).
  double records_sample = 0;
  uint64_t records_seed = 0;
  int32_t records_max = 0;
  // compare: exit 1 when a marked regression exceeds this many percent.
  std::optional<double> max_regression_pct;
  std::vector<std::string> compare_only;  // --only METRIC[:pNN], repeatable
};

// Parses argv (without argv[0]). `getenv` returns the value of an
// environment variable or nullopt.
absl::StatusOr<Options> ParseArgs(
    const std::vector<std::string>& args,
    const std::function<std::optional<std::string>(const std::string&)>& getenv);

// Parses one --threshold: "ttft:p95<0.5s", "e2e:p99<800ms", "error_rate<0.01",
// "requests_per_sec>50" (also tokens_per_sec, goodput_per_sec,
// goodput_ratio).
absl::StatusOr<v1::Threshold> ParseThreshold(const std::string& text);

// The run spec the flags describe (without -f).
v1::RunSpec SpecFromOptions(const Options& o, const std::string& url);

// The text printed by `llmload help` and on usage errors.
std::string UsageText();

}  // namespace llmload::cli
