// File: cli_args.h
//
// Command-line parsing for the `llmload` tool. The tool keeps the flags of
// the original emulator client (`--clients 10`, `--max-concurrent 50`, with
// dashes and separate values) and their environment variables, so it uses
// this small table-driven parser rather than absl flags. Pure: the
// environment is passed in (the prompts file is read by ReadPromptsFile).
//
// The parser checks syntax only (a number, NAME=VALUE, a known protocol);
// the limits of a run spec are the orchestrator's own validation
// (lib/validation), which BuildRunSpec applies to the spec the flags
// describe, naming the flag in its errors:
//
//   --clients: must be between 1 and 1000000, got 0 [spec.load.closed.clients]

#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "llmload/v1/run.pb.h"

namespace llmload::cli {

struct Options {
  std::string command;  // local, run, get, list, stop, watch, workers, report, compare, help
  std::vector<std::string> positional;  // e.g. the run id

  // Flags named on the command line (not the environment), by their
  // canonical name ("clients", "header"): with -f only these override the
  // file's target.
  std::set<std::string> given;

  // Target (run without -f, and local).
  v1::Protocol protocol = v1::CENTRIFUGO_EMULATOR;
  std::string model;
  std::string prompt;
  std::string prompts_file;          // --prompts-file: JSON lines, read by ReadPromptsFile
  std::vector<std::string> prompts;  // its prompts, once read (plain prompts only)
  std::vector<v1::PromptConversation> prompt_messages;  // or its message lists
  int32_t max_tokens = 0;
  v1::PromptOrder prompt_order = v1::PROMPT_ORDER_UNSPECIFIED;  // --prompt-order
  uint64_t prompt_seed = 0;                                      // --prompt-seed
  std::optional<v1::LengthDistribution> input_length;           // --input-length
  std::optional<v1::LengthDistribution> output_length;          // --output-length
  std::vector<std::string> tools;  // --tools: WS_CHAT options.tools
  std::string api_key_env;
  std::map<std::string, std::string> headers;           // --header NAME=VALUE
  std::map<std::string, std::string> headers_from_env;  // --header-from-env NAME=ENVVAR

  // Closed-model run shape (flags of the original client).
  int32_t clients = 10;
  int32_t cycles = 5;
  int32_t length_words = 100;
  double delay_seconds = 0.01;
  int32_t max_concurrent = 50;

  // Load model (closed unless one of these is set).
  std::optional<double> duration_seconds;  // --duration: duration model (--clients connections)
  std::optional<double> rate;              // --rate: open model for --duration seconds
  std::string arrivals = "poisson";
  std::vector<std::pair<double, double>> ramp;  // --ramp RATE:SECONDS,...
  int32_t max_in_flight = 0;
  uint64_t seed = 0;
  bool think = false;  // --think S or MIN:MAX given
  double think_min_seconds = 0;
  double think_max_seconds = 0;

