#!/usr/bin/env python3
"""Sessions at scale through the whole suite, and the fidelity of its ITL.

For each session count, starts on loopback a fresh emulator group
(--processes, so the target is not capped by one process's descriptors), a
collector, an orchestrator and --workers worker processes (one loop each),
and runs one closed-model test with every session open at once: each session
streams --words tokens, --delay seconds apart (slow tokens, so that CPU is not
the limit). Sessions bind source addresses 127.0.0.2.. so that their count is
not capped by one source address's ephemeral ports.

Reported per session count:
  - every session opened and every token counted (tokens = sessions x words);
  - CPU per token of each component (user + sys from /proc, the emulator
    group's processes summed), and the worker's CPU per token relative to the
    emulator's (the in-run baseline: the emulator does the mirror image of the
    worker's per-token work);
  - worker memory per session: (RSS with every session open - RSS attached
    and idle) / sessions, the largest over the workers;
  - collector ingest: batches and ITL samples per second over the run;
  - fidelity: the run's merged ITL p50 and p99 against the gaps the emulator
    actually left between tokens (its /stats token_gaps, merged exactly over
    its processes); the goal is within 1 % or 50 us.

The cost per session must stay flat from the smallest count to the largest.

Usage: bench/scale_bench.py [--build build] [--protocols WS_CHAT,CENTRIFUGO_EMULATOR]
           [--sizes 1000,10000,50000] [--workers 3] [--words 10] [--delay 1.0]
           [--emulator-processes 3] [--json FILE]
"""

import argparse
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import cpu_seconds, free_port, rss_bytes, stop_all, wait_port


PATHS = {
    "WS_CHAT": "ws://127.0.0.1:{port}/api/ws",
    "REALM": "ws://127.0.0.1:{port}/",
    "CENTRIFUGO_EMULATOR": "http://127.0.0.1:{port}",
    "OPENAI_CHAT": "http://127.0.0.1:{port}",
}










def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(entry))
        except OSError:
            pass
    return out


def http_get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"GET {path}: {head[:200]!r}")
    if b"chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return json.loads(body)


def emulator_gaps(port, processes, protocol):
    """Merges the token_gaps of every process of the group (each answers
    /stats for itself; SO_REUSEPORT picks which, so ask until all did)."""
    seen = {}
    deadline = time.monotonic() + 30
    while len(seen) < processes and time.monotonic() < deadline:
        stats = http_get(port, "/stats")
        seen[stats["process"]] = stats
    if len(seen) < processes:
        raise RuntimeError(f"only {len(seen)} of {processes} emulator processes answered /stats")
    buckets, count, lo, hi = {}, 0, None, 0
    for stats in seen.values():
        g = stats["token_gaps"][protocol]
        count += g["count"]
        if g["count"]:
            lo = g["min_us"] if lo is None else min(lo, g["min_us"])
            hi = max(hi, g["max_us"])
        for value, n in g["buckets"]:
            buckets[value] = buckets.get(value, 0) + n
    return {"count": count, "min_us": lo or 0, "max_us": hi, "buckets": sorted(buckets.items())}


def percentile_us(gaps, p):
    """Nearest rank, the bucket's value clamped to [min, max]: what llmload's
    histogram reports for the same samples."""
    if gaps["count"] == 0:
        return 0
    rank = max(1, math.ceil(p / 100.0 * gaps["count"]))
    seen = 0
    for value, n in gaps["buckets"]:
        seen += n
        if seen >= rank:
            return min(max(value, gaps["min_us"]), gaps["max_us"])
    return gaps["max_us"]


