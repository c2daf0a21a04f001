#!/usr/bin/env bash
# The container stage: builds the image from the Dockerfile and runs the
# docker-compose deployment for real, through podman's Docker-compatible
# socket (../shared/containers.md is the recipe this follows).
#
#   1. installs podman & co and docker-compose (Debian packages);
#   2. makes the debian:bookworm base image from Debian's packages with
#      debootstrap, and debian:bookworm-slim from it (scripts/lib/slim_rootfs.py),
#      cached as tarballs in $LLMLOAD_CONTAINER_CACHE (default
#      /var/cache/llmload), since no image registry is reachable;
#   3. builds the llmload image (cold and warm build times are logged) and
#      checks it: every binary starts as uid 10001 on a read-only root
#      filesystem, `--help` works, `llmload health` answers;
#   4. `docker-compose up --scale worker=3` (with a test-only override that
#      builds Prometheus from Debian's package), waits for health, starts
#      examples/smoke.json with grpcurl-compatible JSON (buf curl, from npm)
#      and with `llmload run -f`, asserts COMPLETED with exact counts over
#      the 3 workers, asserts through Prometheus's HTTP API that it scrapes
#      the collector and all 3 workers, restarts the orchestrator and the
#      collector and asserts both runs are still there with their
#      statistics; then `down -v`;
#   5. renders deploy/k8s, adapts it for `podman kube play`
#      (scripts/lib/k8s_to_podman.py says how and what that cannot show),
#      starts it on a network of its own and runs examples/smoke.json
#      through its two worker pods to COMPLETED.
#
# Everything it starts is removed on exit, failed or not. All traffic stays
# on 127.0.0.1 and the compose project's own network.
#
#   LLMLOAD_BUILD_DIR   where build/bin/llmload is (default: build)
#   LLMLOAD_CONTAINER_CACHE   base image tarball, npm tools (default /var/cache/llmload)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

CACHE="${LLMLOAD_CONTAINER_CACHE:-/var/cache/llmload}"
BUILD_DIR="${LLMLOAD_BUILD_DIR:-$LLMLOAD_ROOT/build}"
LLMLOAD="$BUILD_DIR/bin/llmload"
IMAGE="localhost/llmload:ci"
PROM_IMAGE="localhost/llmload-test-prometheus:bookworm"
PROJECT="llmloadtest$$"
BUF_VERSION="1.50.0"

ensure_packages podman runc fuse-overlayfs slirp4netns uidmap containernetworking-plugins \
  golang-github-containernetworking-plugin-dnsname catatonit debootstrap iptables docker-compose python3-yaml
ensure_node
[ -x "$LLMLOAD" ] || { log "container_test: $LLMLOAD is missing; build first"; exit 1; }

mkdir -p "$CACHE"
# Container defaults below these machines' hard limits, and runc (crun
# refuses the hybrid cgroup tree here): see containers.md.
cat > "$CACHE/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$CACHE/containers.conf"

WORK="$(mktemp -d /tmp/llmload-container-test.XXXXXX)"
SOCK="$WORK/podman.sock"
SERVICE_PID=""
HEALTH_PID=""
COMPOSE=(docker-compose -p "$PROJECT" -f "$LLMLOAD_ROOT/docker-compose.yml"
         -f "$LLMLOAD_ROOT/tests/compose/docker-compose.test.yml")
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ] && [ -n "$SERVICE_PID" ]; then
    log "container_test: FAILED; service logs follow"
    "${COMPOSE[@]}" logs --no-color --tail=60 2>&1 | tail -n 300
  fi
  [ -n "$HEALTH_PID" ] && kill "$HEALTH_PID" 2>/dev/null && wait "$HEALTH_PID" 2>/dev/null
  if [ -n "$SERVICE_PID" ]; then
    "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1
    kill "$SERVICE_PID" 2>/dev/null && wait "$SERVICE_PID" 2>/dev/null
  fi
  podman rm -f -v "${PROJECT}-probe" >/dev/null 2>&1
  if [ -s "$WORK/play.yaml" ]; then
    if [ "$rc" -ne 0 ]; then
      for c in $(podman ps -a -q --filter "network=${PROJECT}-k8s"); do
        podman logs --tail=40 "$c" 2>&1 | sed "s/^/[kube play $c] /"
      done
    fi
    podman kube down "$WORK/play.yaml" >/dev/null 2>&1
    podman volume rm -f state-llmload-collector-0 state-llmload-orchestrator-0 >/dev/null 2>&1
    podman network rm -f "${PROJECT}-k8s" >/dev/null 2>&1
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND every second.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )) what="$2"
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "container_test: timed out waiting for $what"
      return 1
    fi
    sleep 1
  done
}

