#include "tools/llmload/cli_args.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "boost/json/parse.hpp"
#include "boost/json/value.hpp"
#include "lib/validation/validation.h"

namespace llmload::cli {
namespace {

struct FlagSpec {
  const char* name;      // without leading dashes
  const char* env;       // environment variable or nullptr
  bool takes_value;
  std::function<absl::Status(Options&, const std::string&)> apply;
};

// Flags of the tool itself (--workers, --timeout, ...), which no spec holds,
// keep their limits here.
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

// Spec flags are parsed for syntax only: their limits are validation's.
absl::Status ParseInteger(const std::string& flag, const std::string& text, int32_t* out) {
  if (!absl::SimpleAtoi(text, out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": expected an integer, got '", text, "'"));
  }
  return absl::OkStatus();
}

absl::Status ParseNumber(const std::string& flag, const std::string& text, double* out) {
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": expected a number, got '", text, "'"));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ParseOptionalNumber(const std::string& flag, const std::string& text,
                                 std::optional<double>* out) {
  double v = 0;
  if (absl::Status s = ParseNumber(flag, text, &v); !s.ok()) {
    return s;
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ParseThink(const std::string& text, Options& o) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos) {
    if (absl::Status s = ParseNumber("think", text, &o.think_min_seconds); !s.ok()) {
      return s;
    }
    o.think_max_seconds = o.think_min_seconds;
  } else {
    if (absl::Status s = ParseNumber("think", text.substr(0, colon), &o.think_min_seconds);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = ParseNumber("think", text.substr(colon + 1), &o.think_max_seconds);
        !s.ok()) {
      return s;
    }
  }
  o.think = true;
  return absl::OkStatus();
}

absl::Status ParseRamp(const std::string& text, Options& o) {
  o.ramp.clear();
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    const std::string item(part);
    const size_t colon = item.find(':');
    double rate = 0;
    double seconds = 0;
    if (colon == std::string::npos || !absl::SimpleAtod(item.substr(0, colon), &rate) ||
        !absl::SimpleAtod(item.substr(colon + 1), &seconds) || !std::isfinite(rate) ||
        !std::isfinite(seconds)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ramp: expected RATE:SECONDS[,RATE:SECONDS...] (e.g. 10:30,50:60), got '", text, "'"));
    }
    o.ramp.emplace_back(rate, seconds);
  }
  return absl::OkStatus();
}

// NAME=VALUE of --header and --header-from-env. The text is never echoed: a
// mistyped header may hold a credential.
absl::Status ParseNameValue(const std::string& flag, const std::string& what,
                            const std::string& text, std::map<std::string, std::string>* out) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": expected NAME=", what, " (e.g. --", flag,
        flag == "header" ? " x-request-source=llmload" : " api-key=AZURE_OPENAI_KEY",
        "), got a value without '='",
        text.find(':') != std::string::npos ? " (write NAME=VALUE, not NAME: VALUE)" : ""));
  }
  std::string name = text.substr(0, eq);
  if (out->count(name) > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": header \"", absl::CHexEscape(name), "\" given twice"));
  }
  (*out)[std::move(name)] = text.substr(eq + 1);
  return absl::OkStatus();
}

bool ReportExtensionKnown(const std::string& path) {
  for (const char* ext : {".html", ".htm", ".json", ".csv", ".txt"}) {
    const std::string e(ext);
    if (path.size() > e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0) {
      return true;
    }
  }
  return false;
}

