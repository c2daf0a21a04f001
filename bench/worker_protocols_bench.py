#!/usr/bin/env python3
"""Worker cost per protocol: CPU per token and memory per session.

For every target protocol, runs the one-shot worker (llmload-worker --oneshot,
one loop thread, no orchestrator or collector) against the real emulator on
loopback, the emulator pinned to CPU 0 and the worker to CPU 1, in three
shapes:

  startup  1 session, 1 token: the fixed cost subtracted from the others.
  busy     200 sessions x 5 requests x 100 tokens, 5 ms apart: CPU per token.
  idle     2 000 sessions x 1 request x 10 tokens, 500 ms apart: memory per
           open session (peak RSS) and CPU per token of a mostly idle fleet.
  idle6k   the same with 6 000 sessions: the memory one more session costs
           is the slope between the two idle runs, free of what a loop holds
           whatever its session count (the Centrifugo driver's pool of REST
           connections, buffers per thread), which the 2 000-session figure
           spreads over its sessions.

CPU is the worker process's user+sys time (getrusage of the child), net of
the startup run; memory is its peak RSS net of the startup run's. The
emulator's CPU per token in the same run is printed next to the worker's as
the in-run baseline (it does the mirror-image work for every token), so the
ratio column survives a noisy machine better than the absolute figures.

Usage: bench/worker_protocols_bench.py [--build build] [--quick] [--protocols a,b]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from benchlib import cpu_seconds, free_port, wait_port


# protocol -> URL on the emulator ({tls_port}: its https/wss port). A name
# ending in "/TLS" is that protocol over TLS, reported apart: a TLS session
# holds OpenSSL's state and a read buffer of its own.
PROTOCOLS = {
    "WS_CHAT": "ws://127.0.0.1:{port}/api/ws",
    "REALM": "ws://127.0.0.1:{port}/",
    "CENTRIFUGO_EMULATOR": "http://127.0.0.1:{port}",
    "OPENAI_CHAT": "http://127.0.0.1:{port}",
    "ANTHROPIC_MESSAGES": "http://127.0.0.1:{port}",
    "GEMINI": "http://127.0.0.1:{port}",
    "HTTP_JSON": "http://127.0.0.1:{port}/v1/generate",
    "OPENAI_RESPONSES": "http://127.0.0.1:{port}",
    "WS_CHAT/TLS": "wss://127.0.0.1:{tls_port}/api/ws",
    "OPENAI_CHAT/TLS": "https://127.0.0.1:{tls_port}",
}

SHAPES = {
    # name: (sessions, cycles, words, delay seconds)
    "startup": (1, 1, 1, 0.0),
    "busy": (200, 5, 100, 0.005),
    "idle": (2000, 1, 10, 0.5),
    "idle6k": (6000, 1, 10, 0.5),
}








def run_worker(bin_dir, tmp, protocol, url, shape):
    sessions, cycles, words, delay = shape
    target = {"protocol": protocol.split("/")[0], "url": url, "requestTimeout": "60s"}
    if protocol.endswith("/TLS"):
        target["insecureSkipVerify"] = True  # the bench's own self-signed certificate
    spec = {
        "target": target,
        "load": {"closed": {"clients": sessions, "cyclesPerClient": cycles,
                            "maxConcurrent": sessions}},
        "emulation": {"lengthWords": words, "tokenDelay": f"{delay:.3f}s"},
    }
    path = os.path.join(tmp, f"{protocol.replace('/', '-')}-{sessions}.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    # GNU time reports the worker's own CPU and peak RSS (getrusage of the
    # children would carry the high-water mark of earlier runs).
    out = subprocess.run(
        ["taskset", "-c", "1", "/usr/bin/time", "-f", "TIME %U %S %M",
         os.path.join(bin_dir, "llmload-worker"), f"--oneshot={path}", "--oneshot_json",
         "--threads=1", "--log_level=warn"],
        capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"{protocol}: worker exited {out.returncode}: {out.stderr[-1500:]}")
    times = [line for line in out.stderr.splitlines() if line.startswith("TIME ")][-1].split()
    stats = json.loads(out.stdout)
    counters = stats.get("counters", {})
    return {
        "cpu_s": float(times[1]) + float(times[2]),
        "maxrss_kib": int(times[3]),
        "tokens": int(counters.get("tokens", 0)),
        "requests_ok": int(counters.get("requests_ok", 0)),
    }


def self_signed(tmp):
    """A certificate and key for 127.0.0.1, made once per bench run."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
    return cert, key


def bench_protocol(bin_dir, tmp, protocol, quick):
    port, tls_port = free_port(), free_port()
    log = open(os.path.join(tmp, f"emulator-{protocol.replace('/', '-')}.log"), "w")
    cmd = ["taskset", "-c", "0", os.path.join(bin_dir, "llmload-emulator"), "--host=127.0.0.1",
           f"--port={port}", "--tls_port=0", "--threads=1", "--log_level=warn"]
    if protocol.endswith("/TLS"):
        cert, key = self_signed(tmp)
        cmd[6] = f"--tls_port={tls_port}"
        cmd += [f"--tls_cert_file={cert}", f"--tls_key_file={key}"]
    emulator = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        wait_port(port)
        if protocol.endswith("/TLS"):
            wait_port(tls_port)
        url = PROTOCOLS[protocol].format(port=port, tls_port=tls_port)
        results = {}
        for name in ("startup", "busy", "idle", "idle6k"):
            sessions, cycles, words, delay = SHAPES[name]
            if quick and name != "startup":
                sessions, cycles = sessions // 4, 1
            e0 = cpu_seconds(emulator.pid)
            r = run_worker(bin_dir, tmp, protocol, url, (sessions, cycles, words, delay))
            r["emulator_cpu_s"] = cpu_seconds(emulator.pid) - e0
            r["sessions"] = sessions
            r["expected_tokens"] = sessions * cycles * words
            results[name] = r
        return results
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--quick", action="store_true", help="smaller shapes (a smoke test)")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    bin_dir = os.path.abspath(os.path.join(args.build, "bin"))
    tmp = tempfile.mkdtemp(prefix="llmload-protocols-bench-")
    all_results = {}
    print("| protocol | tokens ok | worker µs/token (busy) | emulator µs/token | ratio "
          "| worker µs/token (idle) | worker KiB/session (idle) | KiB per added session |")
    print("|---|---|---|---|---|---|---|---|")
    for protocol in args.protocols.split(","):
        r = bench_protocol(bin_dir, tmp, protocol, args.quick)
        all_results[protocol] = r
        base = r["startup"]
        busy, idle = r["busy"], r["idle"]
        ok = all(x["tokens"] == x["expected_tokens"] for x in (busy, idle, r["idle6k"]))
        busy_us = 1e6 * (busy["cpu_s"] - base["cpu_s"]) / max(busy["tokens"], 1)
        emu_us = 1e6 * busy["emulator_cpu_s"] / max(busy["tokens"], 1)
        idle_us = 1e6 * (idle["cpu_s"] - base["cpu_s"]) / max(idle["tokens"], 1)
        kib = (idle["maxrss_kib"] - base["maxrss_kib"]) / idle["sessions"]
        big = r["idle6k"]
        slope = (big["maxrss_kib"] - idle["maxrss_kib"]) / (big["sessions"] - idle["sessions"])
        print(f"| {protocol} | {'yes' if ok else 'NO'} ({busy['tokens'] + idle['tokens']}) "
              f"| {busy_us:.2f} | {emu_us:.2f} | {busy_us / emu_us if emu_us else float('nan'):.2f} "
              f"| {idle_us:.2f} | {kib:.2f} | {slope:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