# --- base images ------------------------------------------------------------
if ! podman image exists docker.io/library/debian:bookworm ||
   ! podman image exists docker.io/library/debian:bookworm-slim; then
  if [ ! -s "$CACHE/bookworm-minbase.tar" ]; then
    log "container_test: debootstrap bookworm (cached in $CACHE)"
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)"
    rm -rf "$CACHE/rootfs"
    debootstrap --variant=minbase bookworm "$CACHE/rootfs" "${mirror:-http://deb.debian.org/debian}" >/dev/null
    rm -f "$CACHE"/rootfs/var/cache/apt/archives/*.deb
    tar -C "$CACHE/rootfs" -cf "$CACHE/bookworm-minbase.tar.partial" .
    mv "$CACHE/bookworm-minbase.tar.partial" "$CACHE/bookworm-minbase.tar"
    rm -rf "$CACHE/rootfs"
  fi
  if [ ! -s "$CACHE/bookworm-slim.tar" ]; then
    python3 "$LLMLOAD_ROOT/scripts/lib/slim_rootfs.py" "$CACHE/bookworm-minbase.tar" \
      "$CACHE/bookworm-slim.tar.partial"
    mv "$CACHE/bookworm-slim.tar.partial" "$CACHE/bookworm-slim.tar"
  fi
  podman import "$CACHE/bookworm-minbase.tar" docker.io/library/debian:bookworm >/dev/null
  # The runtime stage's base: the same packages without apt lists, docs,
  # manual pages and translations (as Debian's official -slim images).
  podman import "$CACHE/bookworm-slim.tar" docker.io/library/debian:bookworm-slim >/dev/null
fi

# --- the image --------------------------------------------------------------
t0="$(now)"
# The image compiles as the host's build tree did (same flags, same relative
# paths), so it takes its objects from the host's ccache instead of compiling
# everything a second time.
cache_args=()
if command -v ccache >/dev/null 2>&1; then
  host_cache="$(ccache -k cache_dir)"
  mkdir -p "$host_cache"
  locale_vars="$(env | grep -E '^(LANG|LC_ALL|LC_CTYPE|LC_MESSAGES)=' | tr '\n' ' ' || true)"
  werror="$(sed -n 's/^LLMLOAD_WERROR:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null)"
  cache_args=(--volume "$host_cache:/host-ccache" --build-arg CCACHE_DIR=/host-ccache
              --build-arg CCACHE_MAXSIZE="$(ccache -k max_size)"
              --build-arg LLMLOAD_WERROR="${werror:-OFF}"
              --build-arg BUILD_LOCALE="$locale_vars")
fi
podman build --format docker -q "${cache_args[@]}" -t "$IMAGE" "$LLMLOAD_ROOT" >/dev/null
log "container_test: image built in $(since "$t0") s (a warm rebuild when nothing changed)"
size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
log "container_test: image size $(( size / 1000000 )) MB"
podman build -q -t "$PROM_IMAGE" "$LLMLOAD_ROOT/tests/compose/prometheus" >/dev/null

# Every binary as the image's user on a read-only root filesystem.
[ "$(podman run --rm --read-only "$IMAGE" id -u)" = 10001 ]
for bin in llmload-orchestrator llmload-worker llmload-collector llmload-emulator; do
  podman run --rm --read-only --cap-drop ALL "$IMAGE" "$bin" --help >/dev/null 2>&1 || {
    rc=$?; [ "$rc" -eq 1 ] || { log "container_test: $bin --help exited $rc"; exit 1; }; }
done
help_text="$(podman run --rm --read-only "$IMAGE" llmload help)"
grep -q "llmload health" <<<"$help_text"
# Each service starts as uid 10001 on a read-only root filesystem with no
# capabilities and answers the image's HEALTHCHECK (llmload health, pointed
# at the service by the environment, as docker-compose.yml does).
probe() {  # NAME BINARY HEALTH_ADDRESS [HTTP_PATH]
  podman run -d --name "${PROJECT}-probe" --read-only --tmpfs /tmp --cap-drop ALL \
    -e LLMLOAD_HEALTH_ADDRESS="$3" -e LLMLOAD_HEALTH_HTTP="${4:-}" "$IMAGE" "$2" >/dev/null
  wait_for 30 "$1's health in the image" podman healthcheck run "${PROJECT}-probe"
  [ "$(podman exec "${PROJECT}-probe" id -u)" = 10001 ]
  podman rm -f -v "${PROJECT}-probe" >/dev/null
}
probe orchestrator llmload-orchestrator 127.0.0.1:50051
probe collector llmload-collector 127.0.0.1:50052
probe worker llmload-worker 127.0.0.1:9103 /metrics
probe emulator llmload-emulator 127.0.0.1:8080 /health
log "container_test: image checks passed"

# --- docker-compose through podman's socket ---------------------------------
podman system service --time=0 "unix://$SOCK" >"$WORK/podman-service.log" 2>&1 &
SERVICE_PID=$!
export DOCKER_HOST="unix://$SOCK"
wait_for 20 "podman's socket" test -S "$SOCK"
export LLMLOAD_IMAGE="$IMAGE" LLMLOAD_PUBLISH_ADDRESS=127.0.0.1
ORCH=$(free_port) COL=$(free_port) MET=$(free_port) EMU=$(free_port) PROM=$(free_port) GRAF=$(free_port)
export ORCHESTRATOR_PORT=$ORCH COLLECTOR_PORT=$COL COLLECTOR_METRICS_PORT=$MET EMULATOR_PORT=$EMU
export PROMETHEUS_PORT=$PROM GRAFANA_PORT=$GRAF
# Tokens as .env would set them: every call below carries the operator's
# (the CLI reads LLMLOAD_TOKEN), workers the join token.
LLMLOAD_OPERATOR_TOKEN="$(openssl rand -hex 24)"
LLMLOAD_READ_TOKEN="$(openssl rand -hex 24)"
LLMLOAD_JOIN_TOKEN="$(openssl rand -hex 24)"
export LLMLOAD_OPERATOR_TOKEN LLMLOAD_READ_TOKEN LLMLOAD_JOIN_TOKEN
export LLMLOAD_TOKEN="$LLMLOAD_OPERATOR_TOKEN"
cd "$LLMLOAD_ROOT"
# podman runs no healthchecks by itself (no systemd here): run them while the
# test lasts so `depends_on: condition: service_healthy` can pass.
(
  while true; do
    for c in $(podman ps -q --filter "label=com.docker.compose.project=$PROJECT"); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
    sleep 2
  done
) &
HEALTH_PID=$!

t_up="$(now)"
"${COMPOSE[@]}" up -d --no-build --scale worker=3 emulator collector orchestrator worker prometheus
workers_attached() { [ "$("$LLMLOAD" workers --orchestrator "127.0.0.1:$ORCH" | grep -c capacity=)" -eq 3 ]; }
wait_for 90 "3 workers to attach" workers_attached
log "container_test: up with 3 workers attached in $(since "$t_up") s"

# 1. grpcurl-compatible JSON, unchanged from examples/ (buf curl from npm).
BUF="$CACHE/npm/node_modules/.bin/buf"
if [ ! -x "$BUF" ]; then
  npm install --silent --no-audit --no-fund --prefix "$CACHE/npm" "@bufbuild/buf@$BUF_VERSION" >/dev/null
fi
run1="$("$BUF" curl --protocol grpc --http2-prior-knowledge -d @- \
  -H "authorization: Bearer $LLMLOAD_OPERATOR_TOKEN" \
  "http://127.0.0.1:$ORCH/llmload.v1.Orchestrator/StartRun" < examples/smoke.json | json 'd["id"]')"
log "container_test: started $run1 with buf curl"
run_done() { "$LLMLOAD" get "$1" --json --orchestrator "127.0.0.1:$ORCH" |
  json 'd["state"] in ("COMPLETED","FAILED","CANCELLED")' | grep -q True; }
wait_for 120 "run $run1 to end" run_done "$run1"
log "container_test: first run completed $(since "$t_up") s after docker-compose up"
check_run() {  # RUN_ID: COMPLETED, 10 clients x 5 cycles split over 3 workers, all ok
  local j
  j="$("$LLMLOAD" get "$1" --json --orchestrator "127.0.0.1:$ORCH")"
  echo "$j" | json 'd["state"]' | grep -qx COMPLETED
  echo "$j" | json 'd["progress"]["cyclesDone"]' | grep -qx 50
  echo "$j" | json 'len(d["shards"])' | grep -qx 3
  echo "$j" | json 'sorted(s.get("clientCount",0) for s in d["shards"])' | grep -qx '\[3, 3, 4\]'
  echo "$j" | json 'len({s["workerId"] for s in d["shards"]})' | grep -qx 3
  echo "$j" | json 'd["progress"]["requestsOk"]' | grep -qx 50
  echo "$j" | json 'd["progress"].get("requestsFailed", "0")' | grep -qx 0
  echo "$j" | json 'd["progress"]["tokens"]' | grep -qx 5000
  # The merged statistics come with it (from the collector's database
  # after a restart).
  echo "$j" | json 'd["stats"]["complete"] and len(d["stats"]["metrics"]) > 0' | grep -qx True
}
check_run "$run1"

# The tokens from .env are enforced: none is UNAUTHENTICATED, the read
# token may list but not start a run.
if out="$(LLMLOAD_TOKEN= "$LLMLOAD" list --orchestrator "127.0.0.1:$ORCH" 2>&1)"; then
  log "container_test: listing runs without a token was allowed"; exit 1
fi
echo "$out" | grep -q UNAUTHENTICATED
LLMLOAD_TOKEN="$LLMLOAD_READ_TOKEN" "$LLMLOAD" list --orchestrator "127.0.0.1:$ORCH" | grep -q "$run1"
if out="$(LLMLOAD_TOKEN="$LLMLOAD_READ_TOKEN" "$LLMLOAD" run -f examples/smoke.json \
            --orchestrator "127.0.0.1:$ORCH" --detach 2>&1)"; then
  log "container_test: the read token started a run"; exit 1
fi
echo "$out" | grep -q PERMISSION_DENIED
log "container_test: control RPCs need the tokens from .env"

# 2. llmload run -f, the same file.
out="$("$LLMLOAD" run -f examples/smoke.json --orchestrator "127.0.0.1:$ORCH" --timeout 120)"
echo "$out" | grep -q "total_clients=10, total_cycles=50/50"
run2="$(echo "$out" | sed -n 's/.*Test completed. \[run_id=\([^,]*\),.*/\1/p')"
check_run "$run2"
log "container_test: $run1 and $run2 COMPLETED with 50/50 cycles over 3 workers"

