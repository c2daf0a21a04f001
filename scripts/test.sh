#!/usr/bin/env bash
# Installs what is missing, builds everything with warnings as errors under
# CI, and runs every test through ctest (unit, integration, fuzz-corpus
# replay), then the fuzzers for a bounded time.
#
#   SKIP_FUZZ=1       skip the timed libFuzzer runs (never in CI)
#   FUZZ_SECONDS=N    time per fuzz target (default 20)
#   CTEST_ARGS="-R x" extra ctest arguments
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ensure_packages "${LLMLOAD_BUILD_PACKAGES[@]}" "${LLMLOAD_TEST_PACKAGES[@]}"
ensure_node
BUILD_DIR="${LLMLOAD_BUILD_DIR:-$LLMLOAD_ROOT/build}"
configure_and_build "$BUILD_DIR"

log "Running the test suite."
# shellcheck disable=SC2086
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" \
  --timeout 600 ${CTEST_ARGS:-}

if [ "${CI:-}" = "true" ] || [ -z "${SKIP_FUZZ:-}" ]; then
  if [ -x "$LLMLOAD_ROOT/scripts/fuzz.sh" ]; then
    log "Running the fuzzers for ${FUZZ_SECONDS:-20} s each."
    FUZZ_SECONDS="${FUZZ_SECONDS:-20}" "$LLMLOAD_ROOT/scripts/fuzz.sh"
  fi
fi
log "All tests passed."