const std::vector<FlagSpec>& Flags() {
  static const auto* kFlags = new std::vector<FlagSpec>{
      {"protocol", "LLMLOAD_PROTOCOL", true,
       [](Options& o, const std::string& v) {
         absl::StatusOr<v1::Protocol> p = ParseProtocol(v);
         if (!p.ok()) {
           return p.status();
         }
         o.protocol = *p;
         return absl::OkStatus();
       }},
      {"model", "LLMLOAD_MODEL", true,
       [](Options& o, const std::string& v) {
         o.model = v;
         return absl::OkStatus();
       }},
      {"prompt", "LLMLOAD_PROMPT", true,
       [](Options& o, const std::string& v) {
         o.prompt = v;
         return absl::OkStatus();
       }},
      {"prompts-file", "LLMLOAD_PROMPTS_FILE", true,
       [](Options& o, const std::string& v) {
         if (v.empty()) {
           return absl::InvalidArgumentError("--prompts-file: needs a file name");
         }
         o.prompts_file = v;
         return absl::OkStatus();
       }},
      {"max-tokens", "LLMLOAD_MAX_TOKENS", true,
       [](Options& o, const std::string& v) { return ParseInteger("max-tokens", v, &o.max_tokens); }},
      {"prompt-order", "LLMLOAD_PROMPT_ORDER", true,
       [](Options& o, const std::string& v) {
         const std::string lower = absl::AsciiStrToLower(v);
         if (lower == "cycle") {
           o.prompt_order = v1::PROMPT_ORDER_CYCLE;
         } else if (lower == "random") {
           o.prompt_order = v1::PROMPT_ORDER_RANDOM;
         } else {
           return absl::InvalidArgumentError(
               absl::StrCat("--prompt-order: cycle or random, got '", v, "'"));
         }
         return absl::OkStatus();
       }},
      {"prompt-seed", "LLMLOAD_PROMPT_SEED", true,
       [](Options& o, const std::string& v) {
         if (!absl::SimpleAtoi(v, &o.prompt_seed)) {
           return absl::InvalidArgumentError(
               absl::StrCat("--prompt-seed: expected a non-negative integer, got '", v, "'"));
         }
         return absl::OkStatus();
       }},
      {"tools", "LLMLOAD_TOOLS", true,
       [](Options& o, const std::string& v) {
         // Comma-separated tool names (empty: none); validation checks them.
         o.tools.clear();
         if (!v.empty()) {
           o.tools = absl::StrSplit(v, ',');
         }
         return absl::OkStatus();
       }},
      {"input-length", "LLMLOAD_INPUT_LENGTH", true,
       [](Options& o, const std::string& v) {
         absl::StatusOr<v1::LengthDistribution> d = ParseLengthDistribution("input-length", v);
         if (!d.ok()) {
           return d.status();
         }
         o.input_length = *d;
         return absl::OkStatus();
       }},
      {"output-length", "LLMLOAD_OUTPUT_LENGTH", true,
       [](Options& o, const std::string& v) {
         absl::StatusOr<v1::LengthDistribution> d = ParseLengthDistribution("output-length", v);
         if (!d.ok()) {
           return d.status();
         }
         o.output_length = *d;
         return absl::OkStatus();
       }},
      {"api-key-env", "LLMLOAD_API_KEY_ENV", true,
       [](Options& o, const std::string& v) {
         o.api_key_env = v;
         return absl::OkStatus();
       }},
      {"header", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseNameValue("header", "VALUE", v, &o.headers);
       }},
      {"header-from-env", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseNameValue("header-from-env", "ENVVAR", v, &o.headers_from_env);
       }},
      {"clients", "NUM_CLIENTS", true,
       [](Options& o, const std::string& v) { return ParseInteger("clients", v, &o.clients); }},
      {"cycles", "CYCLES_PER_CLIENT", true,
       [](Options& o, const std::string& v) { return ParseInteger("cycles", v, &o.cycles); }},
      {"length", "RESPONSE_LENGTH_WORDS", true,
       [](Options& o, const std::string& v) { return ParseInteger("length", v, &o.length_words); }},
      {"delay", "TOKEN_DELAY_SECONDS", true,
       [](Options& o, const std::string& v) { return ParseNumber("delay", v, &o.delay_seconds); }},
      {"max-concurrent", "MAX_CONCURRENT_CLIENTS", true,
       [](Options& o, const std::string& v) {
         return ParseInteger("max-concurrent", v, &o.max_concurrent);
       }},
      {"duration", "LLMLOAD_DURATION_SECONDS", true,
       [](Options& o, const std::string& v) {
         return ParseOptionalNumber("duration", v, &o.duration_seconds);
       }},
      {"rate", "LLMLOAD_RATE", true,
       [](Options& o, const std::string& v) { return ParseOptionalNumber("rate", v, &o.rate); }},
      {"arrivals", nullptr, true,
       [](Options& o, const std::string& v) {
         if (v != "poisson" && v != "uniform") {
           return absl::InvalidArgumentError(
               absl::StrCat("--arrivals: expected poisson or uniform, got '", v, "'"));
         }
         o.arrivals = v;
         return absl::OkStatus();
       }},
      {"ramp", nullptr, true, [](Options& o, const std::string& v) { return ParseRamp(v, o); }},
      {"max-in-flight", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseInteger("max-in-flight", v, &o.max_in_flight);
       }},
      {"seed", nullptr, true,
       [](Options& o, const std::string& v) {
         if (!absl::SimpleAtoi(v, &o.seed)) {
           return absl::InvalidArgumentError(absl::StrCat("--seed: expected an integer, got '", v, "'"));
         }
         return absl::OkStatus();
       }},
      {"think", nullptr, true, [](Options& o, const std::string& v) { return ParseThink(v, o); }},
      {"threshold", nullptr, true,
       [](Options& o, const std::string& v) {
         if (auto t = ParseThreshold(v); !t.ok()) {
           return t.status();
         }
         o.thresholds.push_back(v);
         return absl::OkStatus();
       }},
      {"abort-on-fail", nullptr, false,
       [](Options& o, const std::string&) {
         o.abort_on_fail = true;
         return absl::OkStatus();
       }},
      {"slo-ttft", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseOptionalNumber("slo-ttft", v, &o.slo_ttft_seconds);
       }},
      {"slo-itl", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseOptionalNumber("slo-itl", v, &o.slo_itl_seconds);
       }},
      {"slo-e2e", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseOptionalNumber("slo-e2e", v, &o.slo_e2e_seconds);
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
      {"allow-targets", "LLMLOAD_ALLOW_TARGETS", true,
       [](Options& o, const std::string& v) {
         o.allow_targets = v;
         return absl::OkStatus();
       }},
      {"keep-state", nullptr, false,
       [](Options& o, const std::string&) {
         o.keep_state = true;
         return absl::OkStatus();
       }},
      {"token-file", "LLMLOAD_TOKEN_FILE", true,
       [](Options& o, const std::string& v) {
         o.token_file = v;
         return absl::OkStatus();
       }},
      {"tls-ca-file", "LLMLOAD_TLS_CA_FILE", true,
       [](Options& o, const std::string& v) {
         o.tls_ca_file = v;
         return absl::OkStatus();
       }},
      {"tls-cert-file", "LLMLOAD_TLS_CERT_FILE", true,
       [](Options& o, const std::string& v) {
         o.tls_cert_file = v;
         return absl::OkStatus();
       }},
      {"tls-key-file", "LLMLOAD_TLS_KEY_FILE", true,
       [](Options& o, const std::string& v) {
         o.tls_key_file = v;
         return absl::OkStatus();
       }},
      {"tls-server-name", "LLMLOAD_TLS_SERVER_NAME", true,
       [](Options& o, const std::string& v) {
         o.tls_server_name = v;
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
         // Repeatable. The first --url on the command line replaces the
         // environment's (`given` is marked after this runs).
         if (o.given.count("url") == 0) {
           o.urls.clear();
         }
         o.urls.push_back(v);
         o.url = o.urls.front();
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
      {"collector", "LLMLOAD_COLLECTOR", true,
       [](Options& o, const std::string& v) {
         o.collector = v;
         return absl::OkStatus();
       }},
      {"format", nullptr, true,
       [](Options& o, const std::string& v) {
         if (v != "text" && v != "json" && v != "csv" && v != "html") {
           return absl::InvalidArgumentError(
               absl::StrCat("--format: expected text, json, csv or html, got '", v, "'"));
         }
         o.format = v;
         return absl::OkStatus();
       }},
      {"o", nullptr, true,
       [](Options& o, const std::string& v) {
         o.output = v;
         return absl::OkStatus();
       }},
      {"output", nullptr, true,
       [](Options& o, const std::string& v) {
         o.output = v;
         return absl::OkStatus();
       }},
      {"report", nullptr, true,
       [](Options& o, const std::string& v) {
         if (!ReportExtensionKnown(v)) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--report: the file name must end in .html, .json, .csv or .txt, got '", v, "'"));
         }
         o.report_file = v;
         return absl::OkStatus();
       }},
      {"records", nullptr, true,
       [](Options& o, const std::string& v) {
         if (v.empty()) {
           return absl::InvalidArgumentError("--records: needs a file name (.jsonl or .csv)");
         }
         o.records_file = v;
         return absl::OkStatus();
       }},
      {"records-sample", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseOptionalNumber("records-sample", v, &o.records_sample);
       }},
      {"records-seed", nullptr, true,
       [](Options& o, const std::string& v) {
         if (!absl::SimpleAtoi(v, &o.records_seed)) {
           return absl::InvalidArgumentError(
               absl::StrCat("--records-seed: expected an integer, got '", v, "'"));
         }
         return absl::OkStatus();
       }},
      {"cancel", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseOptionalNumber("cancel", v, &o.cancel_share);
       }},
      {"cancel-after-tokens", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseInteger("cancel-after-tokens", v, &o.cancel_after_tokens);
       }},
      {"cancel-after", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseOptionalNumber("cancel-after", v, &o.cancel_after_seconds);
       }},
      {"warmup-requests", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseInteger("warmup-requests", v, &o.warmup_requests);
       }},
      {"warmup", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseOptionalNumber("warmup", v, &o.warmup_seconds);
       }},
      {"cooldown", nullptr, true,
       [](Options& o, const std::string& v) {
         return ParseOptionalNumber("cooldown", v, &o.cooldown_seconds);
       }},
      {"turns", nullptr, true,
       [](Options& o, const std::string& v) { return ParseInteger("turns", v, &o.turns); }},
      {"cancel-seed", nullptr, true,
       [](Options& o, const std::string& v) {
         if (!absl::SimpleAtoi(v, &o.cancel_seed)) {
           return absl::InvalidArgumentError(
               absl::StrCat("--cancel-seed: expected an integer, got '", v, "'"));
         }
         return absl::OkStatus();
       }},
      {"records-max", nullptr, true,
       [](Options& o, const std::string& v) {
         int32_t n = 0;
         if (absl::Status s = ParseInteger("records-max", v, &n); !s.ok()) {
           return s;
         }
         o.records_max = n;
         return absl::OkStatus();
       }},
      {"max-regression", nullptr, true,
       [](Options& o, const std::string& v) {
         double pct = 0;
         if (absl::Status s = ParseDouble("max-regression", v, 0, 1e6, &pct); !s.ok()) {
           return s;
         }
         o.max_regression_pct = pct;
         return absl::OkStatus();
       }},
      {"only", nullptr, true,
       [](Options& o, const std::string& v) {
         o.compare_only.push_back(v);
         return absl::OkStatus();
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
  static const std::set<std::string> kCommands = {"local", "run",     "get",    "list",
                                                  "stop",  "watch",   "help",   "workers",
                                                  "report", "compare"};
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
      o.given.insert(f->name);
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
  if (o.command == "report" && o.positional.size() != 1) {
    return absl::InvalidArgumentError("llmload report takes one run id");
  }
  if (o.command == "compare" && o.positional.size() != 2) {
    return absl::InvalidArgumentError("llmload compare takes two run ids: RUN_A RUN_B");
  }
  if (o.command == "compare" && !o.format.empty() && o.format != "text" && o.format != "json") {
    return absl::InvalidArgumentError("llmload compare: --format is text or json");
  }
  if (o.command == "run" && o.spec_file.empty() && o.url.empty()) {
    return absl::InvalidArgumentError("llmload run needs -f spec.json or --url TARGET_URL");
  }
  if (o.max_concurrent > o.clients) {
    o.max_concurrent = o.clients;
  }
  // How the flags combine (their values are validation's to judge).
  if (o.rate.has_value() && o.ramp.empty() && !o.duration_seconds.has_value()) {
    return absl::InvalidArgumentError("--rate needs --duration SECONDS (or --ramp)");
  }
  if (!o.prompt.empty() && !o.prompts_file.empty()) {
    // The command line beats the environment; two on one level clash.
    const bool prompt_given = o.given.count("prompt") > 0;
    const bool file_given = o.given.count("prompts-file") > 0;
    if (prompt_given && !file_given) {
      o.prompts_file.clear();
    } else if (file_given && !prompt_given) {
      o.prompt.clear();
    } else {
      return absl::InvalidArgumentError("--prompt and --prompts-file: give one of them");
    }
  }
  return o;
}

namespace {

// Seconds as a proto Duration, saturated to the Duration's range so that any
// finite number converts (validation then reports it as out of range).
void SetDuration(double seconds, google::protobuf::Duration* out) {
  constexpr double kMaxSeconds = 315576000000.0;  // google.protobuf.Duration's bound
  seconds = std::clamp(seconds, -kMaxSeconds, kMaxSeconds);
  const auto whole = static_cast<int64_t>(seconds);
  out->set_seconds(whole);
  out->set_nanos(static_cast<int32_t>((seconds - static_cast<double>(whole)) * 1e9));
}

}  // namespace

absl::StatusOr<v1::Threshold> ParseThreshold(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--threshold '", text, "': ", why,
        " (e.g. ttft:p95<0.5s, e2e:p99<800ms, error_rate<0.01, requests_per_sec>50)"));
  };
  v1::Threshold t;
  const size_t lt = text.find('<');
  const size_t gt = text.find('>');
  if ((lt == std::string::npos) == (gt == std::string::npos)) {
    return bad("needs exactly one of < or >");
  }
  const size_t op = lt != std::string::npos ? lt : gt;
  const std::string left = text.substr(0, op);
  const std::string right = text.substr(op + 1);
  if (gt != std::string::npos) {
    double above = 0;
    if (!absl::SimpleAtod(right, &above) || !std::isfinite(above)) {
      return bad("the bound after > must be a number");
    }
    t.set_metric(left);
    t.set_kind(v1::THROUGHPUT);
    t.set_above(above);
    return t;
  }
  if (left == "error_rate") {
    double v = 0;
    if (!absl::SimpleAtod(right, &v) || !std::isfinite(v)) {
      return bad("error_rate takes a fraction, e.g. 0.01");
    }
    t.set_metric(left);
    t.set_kind(v1::ERROR_RATE);
    t.set_below_value(v);
    return t;
  }
  const size_t colon = left.find(':');
  double percentile = 0;
  if (colon == std::string::npos || left.size() < colon + 3 || left[colon + 1] != 'p' ||
      !absl::SimpleAtod(left.substr(colon + 2), &percentile) || !std::isfinite(percentile)) {
    return bad("a latency threshold is METRIC:pNN<DURATION");
  }
  // Durations: 500ms, 0.5s, 250us, or plain seconds.
  double scale = 1;
  std::string number = right;
  for (const auto& [suffix, factor] :
       std::vector<std::pair<std::string, double>>{{"ms", 1e-3}, {"us", 1e-6}, {"s", 1}}) {
    if (number.size() > suffix.size() &&
        number.compare(number.size() - suffix.size(), suffix.size(), suffix) == 0) {
      number = number.substr(0, number.size() - suffix.size());
      scale = factor;
      break;
    }
  }
  double value = 0;
  if (!absl::SimpleAtod(number, &value) || !std::isfinite(value)) {
    return bad("the bound after < must be a duration (500ms, 0.5s, 250us)");
  }
  t.set_metric(left.substr(0, colon));
  t.set_kind(v1::PERCENTILE);
  t.set_percentile(percentile);
  SetDuration(value * scale, t.mutable_below());
  return t;
}

