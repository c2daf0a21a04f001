#include "tools/llmload/cli_args.h"

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace llmload::cli {
namespace {

struct FlagSpec {
  const char* name;      // without leading dashes
  const char* env;       // environment variable or nullptr
  bool takes_value;
  std::function<absl::Status(Options&, const std::string&)> apply;
};

absl::Status ParseInt(const std::string& flag, const std::string& text, int32_t min, int32_t max,
                      int32_t* out) {
  int32_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || v < min || v > max) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": expected an integer from ", min,
                                                   " to ", max, ", got '", text, "'"));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ParseDouble(const std::string& flag, const std::string& text, double min, double max,
                         double* out) {
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !(v >= min) || !(v <= max)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": expected a number from ", min,
                                                   " to ", max, ", got '", text, "'"));
  }
  *out = v;
  return absl::OkStatus();
}

const std::vector<FlagSpec>& Flags() {
  static const auto* kFlags = new std::vector<FlagSpec>{
      {"clients", "NUM_CLIENTS", true,
       [](Options& o, const std::string& v) { return ParseInt("clients", v, 1, 1000000, &o.clients); }},
      {"cycles", "CYCLES_PER_CLIENT", true,
       [](Options& o, const std::string& v) { return ParseInt("cycles", v, 1, 1000000, &o.cycles); }},
      {"length", "RESPONSE_LENGTH_WORDS", true,
       [](Options& o, const std::string& v) {
         return ParseInt("length", v, 1, 100000, &o.length_words);
       }},
      {"delay", "TOKEN_DELAY_SECONDS", true,
       [](Options& o, const std::string& v) { return ParseDouble("delay", v, 0, 60, &o.delay_seconds); }},
      {"max-concurrent", "MAX_CONCURRENT_CLIENTS", true,
       [](Options& o, const std::string& v) {
         return ParseInt("max-concurrent", v, 1, 1000000, &o.max_concurrent);
       }},
      {"workers", "LLMLOAD_WORKERS", true,
       [](Options& o, const std::string& v) { return ParseInt("workers", v, 1, 64, &o.workers); }},
      {"worker-threads", "LLMLOAD_WORKER_THREADS", true,
       [](Options& o, const std::string& v) {
         return ParseInt("worker-threads", v, 1, 256, &o.worker_threads);
       }},
      {"bin-dir", "LLMLOAD_BIN_DIR", true,
       [](Options& o, const std::string& v) {
         o.bin_dir = v;
         return absl::OkStatus();
       }},
      {"state-dir", nullptr, true,
       [](Options& o, const std::string& v) {
         o.state_dir = v;
         return absl::OkStatus();
       }},
      {"keep-state", nullptr, false,
       [](Options& o, const std::string&) {
         o.keep_state = true;
         return absl::OkStatus();
       }},
      {"orchestrator", "LLMLOAD_ORCHESTRATOR", true,
       [](Options& o, const std::string& v) {
         o.orchestrator = v;
         return absl::OkStatus();
       }},
      {"f", nullptr, true,
       [](Options& o, const std::string& v) {
         o.spec_file = v;
         return absl::OkStatus();
       }},
      {"file", nullptr, true,
       [](Options& o, const std::string& v) {
         o.spec_file = v;
         return absl::OkStatus();
       }},
      {"url", "LLMLOAD_TARGET_URL", true,
       [](Options& o, const std::string& v) {
         o.url = v;
         return absl::OkStatus();
       }},
      {"name", nullptr, true,
       [](Options& o, const std::string& v) {
         o.name = v;
         return absl::OkStatus();
       }},
      {"limit", nullptr, true,
       [](Options& o, const std::string& v) { return ParseInt("limit", v, 0, 100000, &o.limit); }},
      {"detach", nullptr, false,
       [](Options& o, const std::string&) {
         o.detach = true;
         return absl::OkStatus();
       }},
      {"json", nullptr, false,
       [](Options& o, const std::string&) {
         o.json = true;
         return absl::OkStatus();
       }},
      {"progress-interval", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseDouble("progress-interval", v, 0.1, 3600, &o.progress_interval_seconds);
       }},
      {"timeout", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseDouble("timeout", v, 0, 1e7, &o.timeout_seconds);
       }},
  };
  return *kFlags;
}