def run_size(bin_dir, protocol, sessions, args):
    tmp = tempfile.mkdtemp(prefix="llmload-scale-")
    emu, col, met, orch = free_port(), free_port(), free_port(), free_port()
    procs = []

    def start(name, extra, tag=None):
        log = open(os.path.join(tmp, (tag or name) + ".log"), "w")
        p = subprocess.Popen([os.path.join(bin_dir, name)] + extra, cwd=tmp,
                             stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    try:
        emulator = start("llmload-emulator", [
            "--host=127.0.0.1", f"--port={emu}", "--tls_port=0", "--threads=1",
            f"--processes={args.emulator_processes}", "--log_level=warn"])
        collector = start("llmload-collector", [f"--grpc_address=127.0.0.1:{col}",
                                                f"--metrics_address=127.0.0.1:{met}",
                                                "--log_level=warn"])
        orchestrator = start("llmload-orchestrator", [f"--grpc_address=127.0.0.1:{orch}",
                                                      f"--collector=127.0.0.1:{col}",
                                                      "--log_level=warn"])
        for port in (emu, col, orch):
            wait_port(port)
        per_worker = math.ceil(sessions / args.workers)
        workers = [start("llmload-worker", [
            f"--orchestrator=127.0.0.1:{orch}", f"--collector=127.0.0.1:{col}", "--threads=1",
            f"--capacity={per_worker + 100}", f"--worker_id=scale-{i}", "--metrics_address=",
            "--log_level=warn"], tag=f"worker-{i}") for i in range(args.workers)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = subprocess.run([os.path.join(bin_dir, "llmload"), "workers",
                                  f"--orchestrator=127.0.0.1:{orch}"],
                                 capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.count("scale-") >= args.workers:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("workers did not attach")
        group = [emulator.pid] + children_of(emulator.pid)
        idle = {w.pid: rss_bytes(w.pid) for w in workers}
        peak = dict(idle)
        cpu0 = {
            "worker": sum(cpu_seconds(w.pid) for w in workers),
            "emulator": sum(cpu_seconds(p) for p in group),
            "collector": cpu_seconds(collector.pid),
            "orchestrator": cpu_seconds(orchestrator.pid),
        }
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                for w in workers:
                    try:
                        peak[w.pid] = max(peak[w.pid], rss_bytes(w.pid))
                    except OSError:
                        pass
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        sources = [f"127.0.0.{2 + i}" for i in range(max(1, math.ceil(sessions / 20000)))]
        spec = {
            "name": f"scale-{protocol}-{sessions}",
            "target": {"protocol": protocol, "url": PATHS[protocol].format(port=emu),
                       "requestTimeout": "120s", "connectTimeout": "60s",
                       "sourceAddresses": sources},
            "load": {"closed": {"clients": sessions, "cyclesPerClient": 1,
                                "maxConcurrent": sessions}},
            "emulation": {"lengthWords": args.words, "tokenDelay": f"{args.delay}s"},
        }
        spec_path = os.path.join(tmp, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        t0 = time.monotonic()
        out = subprocess.run(
            [os.path.join(bin_dir, "llmload"), "run", f"--orchestrator=127.0.0.1:{orch}",
             "-f", spec_path, "--json", "--timeout", "900"],
            capture_output=True, text=True)
        wall = time.monotonic() - t0
        stop.set()
        sampler.join()
        cpu = {
            "worker": sum(cpu_seconds(w.pid) for w in workers) - cpu0["worker"],
            "emulator": sum(cpu_seconds(p) for p in group) - cpu0["emulator"],
            "collector": cpu_seconds(collector.pid) - cpu0["collector"],
            "orchestrator": cpu_seconds(orchestrator.pid) - cpu0["orchestrator"],
        }
        if out.returncode not in (0, 1):
            raise RuntimeError(f"run failed ({out.returncode}): {out.stderr[-2000:]}")
        run = json.loads(out.stdout)
        stats = run.get("stats", {})
        counters = stats.get("counters", {})
        tokens = int(counters.get("tokens", 0))
        itl = next((m for m in stats.get("metrics", []) if m.get("metric") == "itl"), {})
        gaps = emulator_gaps(emu, args.emulator_processes, protocol)
        sent_p50 = percentile_us(gaps, 50) / 1000.0
        sent_p99 = percentile_us(gaps, 99) / 1000.0
        seen_p50 = float(itl.get("p50Ms", 0))
        seen_p99 = float(itl.get("p99Ms", 0))
        duration = float(stats.get("durationSeconds", wall)) or wall
        per_session = max((peak[p] - idle[p]) / (sessions / args.workers) for p in idle)
        return {
            "protocol": protocol, "sessions": sessions, "workers": args.workers,
            "sessions_opened": int(counters.get("sessions_opened", 0)),
            "requests_ok": int(counters.get("requests_ok", 0)),
            "tokens": tokens, "expected_tokens": sessions * args.words, "wall_s": round(wall, 1),
            "us_per_token": {k: 1e6 * v / max(tokens, 1) for k, v in cpu.items()},
            "worker_vs_emulator_cpu": cpu["worker"] / cpu["emulator"] if cpu["emulator"] else None,
            "worker_bytes_per_session": per_session,
            "collector_batches_per_s": int(stats.get("batches", 0)) / duration,
            "itl_samples_per_s": int(itl.get("count", 0)) / duration,
            "itl_samples": int(itl.get("count", 0)), "gaps_sent": gaps["count"],
            "itl_p50_ms": seen_p50, "sent_p50_ms": sent_p50,
            "itl_p99_ms": seen_p99, "sent_p99_ms": sent_p99,
            "p50_within_goal": abs(seen_p50 - sent_p50) <= max(0.01 * sent_p50, 0.05),
            "p99_within_goal": abs(seen_p99 - sent_p99) <= max(0.01 * sent_p99, 0.05),
        }
    finally:
        stop_all(procs, timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--protocols", default="WS_CHAT,CENTRIFUGO_EMULATOR")
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--emulator-processes", type=int, default=3)
    ap.add_argument("--words", type=int, default=10)
    ap.add_argument("--delay", type=float, default=1.0)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    bin_dir = os.path.abspath(os.path.join(args.build, "bin"))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the services
    rows = []
    for protocol in args.protocols.split(","):
        for n in [int(x) for x in args.sizes.split(",")]:
            try:
                row = run_size(bin_dir, protocol, n, args)
            except Exception as e:  # one failed size does not hide the others
                row = {"protocol": protocol, "sessions": n, "error": str(e)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(f"{'protocol':<20} {'sessions':>8} {'tokens ok':>9} {'wrk us/tok':>10} "
          f"{'emu us/tok':>10} {'col us/tok':>10} {'orch us/tok':>11} {'wrk/emu':>7} "
          f"{'B/session':>9} {'ITL p50 ms (sent)':>19} {'ITL p99 ms (sent)':>19}")
    for r in rows:
        if "error" in r:
            print(f"{r['protocol']:<20} {r['sessions']:>8}  error: {r['error']}")
            continue
        u = r["us_per_token"]
        ok = "yes" if r["tokens"] == r["expected_tokens"] else "NO"
        print(f"{r['protocol']:<20} {r['sessions']:>8} {ok:>9} {u['worker']:>10.2f} "
              f"{u['emulator']:>10.2f} {u['collector']:>10.2f} {u['orchestrator']:>11.2f} "
              f"{r['worker_vs_emulator_cpu'] or 0:>7.2f} {r['worker_bytes_per_session']:>9.0f} "
              f"{r['itl_p50_ms']:>9.2f} ({r['sent_p50_ms']:>7.2f}) "
              f"{r['itl_p99_ms']:>9.2f} ({r['sent_p99_ms']:>7.2f})")


if __name__ == "__main__":
    main()