# 3. Prometheus scrapes the collector and every worker replica (DNS discovery).
all_up() {
  curl_json="$(python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$PROM/api/v1/targets")"
  echo "$curl_json" | json '[t["labels"]["job"] for t in d["data"]["activeTargets"] if t["health"] == "up"].count("llmload-worker") == 3 and [t["labels"]["job"] for t in d["data"]["activeTargets"] if t["health"] == "up"].count("llmload-collector") == 1' | grep -q True
}
wait_for 90 "Prometheus to scrape the collector and 3 workers" all_up
log "container_test: Prometheus scrapes the collector and all 3 workers"

# 4. Restarts keep every run (named volumes).
"${COMPOSE[@]}" restart orchestrator collector
wait_for 60 "the orchestrator after restart" "$LLMLOAD" health --address "127.0.0.1:$ORCH"
wait_for 60 "the collector after restart" "$LLMLOAD" health --address "127.0.0.1:$COL"
listed() { "$LLMLOAD" list --orchestrator "127.0.0.1:$ORCH" | grep -q "$1"; }
listed "$run1" && listed "$run2"
check_run "$run1"
check_run "$run2"
log "container_test: both runs survive an orchestrator and collector restart"
"${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1
# The k8s pods below get no Secret (kube play 4.3 reads none): open.
unset LLMLOAD_TOKEN LLMLOAD_OPERATOR_TOKEN LLMLOAD_READ_TOKEN LLMLOAD_JOIN_TOKEN