const FlagSpec* FindFlag(const std::string& name) {
  for (const FlagSpec& f : Flags()) {
    if (name == f.name) {
      return &f;
    }
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<Options> ParseArgs(
    const std::vector<std::string>& args,
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  Options o;
  // Environment first; flags override it.
  for (const FlagSpec& f : Flags()) {
    if (f.env == nullptr) {
      continue;
    }
    if (auto v = getenv(f.env); v.has_value() && !v->empty()) {
      if (absl::Status s = f.apply(o, *v); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("environment variable ", f.env, ": ", s.message()));
      }
    }
  }
  static const std::set<std::string> kCommands = {"local", "run",   "get",  "list",
                                                  "stop",  "watch", "help", "workers"};
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      o.command = "help";
      return o;
    }
    if (a.size() > 1 && a[0] == '-' && a != "-") {
      std::string name = a.substr(a[1] == '-' ? 2 : 1);
      std::optional<std::string> value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      // Accept snake_case spellings too (--max_concurrent).
      for (char& c : name) {
        if (c == '_') {
          c = '-';
        }
      }
      const FlagSpec* f = FindFlag(name);
      if (f == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("unknown flag ", a, " (see llmload help)"));
      }
      if (f->takes_value && !value.has_value()) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(absl::StrCat("flag ", a, " needs a value"));
        }
        value = args[++i];
      }
      if (!f->takes_value && value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " takes no value"));
      }
      if (absl::Status s = f->apply(o, value.value_or("")); !s.ok()) {
        return s;
      }
      continue;
    }
    if (o.command.empty()) {
      if (kCommands.count(a) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown command '", a, "' (see llmload help)"));
      }
      o.command = a;
    } else {
      o.positional.push_back(a);
    }
  }
  if (o.command.empty()) {
    o.command = "help";
  }
  if ((o.command == "get" || o.command == "stop" || o.command == "watch") &&
      o.positional.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("llmload ", o.command, " takes one run id"));
  }
  if (o.command == "run" && o.spec_file.empty() && o.url.empty()) {
    return absl::InvalidArgumentError("llmload run needs -f spec.json or --url TARGET_URL");
  }
  if (o.max_concurrent > o.clients) {
    o.max_concurrent = o.clients;
  }
  return o;
}

std::string UsageText() {
  return R"(llmload: distributed load generator for LLM streaming endpoints.

Usage:
  llmload local [flags]                  start emulator, collector, orchestrator and
                                         workers on loopback, run a closed-model test,
                                         print the report
  llmload run (-f spec.json | --url URL) [flags]
                                         start a run on a running orchestrator and
                                         follow it to the end (--detach: print the id)
  llmload get RUN_ID                     show a run with its statistics
  llmload list [--limit N]               list runs, newest first
  llmload stop RUN_ID                    stop a run, keeping its partial results
  llmload watch RUN_ID                   follow a run's progress to the end
  llmload workers                        list attached workers

Run shape (flags of the original emulator client; environment variable in brackets):
  --clients N          concurrent clients (sessions)            [NUM_CLIENTS]            10
  --cycles N           request cycles per client                [CYCLES_PER_CLIENT]      5
  --length N           response length in words                 [RESPONSE_LENGTH_WORDS]  100
  --delay SECONDS      delay between tokens                     [TOKEN_DELAY_SECONDS]    0.01
  --max-concurrent N   sessions open at once                    [MAX_CONCURRENT_CLIENTS] 50

local:
  --workers N          worker processes                         [LLMLOAD_WORKERS]        2
  --worker-threads N   event-loop threads per worker            [LLMLOAD_WORKER_THREADS] 1
  --bin-dir DIR        where the llmload-* binaries are         [LLMLOAD_BIN_DIR]  beside llmload
  --state-dir DIR      databases and logs (default: a new temp dir)
  --keep-state         keep the state dir after a successful run

run, get, list, stop, watch, workers:
  --orchestrator HOST:PORT                                      [LLMLOAD_ORCHESTRATOR] 127.0.0.1:50051
  -f, --file FILE      run spec in proto JSON: a RunSpec or {"spec": {...}}
  --url URL            target base URL (CENTRIFUGO_EMULATOR), when no -f is given
                                                                [LLMLOAD_TARGET_URL]
  --name NAME          run name
  --limit N            list: at most N runs (0: all)                                   20
  --detach             run: print the run id and return at once
  --json               print runs as proto JSON
  --progress-interval SECONDS   progress line period                                   5
  --timeout SECONDS    give up waiting after this long (0: never)                      0

Exit status: 0 when the run COMPLETED, 1 when it FAILED or was CANCELLED, 2 on usage
or connection errors.
)";
}

}  // namespace llmload::cli
