#include "services/common/flags.h"

#include <cstdio>
#include <cstdlib>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "lib/common/env.h"
#include "lib/common/log.h"
#include "services/common/crash_handler.h"

ABSL_FLAG(std::string, log_level, llmload::EnvOr("LLMLOAD_LOG_LEVEL", "info"),
          "Log level: debug, info, warn, error (env LLMLOAD_LOG_LEVEL).");
ABSL_FLAG(std::string, log_format, llmload::EnvOr("LLMLOAD_LOG_FORMAT", "text"),
          "Log format: text or json (env LLMLOAD_LOG_FORMAT).");

namespace llmload {

std::vector<char*> InitProgram(int argc, char** argv, std::string_view component,
                               std::string_view usage) {
  InstallCrashHandler(argv[0]);
  absl::FlagsUsageConfig config;
  // --help lists llmload's own flags, not the libraries'.
  config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "services/") || absl::StrContains(file, "tools/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.version_string = [] { return std::string("llmload 0.1.0\n"); };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(absl::string_view(usage.data(), usage.size()));
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  LogLevel level = LogLevel::kInfo;
  if (!ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::fprintf(stderr, "--log_level: expected debug, info, warn or error, got '%s'\n",
                 absl::GetFlag(FLAGS_log_level).c_str());
    std::exit(2);
  }
  const std::string format = absl::GetFlag(FLAGS_log_format);
  if (format != "text" && format != "json") {
    std::fprintf(stderr, "--log_format: expected text or json, got '%s'\n", format.c_str());
    std::exit(2);
  }
  InitLogging(component, level, format == "json");
  return positional;
}

}  // namespace llmload
