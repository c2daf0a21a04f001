#!/usr/bin/env bash
# llmload's worker as a peerbench EXTRA_CLIENT: one process, one shard, no
# orchestrator or collector (llmload-worker --oneshot), so peerbench measures
# exactly the worker's CPU and memory on its W1/W2/W3 workloads.
#
#   cd ../shared/peerbench
#   PROTOCOL=ws_chat REPS=1 PHASES=base,W1,W2 EXTRA_CLIENT_NAME=llmload \
#     EXTRA_CLIENT="$PWD/../../main/bench/peerbench_client.sh {url} {sessions} {tokens} {delay_ms} {cycles}" \
#     ./run.sh
#
# Arguments: ws://HOST:PORT/PATH, sessions, tokens per response, delay between
# tokens in ms, cycles per session. Prints the worker's statistics as JSON and
# a last line {"tokens":…,"sessions_complete":…} for targets without counters.
set -euo pipefail
url="$1" sessions="$2" tokens="$3" delay_ms="$4" cycles="${5:-1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
worker="${LLMLOAD_WORKER:-$here/../build/bin/llmload-worker}"
spec="$(mktemp /tmp/llmload-peerbench-XXXXXX.json)"
trap 'rm -f "$spec"' EXIT
delay_s="$(awk -v d="$delay_ms" 'BEGIN { printf "%.6f", d / 1000 }')"
cat >"$spec" <<JSON
{"target": {"protocol": "WS_CHAT", "url": "$url", "requestTimeout": "60s"},
 "load": {"closed": {"clients": $sessions, "cyclesPerClient": $cycles, "maxConcurrent": $sessions}},
 "emulation": {"lengthWords": $tokens, "tokenDelay": "${delay_s}s"}}
JSON
rc=0
out="$("$worker" --oneshot="$spec" --oneshot_json --threads=1 --log_level=warn)" || rc=$?
echo "$out"
python3 - "$out" "$cycles" <<'PY'
import json, sys
stats = json.loads(sys.argv[1])
cycles = int(sys.argv[2])
c = stats.get("counters", {})
# A session is complete when all its cycles succeeded; without per-session
# data, count whole multiples of the cycles that succeeded.
print(json.dumps({"tokens": int(c.get("tokens", 0)),
                  "sessions_complete": int(c.get("requests_ok", 0)) // max(cycles, 1)}))
PY
exit $rc
