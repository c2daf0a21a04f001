# syntax=docker/dockerfile:1
# llmload: one image holding all five binaries (llmload, llmload-orchestrator,
# llmload-worker, llmload-collector, llmload-emulator). Compose and
# Kubernetes pick the binary with `command:`.
#
#   docker build -t llmload:0.1.0 .          (podman: add --format docker to keep HEALTHCHECK)
#
# The build stage installs the build packages from scripts/lib/common.sh
# (the list scripts/test.sh and scripts/demo.sh use) and compiles with a
# ccache cache mount, so a rebuild after a one-file change recompiles one
# file. It builds as scripts/test.sh does (RelWithDebInfo in /src/build,
# then stripped), so a host's ccache can serve it:
#
#   podman build -v "$(ccache -k cache_dir):/host-ccache" \
#     --build-arg CCACHE_DIR=/host-ccache --build-arg CCACHE_MAXSIZE="$(ccache -k max_size)" .
#
# (scripts/container_test.sh does this, with LLMLOAD_WERROR as the host's
# build tree has it). The runtime stage installs exactly the Debian packages that own the
# shared libraries the binaries link (computed in the build stage), nothing
# else.

ARG DEBIAN_IMAGE=debian:bookworm
ARG DEBIAN_SLIM_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/lib/common.sh /tmp/common.sh
RUN bash -c 'set -euo pipefail; source /tmp/common.sh; \
      apt-get update -qq; \
      apt-get install -y -qq --no-install-recommends "${LLMLOAD_BUILD_PACKAGES[@]}" ccache; \
      rm -rf /var/lib/apt/lists/*'
WORKDIR /src
COPY . .
ARG CCACHE_DIR=/ccache
ARG CCACHE_MAXSIZE=2G
ARG LLMLOAD_WERROR=OFF
ENV CCACHE_DIR=${CCACHE_DIR} CCACHE_BASEDIR=/src CCACHE_NOHASHDIR=true \
    CCACHE_MAXSIZE=${CCACHE_MAXSIZE}
ARG BUILD_JOBS=2
# ccache keys an object on the locale variables too (LANG, LC_ALL, LC_CTYPE,
# LC_MESSAGES): to share a host's cache, pass the host's, e.g.
# --build-arg BUILD_LOCALE="LANG=C.UTF-8".
ARG BUILD_LOCALE=""
RUN --mount=type=cache,target=/ccache \
    export ${BUILD_LOCALE:-BUILD_LOCALE=} \
 && cmake -S . -B /src/build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
      -DLLMLOAD_WERROR="${LLMLOAD_WERROR}" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
 && cmake --build /src/build -j "${BUILD_JOBS}" --target llmload llmload-orchestrator \
      llmload-worker llmload-collector llmload-emulator \
 && (ccache --show-stats | grep -Ei 'hits|misses' || true)
# The runtime packages: whoever owns each shared library the binaries link.
RUN mkdir -p /out/bin \
 && for b in llmload llmload-orchestrator llmload-worker llmload-collector llmload-emulator; do \
      strip -o /out/bin/$b /src/build/bin/$b; done \
 && for lib in $(ldd /out/bin/* | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do \
      dpkg -S "$lib" 2>/dev/null || dpkg -S "${lib#/usr}" 2>/dev/null || dpkg -S "/usr$lib" \
        || { echo "no package owns $lib" >&2; exit 1; }; \
    done > /tmp/owners \
 && cut -d: -f1 /tmp/owners | sort -u > /out/runtime-packages \
 && cat /out/runtime-packages

FROM ${DEBIAN_SLIM_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* /tmp/runtime-packages \
 && groupadd --system --gid 10001 llmload \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/llmload --no-create-home \
      --shell /usr/sbin/nologin llmload \
 && mkdir -p /var/lib/llmload && chown 10001:10001 /var/lib/llmload
COPY --from=build /out/bin/ /usr/local/bin/

# State (orchestrator.db, collector.db) goes to the working directory.
WORKDIR /var/lib/llmload
VOLUME ["/var/lib/llmload"]
USER 10001:10001
# orchestrator gRPC, collector gRPC, collector metrics, worker metrics,
# emulator HTTP/WebSocket
EXPOSE 50051 50052 9102 9103 8080
# Services listen on every interface in a container; the emulator's own
# default is loopback.
ENV LLMLOAD_EMULATOR_HOST=0.0.0.0 \
    LLMLOAD_HEALTH_ADDRESS=127.0.0.1:50051
# Asks the gRPC health service of the orchestrator by default; set
# LLMLOAD_HEALTH_ADDRESS (and LLMLOAD_HEALTH_HTTP for the worker's /metrics
# and the emulator's /health) per service, as docker-compose.yml does.
HEALTHCHECK --interval=5s --timeout=4s --start-period=5s --retries=3 \
  CMD ["llmload", "health", "--quiet", "--timeout", "3"]
CMD ["llmload", "help"]
