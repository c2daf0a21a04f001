#!/usr/bin/env bash
# Installs what is missing, builds everything with warnings as errors under
# CI, and runs every test through ctest (unit, integration, fuzz-corpus
# replay), then the fuzzers for a bounded time.
#
#   SKIP_FUZZ=1       skip the timed libFuzzer runs (never in CI)
#   SKIP_ASAN=1       skip the AddressSanitizer + UBSan unit-test build (never in CI)
#   FUZZ_SECONDS=N    time per fuzz target (default 20)
#   CTEST_ARGS="-R x" extra ctest arguments
#   LLMLOAD_CONTAINER_TEST=1  also run scripts/container_test.sh (the image and
#                     docker-compose with podman; not yet part of CI, see README)
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

# The unit tests of everything that parses input from the network, and of
# the worker's data path, again under AddressSanitizer and UBSan.
ASAN_TESTS=(histogram_test metrics_test protocol_test worker_test cli_test)
# The fuzz corpora (regression inputs included) replayed under the sanitizers.
ASAN_REPLAYS=(histogram_decode_fuzz sse_stream_fuzz centrifugo_client_fuzz ws_llm_client_fuzz
              ws_framing_fuzz)
if [ "${CI:-}" = "true" ] || [ -z "${SKIP_ASAN:-}" ]; then
  log "Building and running unit tests under ASan + UBSan."
  ASAN_DIR="${LLMLOAD_ASAN_BUILD_DIR:-$LLMLOAD_ROOT/build-asan}"
  LLMLOAD_BUILD_TYPE=Debug LLMLOAD_CMAKE_ARGS="${LLMLOAD_CMAKE_ARGS:-} -DLLMLOAD_SANITIZE=ON" \
    configure_and_build "$ASAN_DIR" "${ASAN_TESTS[@]}" "${ASAN_REPLAYS[@]/%/_replay}"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  for t in "${ASAN_TESTS[@]}"; do
    "$ASAN_DIR/bin/$t" --gtest_brief=1
  done
  for f in "${ASAN_REPLAYS[@]}"; do
    "$ASAN_DIR/bin/${f}_replay" "$LLMLOAD_ROOT/tests/fuzz/corpus/$f"
  done
  unset ASAN_OPTIONS UBSAN_OPTIONS
fi

if [ "${CI:-}" = "true" ] || [ -z "${SKIP_FUZZ:-}" ]; then
  if [ -x "$LLMLOAD_ROOT/scripts/fuzz.sh" ]; then
    log "Running the fuzzers for ${FUZZ_SECONDS:-20} s each."
    FUZZ_SECONDS="${FUZZ_SECONDS:-20}" "$LLMLOAD_ROOT/scripts/fuzz.sh"
  fi
fi
if [ "${LLMLOAD_CONTAINER_TEST:-0}" = "1" ]; then
  log "Running the container stage (image, docker-compose)."
  LLMLOAD_BUILD_DIR="$BUILD_DIR" "$LLMLOAD_ROOT/scripts/container_test.sh"
fi
log "All tests passed."