# --- deploy/k8s under podman kube play --------------------------------------
# No cluster runs here. kube play starts the rendered workloads with their
# commands, ConfigMap environment, downward-API worker ids, resources,
# security contexts and volumes, on a network of the test's own, and a run
# goes through them. What it cannot show (scripts/lib/k8s_to_podman.py):
# Services (pods are named after them instead), NetworkPolicies, the PDB,
# gRPC/readiness/startup probes (the liveness probes become exec probes of
# `llmload health`), Secrets, StatefulSet identity and rescheduling.
t_k8s="$(now)"
kubectl kustomize "$LLMLOAD_ROOT/deploy/k8s" > "$WORK/rendered.yaml"
/usr/bin/python3 "$LLMLOAD_ROOT/scripts/lib/k8s_to_podman.py" "$WORK/rendered.yaml" "$IMAGE" 2 \
  > "$WORK/play.yaml"
podman network create "${PROJECT}-k8s" >/dev/null
podman kube play --network "${PROJECT}-k8s" "$WORK/play.yaml" >/dev/null
k8s_exec() { podman exec -i "$@"; }
for svc in collector:50052 orchestrator:50051; do
  wait_for 60 "the ${svc%%:*} pod's health" \
    k8s_exec "${svc%%:*}-${svc%%:*}" llmload health --address "127.0.0.1:${svc#*:}"
