#!/usr/bin/env python3
"""Worker cost benchmark: CPU per received token and memory per open session.

Starts the real emulator, collector, orchestrator and one single-threaded
worker on loopback for each session count, drives one closed-model run with
`llmload run`, and reads the processes' CPU time and resident memory from
/proc. Machines here are shared and noisy, so the figures that matter are
ratios measured in the same run:

  cpu_ratio   worker CPU per token / emulator CPU per token. The emulator does
              the mirror-image work for every token (a timer, a JSON
              publication, a WebSocket frame write), so it is the in-run
              baseline for "how much does receiving a token cost".
  mem/session (worker RSS with every session open - RSS when idle) / sessions.

Usage: bench/worker_bench.py [--build build] [--sizes 100,1000,10000] [--quick]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import cpu_seconds, free_port, rss_bytes, stop_all, wait_port


# sessions -> (cycles, words, token delay s): about 20k tokens/s at most, so
# that one core each for emulator and worker is enough on a 2-core machine.
SHAPES = {
    100: (5, 100, 0.010),
    1000: (2, 40, 0.050),
    10000: (1, 10, 0.500),
}










def run_one(bin_dir, sessions, quick):
    cycles, words, delay = SHAPES.get(sessions, (1, 10, 0.5))
    if quick:
        cycles = 1
    tmp = tempfile.mkdtemp(prefix="llmload-bench-")
    emu, col, met, orch = free_port(), free_port(), free_port(), free_port()
    procs = []

    def start(name, args):
        log = open(os.path.join(tmp, name + ".log"), "w")
        p = subprocess.Popen([os.path.join(bin_dir, name)] + args, cwd=tmp,
                             stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    try:
        emulator = start("llmload-emulator", ["--host=127.0.0.1", f"--port={emu}", "--threads=1",
                                              "--log_level=warn"])
        start("llmload-collector", [f"--grpc_address=127.0.0.1:{col}",
                                    f"--metrics_address=127.0.0.1:{met}", "--log_level=warn"])
        start("llmload-orchestrator", [f"--grpc_address=127.0.0.1:{orch}",
                                       f"--collector=127.0.0.1:{col}", "--log_level=warn"])
        for port in (emu, col, orch):
            wait_port(port)
        worker = start("llmload-worker", [f"--orchestrator=127.0.0.1:{orch}",
                                          f"--collector=127.0.0.1:{col}", "--threads=1",
                                          "--capacity=20000", "--worker_id=bench", "--metrics_address=",
                                          "--log_level=warn"])
        time.sleep(1.5)  # attach and settle
        idle_rss = rss_bytes(worker.pid)
        w_cpu0, e_cpu0 = cpu_seconds(worker.pid), cpu_seconds(emulator.pid)
        peak = [idle_rss]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], rss_bytes(worker.pid))
                except OSError:
                    return
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.time()
        out = subprocess.run(
            [os.path.join(bin_dir, "llmload"), "run", f"--orchestrator=127.0.0.1:{orch}",
             "--url", f"http://127.0.0.1:{emu}", "--clients", str(sessions), "--cycles",
             str(cycles), "--length", str(words), "--delay", str(delay), "--max-concurrent",
             str(sessions), "--json", "--timeout", "300"],
            capture_output=True, text=True)
        wall = time.time() - t0
        stop.set()
        sampler.join()
        w_cpu = cpu_seconds(worker.pid) - w_cpu0
        e_cpu = cpu_seconds(emulator.pid) - e_cpu0
        if out.returncode != 0:
            raise RuntimeError(f"run failed ({out.returncode}): {out.stderr[-2000:]}")
        run = json.loads(out.stdout)
        counters = run.get("stats", {}).get("counters", {})
        tokens = int(counters.get("tokens", 0))
        ok = int(counters.get("requestsOk", counters.get("requests_ok", 0)))
        expected = sessions * cycles * words
        return {
            "sessions": sessions, "cycles": cycles, "words": words, "delay_ms": delay * 1000,
            "tokens": tokens, "expected_tokens": expected, "requests_ok": ok, "wall_s": wall,
            "worker_us_per_token": 1e6 * w_cpu / max(tokens, 1),
            "emulator_us_per_token": 1e6 * e_cpu / max(tokens, 1),
            "cpu_ratio": w_cpu / e_cpu if e_cpu > 0 else float("nan"),
            "worker_bytes_per_session": (peak[0] - idle_rss) / sessions,
            "worker_idle_rss_mib": idle_rss / 2**20,
            "worker_peak_rss_mib": peak[0] / 2**20,
        }
    finally:
        stop_all(procs, timeout=15)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--quick", action="store_true", help="one cycle per size")
    args = ap.parse_args()
    bin_dir = os.path.abspath(os.path.join(args.build, "bin"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the services
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        r = run_one(bin_dir, n, args.quick)
        rows.append(r)
        print(json.dumps(r), file=sys.stderr)
    print(f"{'sessions':>8} {'tokens':>8} {'worker us/tok':>13} {'emulator us/tok':>15} "
          f"{'cpu ratio':>9} {'worker B/session':>16}")
    for r in rows:
        flag = "" if r["tokens"] == r["expected_tokens"] else "  (tokens != expected!)"
        print(f"{r['sessions']:>8} {r['tokens']:>8} {r['worker_us_per_token']:>13.2f} "
              f"{r['emulator_us_per_token']:>15.2f} {r['cpu_ratio']:>9.2f} "
              f"{r['worker_bytes_per_session']:>16.0f}{flag}")


if __name__ == "__main__":
    main()
