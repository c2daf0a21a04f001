#!/usr/bin/env bash
# ctest entry point of the Kubernetes manifest tests: renders deploy/k8s with
# `kubectl kustomize` (as shipped, and with every optional component), then
# validates every rendered object against the Kubernetes OpenAPI schemas
# (the pinned npm kubernetes-models packages, installed into the gitignored
# node_modules here) and checks llmload's deployment policy
# (manifests.test.mjs).
#
#   tests/k8s/run.sh WORK_DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${1:?usage: run.sh WORK_DIR}"
for tool in kubectl node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "k8s_manifests: FAILED: $tool is required (scripts/test.sh installs node and npm)" >&2
    exit 1
  fi
done
mkdir -p "$work"
work="$(cd "$work" && pwd)"

# As shipped: what `kubectl apply -k deploy/k8s` applies.
kubectl kustomize "$root/deploy/k8s" > "$work/default.yaml"
# With every optional component enabled, as a user enables them: the same
# kustomization with the commented-out component lines turned on.
overlay="$work/all-components"
rm -rf "$overlay"
cp -r "$root/deploy/k8s" "$overlay"
sed -i 's|^  # - components/|  - components/|' "$overlay/kustomization.yaml"
kubectl kustomize "$overlay" > "$work/all-components.yaml"

cd "$here"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "k8s_manifests: npm ci (pinned versions from package-lock.json)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
export LLMLOAD_SOURCE_DIR="$root"
export LLMLOAD_K8S_RENDERED="$work/default.yaml:$work/all-components.yaml"
exec node --test --test-reporter=spec manifests.test.mjs