  // Verdict.
  std::vector<std::string> thresholds;  // --threshold, as given
  bool abort_on_fail = false;
  std::optional<double> slo_ttft_seconds;  // goodput objectives
  std::optional<double> slo_itl_seconds;
  std::optional<double> slo_e2e_seconds;

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
  std::string url;        // target URL (run without -f); the first when several
  // Every target URL, in order: --url given more than once (run) fills
  // spec.target.urls and sessions spread over them. The command line's
  // replace LLMLOAD_TARGET_URL's.
  std::vector<std::string> urls;
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
  std::optional<double> records_sample;
  uint64_t records_seed = 0;
  std::optional<int32_t> records_max;
  // Cancellation (local, run): the share abandoned, after how many tokens
  // and/or seconds, and the choice's seed.
  std::optional<double> cancel_share;
  int32_t cancel_after_tokens = 0;
  // Multi-turn conversations: requests per conversation (0: single-turn).
  int32_t turns = 0;
  // Warm-up (a number of requests, or seconds) and cool-down (seconds):
  // run but counted apart.
  int32_t warmup_requests = 0;
  std::optional<double> warmup_seconds;
  std::optional<double> cooldown_seconds;
  std::optional<double> cancel_after_seconds;
  uint64_t cancel_seed = 0;
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
// goodput_ratio). Syntax only: the metric and the bounds are checked by
// validation.
absl::StatusOr<v1::Threshold> ParseThreshold(const std::string& text);

// A protocol by its proto enum name, in any case, '-' for '_'
// ("openai_chat", "OPENAI-CHAT").
absl::StatusOr<v1::Protocol> ParseProtocol(const std::string& name);

// A prompt dataset: plain prompts, or (when any entry is a message list)
// message lists, a plain prompt becoming one user message.
struct PromptDataset {
  std::vector<std::string> prompts;
  std::vector<v1::PromptConversation> conversations;
};

// A dataset from JSON lines: each non-blank line is a JSON string, an object
// with a string "prompt", an object with "messages" (an OpenAI-style list of
// {"role", "content"}), or such a list itself. `source` names the file in
// errors ("prompts.jsonl:3: ..."). Refused beyond validation's caps
// (kMaxPromptEntries entries, kMaxPromptBytes of text).
absl::StatusOr<PromptDataset> ParsePrompts(const std::string& text, const std::string& source);
// Reads o->prompts_file (when set) into o->prompts or o->prompt_messages.
// The file is read by the CLI and the dataset travels inside the spec, so
// workers on other hosts need no copy of it.
absl::Status ReadPromptsFile(Options* o);

// A length distribution from a flag: N or fixed:N, uniform:MIN:MAX,
// normal:MEAN:STDDEV[:MIN:MAX], lognormal:MEAN:STDDEV[:MIN:MAX]. Syntax only:
// the bounds are validation's.
absl::StatusOr<v1::LengthDistribution> ParseLengthDistribution(const std::string& flag,
                                                               const std::string& text);

// Where the built-in emulator at `host_port` ("127.0.0.1:8080") serves
// `protocol`: the base URL for the REST/SSE protocols, the WebSocket path
// for WS_CHAT and REALM, the endpoint for HTTP_JSON.
std::string EmulatorTargetUrl(v1::Protocol protocol, const std::string& host_port);

// The run spec the flags describe (without -f), unvalidated, against
// `url`, or against `urls` (one: spec.target.url; several:
// spec.target.urls).
v1::RunSpec SpecFromOptions(const Options& o, const std::string& url);
v1::RunSpec SpecFromOptions(const Options& o, const std::vector<std::string>& urls);

// Applies the target flags given on the command line (not the environment)
// to a spec read with -f: --url (one or several; they replace the file's
// url and urls), --protocol, --model, --prompt, --prompts-file,
// --max-tokens, --prompt-order, --prompt-seed, --input-length,
// --output-length and --api-key-env replace the file's, and
// --header / --header-from-env add to its maps. --name, --threshold, --slo-*
// and the --records flags apply as they do without -f.
void ApplyFlagsToFileSpec(const Options& o, v1::RunSpec* spec);

// The flag that sets a spec field, by the field's path in a validation
// error ("spec.load.closed.clients" -> "--clients",
// "spec.target.headers[\"X\"]" -> "--header X"); empty when no flag does.
std::string FlagForSpecPath(const std::string& path);

// Checks `spec` with the orchestrator's own validation. A failure keeps its
// code; its message names the flag that sets the field first (when
// `flag_allowed` accepts the flag's canonical name, e.g. "clients"), and the
// field's path after:
//   --clients: must be between 1 and 1000000, got 0 [spec.load.closed.clients]
absl::Status ValidateSpecForCli(
    const v1::RunSpec& spec,
    const std::function<bool(const std::string&)>& flag_allowed = nullptr);

// SpecFromOptions, validated (ValidateSpecForCli).
absl::StatusOr<v1::RunSpec> BuildRunSpec(const Options& o, const std::string& url);
absl::StatusOr<v1::RunSpec> BuildRunSpec(const Options& o, const std::vector<std::string>& urls);

// The text printed by `llmload help` and on usage errors.
std::string UsageText();

}  // namespace llmload::cli
