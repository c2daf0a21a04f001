#!/usr/bin/env bash
# ctest entry point of the SDK conformance suite: installs the pinned npm
# packages from package-lock.json when node_modules is missing, then runs
# every *.test.mjs with `node --test` against the given emulator binary
# (each test file starts its own emulator on a free loopback port).
#
#   tests/conformance/run.sh build/bin/llmload-emulator
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${1:?usage: run.sh path/to/llmload-emulator}"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "conformance: FAILED: node and npm are required (Node.js >= 20); scripts/test.sh installs them" >&2
  exit 1
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "conformance: FAILED: Node.js >= 20 required, found $(node --version)" >&2
  exit 1
fi
if [ ! -x "$bin" ]; then
  echo "conformance: FAILED: emulator binary '$bin' not found" >&2
  exit 1
fi
cd "$here"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "conformance: npm ci (pinned versions from package-lock.json)" >&2
  npm ci --no-audit --no-fund >&2
fi
export LLMLOAD_EMULATOR_BIN="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
exec node --test --test-reporter=spec openai.test.mjs anthropic.test.mjs genai.test.mjs \
  centrifuge.test.mjs