absl::StatusOr<v1::Protocol> ParseProtocol(const std::string& name) {
  std::string upper = absl::AsciiStrToUpper(name);
  std::replace(upper.begin(), upper.end(), '-', '_');
  v1::Protocol p = v1::PROTOCOL_UNSPECIFIED;
  if (v1::Protocol_Parse(upper, &p) && p != v1::PROTOCOL_UNSPECIFIED) {
    return p;
  }
  std::vector<std::string> names;
  for (int i = v1::Protocol_MIN; i <= v1::Protocol_MAX; ++i) {
    if (v1::Protocol_IsValid(i) && i != v1::PROTOCOL_UNSPECIFIED) {
      names.push_back(v1::Protocol_Name(static_cast<v1::Protocol>(i)));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("--protocol: unknown protocol '", name,
                                                 "'; one of ", absl::StrJoin(names, ", ")));
}

namespace {

// The text of an OpenAI-style message content: a string, or a list of parts
// whose "text" parts are joined.
std::optional<std::string> ContentText(const boost::json::value& v) {
  if (const boost::json::string* str = v.if_string()) {
    return std::string(str->data(), str->size());
  }
  const boost::json::array* parts = v.if_array();
  if (parts == nullptr) {
    return std::nullopt;
  }
  std::string out;
  for (const boost::json::value& part : *parts) {
    const boost::json::object* o = part.if_object();
    const boost::json::value* text = o != nullptr ? o->if_contains("text") : nullptr;
    if (text == nullptr || !text->is_string()) {
      return std::nullopt;
    }
    out.append(text->get_string().data(), text->get_string().size());
  }
  return out;
}

// A message list ([{"role": …, "content": …}, …]) into `c`; an error says why not.
std::optional<std::string> ParseMessageList(const boost::json::value& v,
                                            v1::PromptConversation* c) {
  const boost::json::array* list = v.if_array();
  if (list == nullptr || list->empty()) {
    return std::string("\"messages\" must be a non-empty list of {\"role\", \"content\"}");
  }
  bool user = false;
  for (size_t j = 0; j < list->size(); ++j) {
    const boost::json::object* m = (*list)[j].if_object();
    const boost::json::value* role = m != nullptr ? m->if_contains("role") : nullptr;
    const boost::json::value* content = m != nullptr ? m->if_contains("content") : nullptr;
    if (role == nullptr || !role->is_string() || content == nullptr) {
      return absl::StrCat("message ", j, " needs a string \"role\" and a \"content\"");
    }
    const std::string r(role->get_string().data(), role->get_string().size());
    if (r != "system" && r != "user" && r != "assistant") {
      return absl::StrCat("message ", j, ": role must be system, user or assistant, got '", r,
                          "'");
    }
    std::optional<std::string> text = ContentText(*content);
    if (!text.has_value()) {
      return absl::StrCat("message ", j,
                          ": content must be a string or a list of {\"type\": \"text\", "
                          "\"text\": ...}");
    }
    user = user || r == "user";
    v1::PromptMessage* pm = c->add_messages();
    pm->set_role(r);
    pm->set_content(*std::move(text));
  }
  if (!user) {
    return std::string("a message list needs a message with role user");
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<PromptDataset> ParsePrompts(const std::string& text, const std::string& source) {
  // Every entry as a conversation; plain prompts are also kept as strings in
  // case no entry turns out to be a message list.
  std::vector<v1::PromptConversation> entries;
  std::vector<std::string> plain;
  bool any_list = false;
  int64_t bytes = 0;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) {
      continue;
    }
    const auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompts-file ", source, ":", line_number, ": ", why));
    };
    if (static_cast<int>(entries.size()) >= validation::kMaxPromptEntries) {
      return bad(absl::StrCat("more than ", validation::kMaxPromptEntries,
                              " prompts; the spec carries the dataset to every worker"));
    }
    boost::system::error_code ec;
    const boost::json::value v =
        boost::json::parse(boost::json::string_view(line.data(), line.size()), ec);
    if (ec) {
      return bad(absl::StrCat("not JSON (", ec.message(),
                              "); each line is a JSON string, {\"prompt\": \"...\"} or "
                              "{\"messages\": [...]}"));
    }
    v1::PromptConversation c;
    std::optional<std::string> prompt;
    const boost::json::object* obj = v.if_object();
    if (const boost::json::string* str = v.if_string()) {
      prompt.emplace(str->data(), str->size());
    } else if (v.is_array()) {
      if (std::optional<std::string> why = ParseMessageList(v, &c)) {
        return bad(*why);
      }
    } else if (obj == nullptr) {
      return bad("expected a JSON string, {\"prompt\": \"...\"} or {\"messages\": [...]}");
    } else if (const boost::json::value* p = obj->if_contains("prompt"); p != nullptr) {
      const boost::json::string* str = p->if_string();
      if (str == nullptr) {
        return bad("\"prompt\" must be a string");
      }
      prompt.emplace(str->data(), str->size());
    } else if (const boost::json::value* m = obj->if_contains("messages"); m != nullptr) {
      if (std::optional<std::string> why = ParseMessageList(*m, &c)) {
        return bad(*why);
      }
    } else {
      return bad("an object needs a string \"prompt\" or a \"messages\" list");
    }
    if (prompt.has_value()) {
      bytes += static_cast<int64_t>(prompt->size());
      v1::PromptMessage* pm = c.add_messages();
      pm->set_role("user");
      pm->set_content(*prompt);
      plain.push_back(*std::move(prompt));
    } else {
      any_list = true;
      for (const v1::PromptMessage& m : c.messages()) {
        bytes += static_cast<int64_t>(m.content().size());
      }
    }
    if (bytes > validation::kMaxPromptBytes) {
      return bad(absl::StrCat("more than ", validation::kMaxPromptBytes,
                              " bytes of prompt text; the spec carries the dataset to every "
                              "worker"));
    }
    entries.push_back(std::move(c));
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--prompts-file ", source, ": no prompts"));
  }
  PromptDataset out;
  if (any_list) {
    out.conversations = std::move(entries);
  } else {
    out.prompts = std::move(plain);
  }
  return out;
}

absl::Status ReadPromptsFile(Options* o) {
  if (o->prompts_file.empty()) {
    return absl::OkStatus();
  }
  std::ifstream in(o->prompts_file, std::ios::binary | std::ios::ate);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prompts-file: cannot read ", o->prompts_file));
  }
  // JSON escapes can make a file several times its text; refuse a file that
  // could not fit before reading it whole.
  const std::streamoff size = in.tellg();
  if (size > 4 * validation::kMaxPromptBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prompts-file: ", o->prompts_file, " is ", size, " bytes; at most ",
                     4 * validation::kMaxPromptBytes,
                     " (the spec carries the dataset to every worker)"));
  }
  in.seekg(0);
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<PromptDataset> dataset = ParsePrompts(ss.str(), o->prompts_file);
  if (!dataset.ok()) {
    return dataset.status();
  }
  o->prompts = std::move(dataset->prompts);
  o->prompt_messages = std::move(dataset->conversations);
  return absl::OkStatus();
}