done
wait_for 60 "the emulator pod's health" \
  k8s_exec emulator-emulator llmload health --address 127.0.0.1:8080 --http /health
k8s_workers() { k8s_exec orchestrator-orchestrator llmload workers | grep -c capacity=; }
k8s_workers_attached() { [ "$(k8s_workers 2>/dev/null)" = 2 ]; }
wait_for 60 "2 worker pods to attach" k8s_workers_attached
for c in collector-collector orchestrator-orchestrator emulator-emulator; do
  [ "$(podman exec "$c" id -u)" = 10001 ]
  if podman exec "$c" touch /probe 2>/dev/null; then
    log "container_test: $c's root filesystem is writable"; exit 1
  fi
  podman exec "$c" grep -qx 'CapEff:[[:space:]]*0*' /proc/1/status
done
out="$(k8s_exec orchestrator-orchestrator llmload run -f /dev/stdin --timeout 120 < examples/smoke.json)"
echo "$out" | grep -q "total_clients=10, total_cycles=50/50"
run3="$(echo "$out" | sed -n 's/.*Test completed. \[run_id=\([^,]*\),.*/\1/p')"
j="$(k8s_exec orchestrator-orchestrator llmload get "$run3" --json)"
# Worker ids are the pods' names (downward API), one shard each.
echo "$j" | json 'sorted(s["workerId"] for s in d["shards"])' |
  grep -qx "\['llmload-worker-pod-0', 'llmload-worker-pod-1'\]"
echo "$j" | json 'd["progress"]["requestsOk"]' | grep -qx 50
log "container_test: deploy/k8s under podman kube play: $run3 COMPLETED over 2 worker pods in $(since "$t_k8s") s"
log "container_test: passed"
