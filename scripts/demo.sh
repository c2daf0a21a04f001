#!/usr/bin/env bash
# Installs what is missing, builds, and runs the default local load test:
# emulator, collector, orchestrator and two workers on loopback, 10 clients x
# 5 cycles x 100 words at 10 ms per token. Extra arguments go to
# `llmload local` (see `build/bin/llmload help`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ensure_packages "${LLMLOAD_BUILD_PACKAGES[@]}"
BUILD_DIR="${LLMLOAD_BUILD_DIR:-$LLMLOAD_ROOT/build}"
# The tests' packages may be missing here, so the tree is configured without
# them; scripts/test.sh turns them back on.
LLMLOAD_CMAKE_ARGS="${LLMLOAD_CMAKE_ARGS:-} -DBUILD_TESTING=OFF" \
  configure_and_build "$BUILD_DIR" llmload llmload-emulator llmload-collector \
  llmload-orchestrator llmload-worker
exec "$BUILD_DIR/bin/llmload" local "$@"