absl::StatusOr<v1::LengthDistribution> ParseLengthDistribution(const std::string& flag,
                                                               const std::string& text) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": expected N, fixed:N, uniform:MIN:MAX, normal:MEAN:STDDEV"
                     "[:MIN:MAX] or lognormal:MEAN:STDDEV[:MIN:MAX], got '", text, "'"));
  };
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  v1::LengthDistribution d;
  if (parts.size() == 1) {
    parts.insert(parts.begin(), "fixed");
  }
  const std::string kind = absl::AsciiStrToLower(parts[0]);
  const auto integer = [](const std::string& s, int32_t* out) {
    return absl::SimpleAtoi(absl::StripAsciiWhitespace(s), out);
  };
  const auto number = [](const std::string& s, double* out) {
    return absl::SimpleAtod(absl::StripAsciiWhitespace(s), out) && std::isfinite(*out);
  };
  int32_t a = 0;
  int32_t b = 0;
  double mean = 0;
  double stddev = 0;
  if (kind == "fixed" && parts.size() == 2 && integer(parts[1], &a)) {
    d.set_kind(v1::LENGTH_FIXED);
    d.set_value(a);
  } else if (kind == "uniform" && parts.size() == 3 && integer(parts[1], &a) &&
             integer(parts[2], &b)) {
    d.set_kind(v1::LENGTH_UNIFORM);
    d.set_min(a);
    d.set_max(b);
  } else if ((kind == "normal" || kind == "lognormal") && (parts.size() == 3 || parts.size() == 5) &&
             number(parts[1], &mean) && number(parts[2], &stddev)) {
    d.set_kind(kind == "normal" ? v1::LENGTH_NORMAL : v1::LENGTH_LOGNORMAL);
    d.set_mean(mean);
    d.set_stddev(stddev);
    if (parts.size() == 5) {
      if (!integer(parts[3], &a) || !integer(parts[4], &b)) {
        return bad();
      }
      d.set_min(a);
      d.set_max(b);
    }
  } else {
    return bad();
  }
  return d;
}

