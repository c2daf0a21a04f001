#!/usr/bin/env python3
"""Capacity of llmload-emulator per protocol, next to peerbench's reference server.

Builds bench/emulator_bench.cc (a lean single-threaded client) and the
reference server of ../shared/peerbench (server.cpp), starts
llmload-emulator with one event-loop thread and the reference server, and
runs the same workloads against each protocol. Server CPU time (user + sys)
comes from /proc/<pid>/stat before and after each workload, so the figures
hold whatever the client costs:

  us/token        server CPU per token message (connection set-up included)
  tokens/s/core   1e6 / us/token: token messages one fully busy core sends
  streams/core    sessions / (server CPU s / wall s) in the paced workload:
                  concurrent streams of that shape one core would hold

Server and client are pinned to different CPUs when taskset exists.

  python3 bench/emulator_bench.py [--build build] [--peerbench ../shared/peerbench] [--quick]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import cpu_seconds, free_port
from benchlib import wait_port as wait_tcp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOCOLS = ["openai", "anthropic", "gemini", "http_json", "realm", "ws_chat", "centrifugo"]








def pin(cpu):
    if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def build(out_dir, peerbench):
    client = os.path.join(out_dir, "emulator_bench")
    subprocess.run(["g++", "-O2", "-std=c++20", "-o", client,
                    os.path.join(ROOT, "bench", "emulator_bench.cc"), "-lpthread"], check=True)
    ref = os.path.join(out_dir, "refserver")
    subprocess.run(["g++", "-O2", "-std=c++17", "-o", ref,
                    os.path.join(peerbench, "server.cpp")], check=True)
    return client, ref


def run(client, server_pid, protocol, port, c, n, d, k, path=None):
    before = cpu_seconds(server_pid)
    t0 = time.monotonic()
    args = pin(1) + [client, protocol, str(port), str(c), str(n), str(d), str(k)]
    if path:
        args.append(path)
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(server_pid) - before
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    result = json.loads(line)
    expected = c * n * k
    ok = out.returncode == 0 and result.get("tokens") == expected
    return {"tokens": result.get("tokens", 0), "expected": expected, "ok": ok,
            "wall_s": wall, "server_cpu_s": cpu,
            "us_per_token": cpu * 1e6 / max(1, result.get("tokens", 0)),
            "sessions": c}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--peerbench", default=os.path.join(ROOT, "..", "shared", "peerbench"))
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = ap.parse_args()
    emulator = os.path.join(args.build, "bin", "llmload-emulator")
    if not os.access(emulator, os.X_OK):
        sys.exit(f"{emulator} not built")
    work = tempfile.mkdtemp(prefix="emulator_bench.")
    client, ref = build(work, args.peerbench)

    w1 = (50, 400, 0, 1) if args.quick else (100, 500, 0, 2)      # throughput: C, N, D ms, K
    w2 = (200, 20, 20, 1) if args.quick else (1000, 40, 25, 1)    # paced: 40 000 tokens/s offered

    eport, rport = free_port(), free_port()
    emu = subprocess.Popen(pin(0) + [emulator, "--host=127.0.0.1", f"--port={eport}", "--threads=1",
                                     "--log_level=warn"], stderr=subprocess.DEVNULL)
    refp = subprocess.Popen(pin(0) + [ref, str(rport)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    rows = []
    try:
        wait_tcp(eport)
        wait_tcp(rport)
        for name, (c, n, d, k) in (("W1", w1), ("W2", w2)):
            # The reference server speaks WS chat on /ws: the same client drives both.
            r = run(client, refp.pid, "ws_chat", rport, c, n, d, k, "/ws")
            rows.append(("peerbench refserver", "ws_chat", name, (c, n, d, k), r))
            for proto in PROTOCOLS:
                r = run(client, emu.pid, proto, eport, c, n, d, k)
                rows.append(("llmload-emulator", proto, name, (c, n, d, k), r))
    finally:
        for p in (emu, refp):
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)

    ref_us = {wl: r["us_per_token"] for srv, proto, wl, _, r in rows if srv.startswith("peer")}
    print("| server | protocol | workload | tokens | wall s | server CPU s | µs/token | "
          "tokens/s/core | streams/core | CPU ÷ refserver |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for srv, proto, wl, (c, n, d, k), r in rows:
        per_core = 1e6 / r["us_per_token"] if r["us_per_token"] > 0 else float("inf")
        streams = c * r["wall_s"] / r["server_cpu_s"] if (wl == "W2" and r["server_cpu_s"] > 0) else None
        status = "" if r["ok"] else f" (got {r['tokens']}/{r['expected']})"
        print(f"| {srv} | {proto} | {wl} C={c} N={n} D={d}ms K={k} | {r['tokens']}{status} | "
              f"{r['wall_s']:.2f} | {r['server_cpu_s']:.2f} | {r['us_per_token']:.2f} | "
              f"{per_core:,.0f} | {'-' if streams is None else f'{streams:,.0f}'} | "
              f"{(r['us_per_token'] / ref_us[wl]) if ref_us[wl] > 0 else float('nan'):.2f} |")
    if not all(r["ok"] for *_, r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
