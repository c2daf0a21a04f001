#!/usr/bin/env bash
# Installs what is missing, builds everything with warnings as errors under
# CI, and runs every test through ctest (unit, integration, fuzz-corpus
# replay); then the sanitizer stages and the fuzzers for a bounded time.
#
#   SKIP_FUZZ=1       skip the timed libFuzzer runs (never in CI)
#   SKIP_ASAN=1       skip the AddressSanitizer + UBSan stage (never in CI)
#   SKIP_TSAN=1       skip the ThreadSanitizer stage (never in CI)
#   FUZZ_SECONDS=N    time per fuzz target (default 20)
#   CTEST_ARGS="-R x" extra ctest arguments
#   LLMLOAD_TEST_CONFIGURE_ONLY=1  configure the build tree and stop (for the
#                     test of this script itself)
#   SKIP_CONTAINERS=1 skip the container stage, scripts/container_test.sh (the
#                     image, docker-compose and deploy/k8s under podman; never
#                     in CI)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# Tests take time from the monotonic clock (tests/testing/mono_clock.h): the
# wall clock can step while they run. A line that must read it (a Unix
# timestamp the code under test defines) says "wall clock" in a comment.
if grep -rnE --include='*.cc' --include='*.h' 'absl::Now\(\)|system_clock::now\(\)' \
    "$LLMLOAD_ROOT/tests" | grep -v 'wall clock'; then
  log "Tests above read the wall clock; use testing_util::MonoNow() or GrpcDeadline()."
  exit 1
fi

ensure_packages "${LLMLOAD_BUILD_PACKAGES[@]}" "${LLMLOAD_TEST_PACKAGES[@]}"
ensure_node
BUILD_DIR="${LLMLOAD_BUILD_DIR:-$LLMLOAD_ROOT/build}"
# The tests are configured in whatever the tree held before: scripts/demo.sh
# or a developer may have configured it without them, and CMake would keep
# that choice in its cache.
LLMLOAD_CMAKE_ARGS="${LLMLOAD_CMAKE_ARGS:-} -DBUILD_TESTING=ON -DLLMLOAD_SANITIZE=" \
  configure "$BUILD_DIR"
if [ -n "${LLMLOAD_TEST_CONFIGURE_ONLY:-}" ]; then
  exit 0
fi
cmake --build "$BUILD_DIR" -j "$(nproc 2>/dev/null || echo 2)"

log "Running the test suite."
# --no-tests=error: a tree with no tests is a failure, never "all passed".
# shellcheck disable=SC2086
ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error \
  -j "$(nproc 2>/dev/null || echo 2)" --timeout 600 ${CTEST_ARGS:-}

# Runs a gtest binary as N shards in parallel (each shard a process of its
# own, so a matrix of integration cells uses both cores); fails if any does.
run_sharded() {
  local shards="$1"
  shift
  local pids=() i rc=0
  for ((i = 0; i < shards; i++)); do
    GTEST_TOTAL_SHARDS="$shards" GTEST_SHARD_INDEX="$i" "$@" --gtest_brief=1 &
    pids+=("$!")
  done
  for i in "${pids[@]}"; do
    wait "$i" || rc=1
  done
  return "$rc"
}

# The unit tests of everything that parses input from the network, of the
# worker's data path and of the orchestrator's and collector's bookkeeping
# of runs, shards, epochs and seals (which erase and move records as workers
# come and go), and the protocol x load-model matrix against the real worker
# and emulator, under AddressSanitizer and UBSan.
ASAN_TESTS=(histogram_test metrics_test protocol_test worker_test cli_test orchestrator_test
            collector_test)
# The fuzz corpora (regression inputs included) replayed under the sanitizers.
ASAN_REPLAYS=(histogram_decode_fuzz sse_stream_fuzz centrifugo_client_fuzz ws_llm_client_fuzz
              ws_framing_fuzz run_spec_fuzz http1_response_fuzz prom_text_fuzz)