std::string EmulatorTargetUrl(v1::Protocol protocol, const std::string& host_port) {
  switch (protocol) {
    case v1::WS_CHAT:
      return absl::StrCat("ws://", host_port, "/api/ws");
    case v1::REALM:
      return absl::StrCat("ws://", host_port, "/");
    case v1::HTTP_JSON:
      return absl::StrCat("http://", host_port, "/v1/generate");
    case v1::OPENAI_RESPONSES:
      // The driver adds /v1/responses, as the other SSE providers' paths.
      return absl::StrCat("http://", host_port);
    default:
      // CENTRIFUGO_EMULATOR (REST API and /connection/websocket below it) and
      // the SSE providers, whose drivers add their own paths.
      return absl::StrCat("http://", host_port);
  }
}

namespace {

// --tools (with -f: when given).
void SetProtocolSurface(const Options& o, v1::Target* t, bool only_given) {
  if (!only_given || o.given.count("tools") > 0) {
    t->clear_tools();
    for (const std::string& name : o.tools) {
      t->add_tools(name);
    }
  }
}

// --prompt-order, --prompt-seed, --input-length, --output-length (with -f:
// those given on the command line).
void SetPromptChoice(const Options& o, v1::Target* t, bool only_given) {
  const auto use = [&](const char* flag) { return !only_given || o.given.count(flag) > 0; };
  if (use("prompt-order")) {
    t->set_prompt_order(o.prompt_order);
  }
  if (use("prompt-seed")) {
    t->set_prompt_seed(o.prompt_seed);
  }
  if (use("input-length")) {
    if (o.input_length.has_value()) {
      *t->mutable_input_length() = *o.input_length;
    } else {
      t->clear_input_length();
    }
  }
  if (use("output-length")) {
    if (o.output_length.has_value()) {
      *t->mutable_output_length() = *o.output_length;
    } else {
      t->clear_output_length();
    }
  }
}

void SetTarget(const Options& o, v1::Target* t) {
  t->set_protocol(o.protocol);
  t->set_model(o.model);
  t->set_prompt(o.prompt);
  for (const std::string& p : o.prompts) {
    t->add_prompts(p);
  }
  for (const v1::PromptConversation& c : o.prompt_messages) {
    *t->add_prompt_messages() = c;
  }
  t->set_max_tokens(o.max_tokens);
  t->set_turns(o.turns);
  SetPromptChoice(o, t, /*only_given=*/false);
  SetProtocolSurface(o, t, /*only_given=*/false);
  t->set_api_key_env(o.api_key_env);
  for (const auto& [name, value] : o.headers) {
    (*t->mutable_headers())[name] = value;
  }
  for (const auto& [name, env] : o.headers_from_env) {
    (*t->mutable_headers_from_env())[name] = env;
  }
}

// One URL is spec.target.url; several are spec.target.urls, over which the
// workers spread the sessions. Either way the other field is cleared, so
// that a spec file's target is replaced, not mixed with the flags'.
void SetTargetUrls(const std::vector<std::string>& urls, v1::Target* t) {
  t->clear_url();
  t->clear_urls();
  if (urls.size() == 1) {
    t->set_url(urls.front());
    return;
  }
  for (const std::string& u : urls) {
    t->add_urls(u);
  }
}

// --threshold, --slo-* and the --records flags: the same with and without -f.
void AddVerdictAndRecords(const Options& o, v1::RunSpec* spec) {
  for (const std::string& text : o.thresholds) {
    if (absl::StatusOr<v1::Threshold> t = ParseThreshold(text); t.ok()) {
      t->set_abort_on_fail(o.abort_on_fail);
      *spec->add_thresholds() = *t;
    }
  }
  if (o.slo_ttft_seconds.has_value()) {
    SetDuration(*o.slo_ttft_seconds, spec->mutable_objectives()->mutable_ttft());
  }
  if (o.slo_itl_seconds.has_value()) {
    SetDuration(*o.slo_itl_seconds, spec->mutable_objectives()->mutable_mean_itl());
  }
  if (o.slo_e2e_seconds.has_value()) {
    SetDuration(*o.slo_e2e_seconds, spec->mutable_objectives()->mutable_e2e());
  }
  if (o.cancel_share.has_value() || o.cancel_after_tokens != 0 ||
      o.cancel_after_seconds.has_value()) {
    v1::Cancellation* c = spec->mutable_cancellation();
    c->set_share(o.cancel_share.value_or(0));
    c->set_after_tokens(o.cancel_after_tokens);
    if (o.cancel_after_seconds.has_value()) {
      SetDuration(*o.cancel_after_seconds, c->mutable_after());
    }
    c->set_seed(o.cancel_seed);
  }
  if (o.warmup_requests != 0) {
    spec->mutable_warmup()->set_requests(o.warmup_requests);
  }
  if (o.warmup_seconds.has_value()) {
    SetDuration(*o.warmup_seconds, spec->mutable_warmup()->mutable_duration());
  }
  if (o.cooldown_seconds.has_value()) {
    SetDuration(*o.cooldown_seconds, spec->mutable_cooldown()->mutable_duration());
  }
  if (o.records_sample.has_value() || !o.records_file.empty() || o.records_max.has_value()) {
    v1::RecordsSpec* r = spec->mutable_records();
    r->set_sample_rate(o.records_sample.value_or(1.0));
    r->set_seed(o.records_seed);
    r->set_max_records(o.records_max.value_or(0));
  }
}

}  // namespace

