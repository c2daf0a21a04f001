#!/usr/bin/env bash
# ctest entry point of the HTML report test: makes sure Debian's chromium,
# Node.js and the pinned playwright-core (npm, installed into a cache
# outside the repository keyed by package-lock.json) are there, then runs
# html_report.test.mjs, which makes a report with `llmload local --report`
# and opens it in headless Chromium.
#
#   tests/report_html/run.sh BIN_DIR WORK_DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin_dir="$(cd "${1:?usage: run.sh BIN_DIR WORK_DIR}" && pwd)"
work="${2:?usage: run.sh BIN_DIR WORK_DIR}"
# shellcheck source=../../scripts/lib/common.sh
source "$here/../../scripts/lib/common.sh"
ensure_packages chromium
ensure_node
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "report_html: FAILED: Node.js >= 20 required, found $(node --version)" >&2
  exit 1
fi
lock_hash="$(sha256sum "$here/package-lock.json" | cut -c1-16)"
cache="${LLMLOAD_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmload}/report-html-$lock_hash"
if [ ! -f "$cache/node_modules/playwright-core/package.json" ]; then
  echo "report_html: npm ci into $cache (pinned versions from package-lock.json)" >&2
  rm -rf "$cache"
  mkdir -p "$cache"
  cp "$here/package.json" "$here/package-lock.json" "$cache/"
  (cd "$cache" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
fi
rm -rf "$work"
mkdir -p "$work"
export LLMLOAD_BIN_DIR="$bin_dir"
export LLMLOAD_REPORT_WORK="$(cd "$work" && pwd)"
export LLMLOAD_NODE_MODULES="$cache/node_modules"
export LLMLOAD_CHROMIUM="${LLMLOAD_CHROMIUM:-/usr/bin/chromium}"
cd "$here"
exec node --test --test-reporter=spec html_report.test.mjs
