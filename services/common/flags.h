// File: flags.h
//
// Command-line set-up shared by every binary: parses absl flags (whose
// defaults come from environment variables, see lib/common/env.h), makes
// --help list the binary's own flags, and initialises logging from
// --log_level / --log_format, which every binary defines through
// LLMLOAD_DEFINE_LOG_FLAGS in its main file.

#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"

ABSL_DECLARE_FLAG(std::string, log_level);
ABSL_DECLARE_FLAG(std::string, log_format);

namespace llmload {

// Installs the crash handler (crash_handler.h), then parses the flags.
// Returns the positional arguments (argv[0] first). Exits with a clear
// message on a bad flag or bad --log_level.
std::vector<char*> InitProgram(int argc, char** argv, std::string_view component,
                               std::string_view usage);

}  // namespace llmload