v1::RunSpec SpecFromOptions(const Options& o, const std::string& url) {
  return SpecFromOptions(o, std::vector<std::string>{url});
}

v1::RunSpec SpecFromOptions(const Options& o, const std::vector<std::string>& urls) {
  v1::RunSpec spec;
  spec.set_name(o.name.empty() ? "llmload-cli" : o.name);
  SetTarget(o, spec.mutable_target());
  SetTargetUrls(urls, spec.mutable_target());
  v1::ThinkTime think;
  if (o.think) {
    SetDuration(o.think_min_seconds, think.mutable_min());
    SetDuration(o.think_max_seconds, think.mutable_max());
  }
  if (o.rate.has_value() || !o.ramp.empty()) {
    auto* open = spec.mutable_load()->mutable_open();
    open->set_rate_per_second(o.rate.value_or(0));  // a ramp alone starts from 0 req/s
    if (o.duration_seconds.has_value()) {
      SetDuration(*o.duration_seconds, open->mutable_duration());
    }
    open->set_distribution(o.arrivals == "uniform" ? v1::UNIFORM : v1::POISSON);
    for (const auto& [rate, seconds] : o.ramp) {
      v1::RateStage* st = open->add_stages();
      st->set_target_rate(rate);
      SetDuration(seconds, st->mutable_duration());
    }
    open->set_max_in_flight(o.max_in_flight);
    open->set_seed(o.seed);
  } else if (o.duration_seconds.has_value()) {
    auto* d = spec.mutable_load()->mutable_duration();
    d->set_connections(o.clients);
    SetDuration(*o.duration_seconds, d->mutable_duration());
    if (o.think) {
      *d->mutable_think_time() = think;
    }
  } else {
    auto* closed = spec.mutable_load()->mutable_closed();
    closed->set_clients(o.clients);
    closed->set_cycles_per_client(o.cycles);
    closed->set_max_concurrent(std::min(o.max_concurrent, o.clients));
    if (o.think) {
      *closed->mutable_think_time() = think;
    }
  }
  spec.mutable_emulation()->set_length_words(o.length_words);
  SetDuration(o.delay_seconds, spec.mutable_emulation()->mutable_token_delay());
  AddVerdictAndRecords(o, &spec);
  return spec;
}

void ApplyFlagsToFileSpec(const Options& o, v1::RunSpec* spec) {
  const auto given = [&o](const char* flag) { return o.given.count(flag) > 0; };
  v1::Target* t = spec->mutable_target();
  if (given("url")) {
    SetTargetUrls(o.urls, t);
  }
  if (given("protocol")) {
    t->set_protocol(o.protocol);
  }
  if (given("model")) {
    t->set_model(o.model);
  }
  if (given("prompt")) {
    t->set_prompt(o.prompt);
    t->clear_prompts();
    t->clear_prompt_messages();
  }
  if (given("prompts-file")) {
    t->clear_prompts();
    t->clear_prompt_messages();
    for (const std::string& p : o.prompts) {
      t->add_prompts(p);
    }
    for (const v1::PromptConversation& c : o.prompt_messages) {
      *t->add_prompt_messages() = c;
    }
  }
  if (given("max-tokens")) {
    t->set_max_tokens(o.max_tokens);
  }
  if (given("turns")) {
    t->set_turns(o.turns);
  }
  SetPromptChoice(o, t, /*only_given=*/true);
  SetProtocolSurface(o, t, /*only_given=*/true);
  if (given("api-key-env")) {
    t->set_api_key_env(o.api_key_env);
  }
  for (const auto& [name, value] : o.headers) {
    (*t->mutable_headers())[name] = value;
  }
  for (const auto& [name, env] : o.headers_from_env) {
    (*t->mutable_headers_from_env())[name] = env;
  }
  if (!o.name.empty()) {
    spec->set_name(o.name);
  }
  AddVerdictAndRecords(o, spec);
}

namespace {

// Validation's field paths (proto3 JSON names) and the flags that set them,
// longest match first. Map fields keep their key: spec.target.headers["X"].
struct FlagPath {
  const char* path;
  const char* flag;  // canonical name, without dashes
};
constexpr FlagPath kFlagPaths[] = {
    {"spec.name", "name"},
    {"spec.target.protocol", "protocol"},
    {"spec.target.urls", "url"},
    {"spec.target.url", "url"},
    {"spec.target.model", "model"},
    {"spec.target.prompts", "prompts-file"},
    {"spec.target.promptMessages", "prompts-file"},
    {"spec.target.promptOrder", "prompt-order"},
    {"spec.target.promptSeed", "prompt-seed"},
    {"spec.target.tools", "tools"},
    {"spec.target.inputLength", "input-length"},
    {"spec.target.outputLength", "output-length"},
    {"spec.target.prompt", "prompt"},
    {"spec.target.maxTokens", "max-tokens"},
    {"spec.target.apiKeyEnv", "api-key-env"},
    {"spec.target.headersFromEnv", "header-from-env"},
    {"spec.target.headers", "header"},
    {"spec.load.closed.clients", "clients"},
    {"spec.load.closed.cyclesPerClient", "cycles"},
    {"spec.load.closed.maxConcurrent", "max-concurrent"},
    {"spec.load.closed.thinkTime", "think"},
    {"spec.load.duration.connections", "clients"},
    {"spec.load.duration.duration", "duration"},
    {"spec.load.duration.thinkTime", "think"},
    {"spec.load.open.ratePerSecond", "rate"},
    {"spec.load.open.duration", "duration"},
    {"spec.load.open.distribution", "arrivals"},
    {"spec.load.open.stages", "ramp"},
    {"spec.load.open.maxInFlight", "max-in-flight"},
    {"spec.emulation.lengthWords", "length"},
    {"spec.emulation.tokenDelay", "delay"},
    {"spec.thresholds", "threshold"},
    {"spec.objectives.ttft", "slo-ttft"},
    {"spec.objectives.meanItl", "slo-itl"},
    {"spec.objectives.e2e", "slo-e2e"},
    {"spec.records.sampleRate", "records-sample"},
    {"spec.records.maxRecords", "records-max"},
    {"spec.target.turns", "turns"},
    {"spec.warmup.requests", "warmup-requests"},
    {"spec.warmup.duration", "warmup"},
    {"spec.warmup", "warmup"},
    {"spec.cooldown.duration", "cooldown"},
    {"spec.cooldown", "cooldown"},
    {"spec.cancellation.share", "cancel"},
    {"spec.cancellation.afterTokens", "cancel-after-tokens"},
    {"spec.cancellation.after", "cancel-after"},
    {"spec.cancellation", "cancel"},
};

// The flag for `path` and the map key or index that follows its field
// (`["X"]`, `[2].below`), or nullptr.
const FlagPath* MatchFlagPath(const std::string& path, std::string* rest) {
  for (const FlagPath& fp : kFlagPaths) {
    const absl::string_view prefix(fp.path);
    if (absl::StartsWith(path, prefix) &&
        (path.size() == prefix.size() || path[prefix.size()] == '.' ||
         path[prefix.size()] == '[')) {
      *rest = path.substr(prefix.size());
      return &fp;
    }
  }
  return nullptr;
}

// Where the field path at the start of a validation message ends: at the
// first ": " outside a quoted map key (keys are C-escaped, so a quote
// inside one is \").
size_t PathEnd(const std::string& message) {
  bool quoted = false;
  for (size_t i = 0; i + 1 < message.size(); ++i) {
    if (quoted && message[i] == '\\') {
      ++i;
    } else if (message[i] == '"') {
      quoted = !quoted;
    } else if (!quoted && message[i] == ':' && message[i + 1] == ' ') {
      return i;
    }
  }
  return std::string::npos;
}

}  // namespace

