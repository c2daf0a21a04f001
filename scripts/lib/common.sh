# Shared by scripts/demo.sh and scripts/test.sh: install what is missing from
# Debian 12's packages, configure and build.
# shellcheck shell=bash

LLMLOAD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export LLMLOAD_ROOT

# Packages needed to build and run llmload.
LLMLOAD_BUILD_PACKAGES=(
  g++ cmake ninja-build pkg-config ca-certificates ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libabsl-dev prometheus-cpp-dev libsqlite3-dev libssl-dev
)
# Packages the test suite needs on top (openssl: the security tests make
# their own CA and certificates with its command line).
LLMLOAD_TEST_PACKAGES=(
  libgtest-dev libgmock-dev clang libclang-rt-14-dev prometheus chromium openssl
)

log() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    log "Need root to install packages: $*"
    return 1
  fi
}

# ensure_packages PKG... : installs the packages that are not installed yet.
ensure_packages() {
  local missing=()
  local p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  log "Installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_node: Node.js and npm for the conformance tests against the
# providers' official SDKs (the machine image may already ship them).
ensure_node() {
  if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    return 0
  fi
  ensure_packages nodejs npm
}

# configure BUILD_DIR: (re)configures with Ninja; LLMLOAD_CMAKE_ARGS are added.
configure() {
  local build_dir="$1"
  local werror=OFF
  if [ "${CI:-}" = "true" ] || [ "${LLMLOAD_WERROR:-}" = "ON" ]; then
    werror=ON
  fi
  local launcher=()
  if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    # Share cache entries between clones of the repository (CI builds a
    # fresh clone each time).
    export CCACHE_BASEDIR="$LLMLOAD_ROOT" CCACHE_NOHASHDIR=true
  fi
  cmake -S "$LLMLOAD_ROOT" -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE="${LLMLOAD_BUILD_TYPE:-RelWithDebInfo}" \
    -DLLMLOAD_WERROR="$werror" "${launcher[@]}" ${LLMLOAD_CMAKE_ARGS:-}
}

# configure_and_build BUILD_DIR [TARGET...]
configure_and_build() {
  local build_dir="$1"
  shift
  configure "$build_dir"
  local jobs
  jobs="$(nproc 2>/dev/null || echo 2)"
  if [ $# -gt 0 ]; then
    cmake --build "$build_dir" -j "$jobs" --target "$@"
  else
    cmake --build "$build_dir" -j "$jobs"
  fi
}