# Besides the matrix, the cancellation cells: abandoning a request mid-response
# and reconnecting is a lifetime path of its own in every driver. The cells
# drive the instrumented worker against the emulator of $BUILD_DIR (as the
# TSan stage does): the emulator is the test's target, and instrumenting it
# too would double the stage's compile time (its Beast WebSocket and TLS
# sessions are the slowest files of the tree) for the target, not the tool.
MATRIX_TARGETS=(integration_load_matrix_test integration_cancellation_test llmload-worker)
if [ "${CI:-}" = "true" ] || [ -z "${SKIP_ASAN:-}" ]; then
  log "Building and running the ASan + UBSan stage."
  ASAN_DIR="${LLMLOAD_ASAN_BUILD_DIR:-$LLMLOAD_ROOT/build-asan}"
  LLMLOAD_BUILD_TYPE=Debug \
    LLMLOAD_CMAKE_ARGS="${LLMLOAD_CMAKE_ARGS:-} -DBUILD_TESTING=ON -DLLMLOAD_SANITIZE=address" \
    configure_and_build "$ASAN_DIR" "${ASAN_TESTS[@]}" "${ASAN_REPLAYS[@]/%/_replay}" \
    "${MATRIX_TARGETS[@]}"
  ASAN_BIN="$ASAN_DIR/matrix-bin"
  mkdir -p "$ASAN_BIN"
  ln -sf "$ASAN_DIR/bin/llmload-worker" "$ASAN_BIN/llmload-worker"
  ln -sf "$BUILD_DIR/bin/llmload-emulator" "$ASAN_BIN/llmload-emulator"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  for t in "${ASAN_TESTS[@]}"; do
    "$ASAN_DIR/bin/$t" --gtest_brief=1
  done
  for f in "${ASAN_REPLAYS[@]}"; do
    "$ASAN_DIR/bin/${f}_replay" "$LLMLOAD_ROOT/tests/fuzz/corpus/$f"
  done
  LLMLOAD_BIN_DIR="$ASAN_BIN" run_sharded 2 "$ASAN_DIR/bin/integration_load_matrix_test"
  LLMLOAD_BIN_DIR="$ASAN_BIN" run_sharded 2 "$ASAN_DIR/bin/integration_cancellation_test"
  unset ASAN_OPTIONS UBSAN_OPTIONS
fi

# The worker's multi-threaded tests (event loops, the control thread, fake
# targets on threads of their own) and the two-loop cells of the matrix under
# ThreadSanitizer. Only what runs the data path is instrumented: the TSan
# worker runs against the emulator and the matrix driver of $BUILD_DIR. Left
# out: BatchShipperTest, whose threads are gRPC's and whose state is guarded
# by absl::Mutex, both in Debian's uninstrumented shared libraries, so TSan
# sees none of their synchronisation. tests/tsan.supp says what may be
# suppressed.
if [ "${CI:-}" = "true" ] || [ -z "${SKIP_TSAN:-}" ]; then
  log "Building and running the ThreadSanitizer stage."
  TSAN_DIR="${LLMLOAD_TSAN_BUILD_DIR:-$LLMLOAD_ROOT/build-tsan}"
  LLMLOAD_CMAKE_ARGS="${LLMLOAD_CMAKE_ARGS:-} -DBUILD_TESTING=ON -DLLMLOAD_SANITIZE=thread" \
    configure_and_build "$TSAN_DIR" worker_test llmload-worker
  TSAN_BIN="$TSAN_DIR/matrix-bin"
  mkdir -p "$TSAN_BIN"
  ln -sf "$TSAN_DIR/bin/llmload-worker" "$TSAN_BIN/llmload-worker"
  ln -sf "$BUILD_DIR/bin/llmload-emulator" "$TSAN_BIN/llmload-emulator"
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$LLMLOAD_ROOT/tests/tsan.supp"
  "$TSAN_DIR/bin/worker_test" --gtest_brief=1 --gtest_filter='-BatchShipperTest.*'
  LLMLOAD_BIN_DIR="$TSAN_BIN" run_sharded 2 "$BUILD_DIR/bin/integration_load_matrix_test" \
    --gtest_filter='*2Loops*'
  LLMLOAD_BIN_DIR="$TSAN_BIN" run_sharded 2 "$BUILD_DIR/bin/integration_cancellation_test"
  unset TSAN_OPTIONS
fi

if [ "${CI:-}" = "true" ] || [ -z "${SKIP_FUZZ:-}" ]; then
  if [ -x "$LLMLOAD_ROOT/scripts/fuzz.sh" ]; then
    log "Running the fuzzers for ${FUZZ_SECONDS:-20} s each."
    FUZZ_SECONDS="${FUZZ_SECONDS:-20}" "$LLMLOAD_ROOT/scripts/fuzz.sh"
  fi
fi
if [ "${CI:-}" = "true" ] || [ -z "${SKIP_CONTAINERS:-}" ]; then
  log "Running the container stage (image, docker-compose, kube play)."
  LLMLOAD_BUILD_DIR="$BUILD_DIR" "$LLMLOAD_ROOT/scripts/container_test.sh"
fi
log "All tests passed."