std::string FlagForSpecPath(const std::string& path) {
  std::string rest;
  const FlagPath* fp = MatchFlagPath(path, &rest);
  if (fp == nullptr) {
    return "";
  }
  std::string flag = absl::StrCat("--", fp->flag);
  // A header's name is what the user typed: say which one.
  if ((absl::string_view(fp->flag) == "header" || absl::string_view(fp->flag) == "header-from-env") &&
      absl::StartsWith(rest, "[") && absl::EndsWith(rest, "]")) {
    absl::StrAppend(&flag, " ", rest.substr(1, rest.size() - 2));
  }
  return flag;
}

absl::Status ValidateSpecForCli(const v1::RunSpec& spec,
                                const std::function<bool(const std::string&)>& flag_allowed) {
  const absl::Status s = validation::ValidateRunSpec(spec);
  if (s.ok()) {
    return s;
  }
  // "spec.load.closed.clients: must be ..." -> "--clients: must be ... [spec.load.closed.clients]"
  const std::string message(s.message());
  const size_t sep = PathEnd(message);
  if (sep == std::string::npos) {
    return s;
  }
  const std::string path = message.substr(0, sep);
  std::string rest;
  const FlagPath* fp = MatchFlagPath(path, &rest);
  if (fp == nullptr || (flag_allowed && !flag_allowed(fp->flag))) {
    return s;
  }
  std::string reason = message.substr(sep + 2);
  if (absl::string_view(fp->flag) == "header" && absl::StrContains(reason, "credential")) {
    // Validation names the spec fields; the CLI's are flags.
    absl::StrAppend(&reason, "; on the command line: --api-key-env ENVVAR or "
                             "--header-from-env NAME=ENVVAR");
  }
  return absl::Status(s.code(),
                      absl::StrCat(FlagForSpecPath(path), ": ", reason, " [", path, "]"));
}

absl::StatusOr<v1::RunSpec> BuildRunSpec(const Options& o, const std::string& url) {
  return BuildRunSpec(o, std::vector<std::string>{url});
}

absl::StatusOr<v1::RunSpec> BuildRunSpec(const Options& o, const std::vector<std::string>& urls) {
  v1::RunSpec spec = SpecFromOptions(o, urls);
  if (absl::Status s = ValidateSpecForCli(spec); !s.ok()) {
    return s;
  }
  return spec;
}

std::string UsageText() {
  return R"(llmload: distributed load generator for LLM streaming endpoints.

Usage:
  llmload local [flags]                  start emulator, collector, orchestrator and
                                         workers on loopback, run a test against the
                                         emulator's endpoint for --protocol, print the
                                         report
  llmload run (-f spec.json | --url URL) [flags]
                                         start a run on a running orchestrator and
                                         follow it to the end (--detach: print the id)
  llmload get RUN_ID                     show a run with its statistics
  llmload list [--limit N]               list runs, newest first
  llmload stop RUN_ID                    stop a run, keeping its partial results
  llmload watch RUN_ID                   follow a run's progress to the end
  llmload workers                        list attached workers
  llmload report RUN_ID [--format text|json|csv|html] [-o FILE] [--records FILE]
                                         a finished run's report from the collector's
                                         stored results (and the orchestrator's spec,
                                         verdict and events)
  llmload compare RUN_A RUN_B [--max-regression PCT] [--only METRIC[:pNN]]
                                         percentiles, throughput and errors side by
                                         side; marks changes beyond the histograms'
                                         resolution and the runs' own noise
  llmload health [--address HOST:PORT] [--service NAME] [--http PATH]
                                         probe a service's health (exit 0 SERVING,
                                         1 not serving, 2 unreachable; health --help)

Target (run and local; with -f, those given on the command line replace the file's,
headers add to its):
  --protocol NAME      CENTRIFUGO_EMULATOR, REALM, WS_CHAT, OPENAI_CHAT,
                       ANTHROPIC_MESSAGES, GEMINI, HTTP_JSON or OPENAI_RESPONSES
                       (any case)
                                                  [LLMLOAD_PROTOCOL] CENTRIFUGO_EMULATOR
  --model NAME         model name sent to the target       [LLMLOAD_MODEL]
  --prompt TEXT        the prompt of every request          [LLMLOAD_PROMPT]
  --prompts-file FILE  a dataset, JSON lines: each a JSON string, {"prompt": "..."},
                       {"messages": [{"role": ..., "content": ...}, ...]} or such a
                       list; read here and sent inside the spec (at most 16 MiB of
                       text, 100000 lines)                  [LLMLOAD_PROMPTS_FILE]
  --prompt-order ORDER cycle (request r of client c takes line c+r-1) or random
                       (seeded by --prompt-seed)    [LLMLOAD_PROMPT_ORDER]   cycle
  --prompt-seed N      seed of random order and of the length draws
                                                   [LLMLOAD_PROMPT_SEED]    0
  --tools A,B          WS_CHAT: tool names sent in options.tools; the answers'
                       tool_call / tool_result frames are counted and timed
                                                   [LLMLOAD_TOOLS]
  --input-length DIST  synthetic prompts of DIST words: N, uniform:MIN:MAX,
                       normal:MEAN:STDDEV[:MIN:MAX], lognormal:MEAN:STDDEV[:MIN:MAX]
                                                   [LLMLOAD_INPUT_LENGTH]
  --output-length DIST max_tokens per request drawn from DIST (as above)
                                                   [LLMLOAD_OUTPUT_LENGTH]
  --max-tokens N       output token limit (0: --length)    [LLMLOAD_MAX_TOKENS]     0
  --api-key-env NAME   the workers' environment variable holding the API key
                                                           [LLMLOAD_API_KEY_ENV]
  --header NAME=VALUE  a request header; repeatable. A credential header
                       (Authorization, x-api-key, *token*, ...) is refused, since a
                       spec is stored and shown: name the variable that holds it
                       with --api-key-env or --header-from-env instead
  --header-from-env NAME=ENVVAR
                       a header the workers fill from their environment variable
                       ENVVAR; repeatable
  local targets the emulator it starts (--url is for run): ws://HOST:PORT/api/ws for
  WS_CHAT, ws://HOST:PORT/ for REALM, http://HOST:PORT/v1/generate for HTTP_JSON,
  http://HOST:PORT for the others.

