#!/usr/bin/env bash
# The README's two commands in their order: scripts/demo.sh configures the
# build tree without the tests, then scripts/test.sh must still configure,
# find and run every test. This checks the configure step on a scratch tree
# the way demo.sh leaves it, and that ctest refuses a tree with no tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# What scripts/demo.sh leaves behind.
cmake -S "$root" -B "$scratch/build" -G Ninja -DBUILD_TESTING=OFF >/dev/null
if ctest --test-dir "$scratch/build" --no-tests=error >/dev/null 2>&1; then
  echo "FAIL: ctest --no-tests=error passed on a tree without tests" >&2
  exit 1
fi

# scripts/test.sh's configure step on the same tree.
LLMLOAD_BUILD_DIR="$scratch/build" LLMLOAD_TEST_CONFIGURE_ONLY=1 bash "$root/scripts/test.sh" \
  >/dev/null
testing="$(sed -n 's/^BUILD_TESTING:BOOL=//p' "$scratch/build/CMakeCache.txt")"
if [ "$testing" != "ON" ]; then
  echo "FAIL: scripts/test.sh left BUILD_TESTING=$testing after scripts/demo.sh" >&2
  exit 1
fi
# Before any test binary is built ctest lists each as a placeholder; none
# means the tests were not configured at all.
listed="$(ctest --test-dir "$scratch/build" -N | sed -n 's/^Total Tests: //p')"
if [ "${listed:-0}" -eq 0 ]; then
  echo "FAIL: no tests configured after scripts/test.sh" >&2
  exit 1
fi
echo "ok: BUILD_TESTING=ON and $listed tests configured after scripts/demo.sh"
