#!/usr/bin/env bash
# Builds every libFuzzer target of tests/fuzz with clang, ASan and UBSan in
# build-fuzz/ and runs each for a bounded time over its corpus. Exits non-zero
# if any target crashes, leaks, hangs or breaks one of its properties.
#
#   scripts/fuzz.sh                                     # every target, 30 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh histogram_decode_fuzz
#
# Environment:
#   FUZZ_SECONDS    run time per target (default 30)
#   FUZZ_BUILD_DIR  build tree (default <repo>/build-fuzz)
#   FUZZ_JOBS       ninja -j (default 2)
#   FUZZ_PARALLEL   targets fuzzed at once (default: the number of cores)
#
# The checked-in seed corpus (tests/fuzz/corpus/<name>/) is only read; inputs
# that reach new code go to $FUZZ_BUILD_DIR/corpus/<name>/ and carry over to
# the next run, crashes go to $FUZZ_BUILD_DIR/artifacts/<name>/ and the full
# output to $FUZZ_BUILD_DIR/logs/<name>.log. To keep a crash as a regression
# test, fix it, minimize the input (<binary> -minimize_crash=1 -runs=10000
# <crash file>) and copy it into the seed corpus; <name>_replay then runs it in
# every build.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${FUZZ_SECONDS:-30}"
jobs="${FUZZ_JOBS:-2}"
parallel="${FUZZ_PARALLEL:-$(nproc 2>/dev/null || echo 2)}"

echo "== configuring $build (clang, LLMLOAD_FUZZ=ON)"
CC=clang CXX=clang++ cmake -G Ninja -S "$root" -B "$build" -DLLMLOAD_FUZZ=ON >/dev/null

# "<name> <seed corpus>" per target, written by tests/fuzz/CMakeLists.txt.
list="$build/tests/fuzz/fuzz_targets.txt"
declare -A seeds=()
all=()
while read -r name seed; do
  [[ -n "$name" ]] || continue
  seeds[$name]="$seed"
  all+=("$name")
done <"$list"

targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=("${all[@]}")
fi
if ((${#targets[@]} == 0)); then
  echo "no fuzz targets in $list" >&2
  exit 1
fi
for t in "${targets[@]}"; do
  if [[ -z "${seeds[$t]:-}" ]]; then
    echo "unknown fuzz target '$t' (known: ${all[*]})" >&2
    exit 1
  fi
done

echo "== building ${targets[*]}"
ninja -C "$build" -j "$jobs" "${targets[@]}"

failed=()
# Fuzzes one target; leaves $build/logs/<target>.failed behind on failure.
fuzz_one() {
  local t="$1"
  local corpus="$build/corpus/$t"
  local artifacts="$build/artifacts/$t"
  local log="$build/logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  rm -f "$build/logs/$t.failed"
  echo "== fuzzing $t for ${seconds}s (log: $log)"
  local status=0
  # Memory bounds: no single input may make a target allocate more than
  # 256 MB at once or hold more than 1 GB (a spec asking for a million
  # clients must be planned in bounded memory).
  "$build/bin/$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -rss_limit_mb=1024 -malloc_limit_mb=256 \
    -artifact_prefix="$artifacts/" "$corpus" "${seeds[$t]}" >"$log" 2>&1 || status=$?
  local execs cov
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  cov="$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' "$log" | tail -n 1 || true)"
  if ((status != 0)); then
    {
      echo "!! $t FAILED (exit $status) after ${execs:-?} executions; last lines of $log:"
      tail -n 40 "$log"
      ls -1 "$artifacts" || true
    } >&2
    touch "$build/logs/$t.failed"
  else
    echo "   $t: ${execs:-?} executions, no failure; ${cov}"
  fi
}

# One target per core at a time (each libFuzzer run is single-threaded).
pids=()
for t in "${targets[@]}"; do
  fuzz_one "$t" &
  pids+=("$!")
  if ((${#pids[@]} >= parallel)); then
    wait "${pids[0]}" || true
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do
  wait "$pid" || true
done
for t in "${targets[@]}"; do
  if [[ -e "$build/logs/$t.failed" ]]; then
    failed+=("$t")
  fi
done

if ((${#failed[@]} > 0)); then
  echo "== FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "== all fuzz targets passed"
