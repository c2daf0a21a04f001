// File: env.h
//
// Environment-variable defaults for flags: precedence is command line, then
// environment, then the built-in default.
//
//   ABSL_FLAG(int32_t, clients, llmload::EnvOr("NUM_CLIENTS", 10), "...");

#pragma once

#include <cstdint>
#include <string>

namespace llmload {

std::string EnvOr(const char* name, const char* fallback);
std::string EnvOr(const char* name, const std::string& fallback);
// Unparseable values fall back to the default (the flag parser then reports
// nothing, so main() should validate ranges).
int32_t EnvOr(const char* name, int32_t fallback);
int64_t EnvOr(const char* name, int64_t fallback);
uint16_t EnvOr(const char* name, uint16_t fallback);
double EnvOr(const char* name, double fallback);
bool EnvOr(const char* name, bool fallback);

}  // namespace llmload
