#!/usr/bin/env python3
"""Latency agreement between llmload's worker and peerbench's epoll floor.

After a peerbench run with llmload as EXTRA_CLIENT (see peerbench_client.sh),
reads every run's output in $PEERBENCH_HOME/run (default /tmp/peerbench/run)
and prints, per workload and repetition, the floor client's TTFT p50 and ITL
p50/p99 next to the worker's, and the worker's deviation from the floor.
Both clients ran against the same server in the same benchmark invocation,
one after the other.

Usage: bench/peerbench_latency.py [--run-dir DIR] [--protocol ws_chat]
"""

import argparse
import glob
import json
import os
import re
import sys


def last_json_line(path, key):
    """The last line of `path` that is a JSON object holding `key`."""
    found = None
    with open(path) as f:
        text = f.read()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and key in line:
            try:
                found = json.loads(line)
            except json.JSONDecodeError:
                pass
    return found, text


def worker_stats(text):
    """The one-shot worker's statistics: the JSON document it prints first."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    stats, _ = decoder.raw_decode(text[start:])
    return {m["metric"]: m for m in stats.get("metrics", [])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default=os.path.join(
        os.environ.get("PEERBENCH_HOME", "/tmp/peerbench"), "run"))
    ap.add_argument("--protocol", default="ws_chat")
    args = ap.parse_args()

    rows = []
    for floor_path in sorted(glob.glob(os.path.join(args.run_dir, f"epoll-{args.protocol}-W*.out"))):
        m = re.search(r"-(W\d)(?:-(\d+))?-(\d+)\.out$", floor_path)
        name = os.path.basename(floor_path)
        extra_path = os.path.join(args.run_dir, name.replace("epoll-", "extra-", 1))
        if not m or not os.path.exists(extra_path):
            continue
        floor, _ = last_json_line(floor_path, "itl_p50_ms")
        with open(extra_path) as f:
            metrics = worker_stats(f.read())
        if not floor or "itl" not in metrics:
            continue
        ours = {"ttft_p50_ms": float(metrics["ttft"].get("p50Ms", 0)),
                "itl_p50_ms": float(metrics["itl"].get("p50Ms", 0)),
                "itl_p99_ms": float(metrics["itl"].get("p99Ms", 0))}
        rows.append((name[len("epoll-"):-len(".out")], floor, ours))
    if not rows:
        print(f"no paired epoll/extra runs in {args.run_dir}", file=sys.stderr)
        return 1
    print("| run | floor ttft p50 | worker | floor itl p50 | worker | floor itl p99 | worker |")
    print("|---|---|---|---|---|---|---|")
    for run, floor, ours in rows:
        cells = []
        for key in ("ttft_p50_ms", "itl_p50_ms", "itl_p99_ms"):
            f, o = float(floor[key]), ours[key]
            dev = f"{(o - f) / f * 100:+.1f} %" if f > 0.05 else "-"
            cells += [f"{f:.3f} ms", f"{o:.3f} ms ({dev})"]
        print(f"| {run} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