Run shape (flags of the original emulator client; environment variable in brackets):
  --clients N          concurrent clients (sessions)            [NUM_CLIENTS]            10
  --cycles N           request cycles per client                [CYCLES_PER_CLIENT]      5
  --length N           response length in words (emulator)     [RESPONSE_LENGTH_WORDS]  100
  --delay SECONDS      delay between tokens                     [TOKEN_DELAY_SECONDS]    0.01
  --max-concurrent N   sessions open at once                    [MAX_CONCURRENT_CLIENTS] 50

Load model (closed by default: --clients x --cycles):
  --duration SECONDS   duration model: --clients connections cycling this long;
                       with --rate: how long the open model runs  [LLMLOAD_DURATION_SECONDS]
  --rate R             open model: R requests/s arriving whatever the responses do
                                                                [LLMLOAD_RATE]
  --arrivals KIND      poisson or uniform inter-arrival times                     poisson
  --ramp R:S,...       open model ramp stages: to R req/s over S seconds, in turn
  --max-in-flight N    open model: requests in flight at once; arrivals over it
                       are counted as dropped              (default: worker capacity)
  --seed N             seed of the arrival process (0: random)                    0
  --think S|MIN:MAX    think time between a client's requests (closed, duration)

Verdict (exit status 1 when a threshold fails):
  --threshold SPEC     ttft:p95<0.5s, e2e:p99<800ms, error_rate<0.01,
                       requests_per_sec>50 (tokens_per_sec, goodput_per_sec,
                       goodput_ratio); repeatable
  --abort-on-fail      stop the run as soon as a threshold fails
  --slo-ttft S         goodput objective: time to first token at most S
  --slo-itl S          goodput objective: mean inter-token latency at most S
  --slo-e2e S          goodput objective: request latency at most S

Cancellation (users who close the tab; see README, Cancellation):
  --cancel SHARE       abandon this fraction of the requests mid-response (0 to 1)
  --cancel-after-tokens N   ... once their Nth token arrived
  --cancel-after S     ... S seconds after the send (with both, the first reached)
  --cancel-seed N      which requests: a seeded choice                                 0

Multi-turn conversations (see README, Multi-turn conversations):
  --turns N            each session holds conversations of N requests (OpenAI,
                       Anthropic, Gemini resend the history)                           0

Warm-up and cool-down (run, but counted apart; see README):
  --warmup-requests N  N requests first, split over the clients, on top of the load
  --warmup S           the requests of the first S seconds
  --cooldown S         the requests of the last S seconds (--duration loads)

local:
  --workers N          worker processes                         [LLMLOAD_WORKERS]        2
  --worker-threads N   event-loop threads per worker            [LLMLOAD_WORKER_THREADS] 1
  --bin-dir DIR        where the llmload-* binaries are         [LLMLOAD_BIN_DIR]  beside llmload
  --state-dir DIR      databases and logs (default: a new temp dir)
  --keep-state         keep the state dir after a successful run
  --allow-targets LIST hosts, *.domains and CIDRs the run may load [LLMLOAD_ALLOW_TARGETS]
                       (default: loopback, private networks, cluster-local names)

Security (every command that talks to the services):
  --token-file FILE    bearer token file (or the token itself in LLMLOAD_TOKEN)
                                                                [LLMLOAD_TOKEN_FILE]
  --tls-ca-file FILE   verify the servers with this CA; turns TLS on [LLMLOAD_TLS_CA_FILE]
  --tls-cert-file FILE, --tls-key-file FILE   client certificate for mutual TLS
                                        [LLMLOAD_TLS_CERT_FILE, LLMLOAD_TLS_KEY_FILE]
  --tls-server-name NAME   name expected in the servers' certificates
                                                                [LLMLOAD_TLS_SERVER_NAME]

run, get, list, stop, watch, workers:
  --orchestrator HOST:PORT                                      [LLMLOAD_ORCHESTRATOR] 127.0.0.1:50051
  -f, --file FILE      run spec in proto JSON: a RunSpec or {"spec": {...}}
  --url URL            run: target URL for --protocol (see README, Targets and
                       protocols); with -f it replaces the file's  [LLMLOAD_TARGET_URL]
                       Repeatable: several fill spec.target.urls, client i on the
                       (i mod n)-th
  --name NAME          run name
  --limit N            list: at most N runs (0: all)                                   20
  --detach             run: print the run id and return at once
  --json               print runs as proto JSON
  --progress-interval SECONDS   progress line period                                   5
  --timeout SECONDS    give up waiting after this long (0: never)                      0

Reports (report, compare; --report and --records also on local and run):
  --collector HOST:PORT   where the stored results are read  [LLMLOAD_COLLECTOR] 127.0.0.1:50052
  --format FMT         report: text, json, csv or html (default: from -o's extension, else text);
                       compare: text or json
  -o, --output FILE    report: write to FILE instead of standard output
  --report FILE        local, run: write the report when the run ends; the format comes
                       from the extension (.html, .json, .csv, .txt)
  --records FILE       per-request records as JSON lines (.jsonl) or CSV (.csv); on local
                       and run this also turns recording on (every request unless
                       --records-sample says otherwise)
  --records-sample R   record a seeded sample: a fraction R in (0, 1] of the requests
  --records-seed N     the sample's seed                                               0
  --records-max N      most records kept for the run (1 to 1000000)                10000
  --max-regression PCT compare: exit 1 when a marked regression is worse than PCT %
  --only M[:pNN]       compare: only these rows (ttft, ttft:p99, requests_per_sec, error_rate);
                       repeatable

Limits (e.g. --clients 1 to 1000000) are those of the orchestrator's run-spec
validation; a value outside them is refused before anything starts.

Exit status: 0 when the run COMPLETED and every threshold passed, 1 when it FAILED,
was CANCELLED or a threshold failed (compare: a regression exceeded --max-regression),
2 on usage errors (nothing started) or connection errors.
)";
}

}  // namespace llmload::cli
