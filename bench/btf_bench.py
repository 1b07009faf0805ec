#!/usr/bin/env python3
"""Benchmark the BTF reader: open the kernel's BTF and resolve 20 field paths.

Goal: <= 50 ms and <= 20 MB of extra RSS for open + 20 paths (after import).
Also times the full name -> ids index build. Each measurement runs in a fresh
process (nothing memoised); the median and best of --runs are printed, with
the load average, and the process CPU time: on a shared, loaded machine wall
time includes waiting for a core.

    python bench/btf_bench.py [--runs 7] [--btf FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

PATHS = [
    ("sk_buff", "len"), ("sk_buff", "dev.name"), ("sk_buff", "dev.ifindex"), ("sk_buff", "protocol"),
    ("sk_buff", "pkt_type"), ("sk_buff", "network_header"), ("sk_buff", "head"), ("sk_buff", "sk.__sk_common.skc_family"),
    ("sk_buff", "cb[4]"), ("sk_buff", "mark"), ("iphdr", "saddr"), ("iphdr", "protocol"),
    ("ipv6hdr", "daddr"), ("tcphdr", "dest"), ("udphdr", "len"), ("sock", "sk_protocol"),
    ("tcp_sock", "srtt_us"), ("net_device", "stats.rx_dropped"), ("skb_shared_info", "frags[1].len"),
    ("trace_event_raw_kfree_skb", "reason"),
]


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


def measure(path: str | None) -> dict[str, float]:
    imported = time.perf_counter()
    from pybpfasm.btf import BTF

    import_ms = (time.perf_counter() - imported) * 1e3
    before = rss_kib()
    cpu_start, start = time.process_time(), time.perf_counter()
    btf = BTF.from_file(path) if path else BTF.kernel()
    opened = time.perf_counter()
    for struct, field in PATHS:
        btf.field(struct, field)
    resolved, cpu_resolved = time.perf_counter(), time.process_time()
    after = rss_kib()
    btf.names()
    indexed = time.perf_counter()
    return {
        "import_ms": import_ms,
        "open_ms": (opened - start) * 1e3,
        "open_and_paths_ms": (resolved - start) * 1e3,
        "open_and_paths_cpu_ms": (cpu_resolved - cpu_start) * 1e3,
        "extra_rss_mib": (after - before) / 1024,
        "name_index_ms": (indexed - resolved) * 1e3,
        "name_index_rss_mib": (rss_kib() - after) / 1024,
        "types": btf.last_id,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--btf", metavar="FILE", help="a BTF file instead of the kernel's")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:
        print(json.dumps(measure(args.btf)))
        return 0
    child = [sys.executable, __file__, "--once"] + (["--btf", args.btf] if args.btf else [])
    runs = [json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout) for _ in range(args.runs)]
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    best = {key: min(r[key] for r in runs) for key in runs[0]}
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"BTF: {int(median['types'])} types, {args.runs} fresh processes, load {load}; median (best):")
    print(f"  import pybpfasm.btf       {median['import_ms']:7.1f} ms  ({best['import_ms']:.1f})   not counted below")
    print(f"  open                      {median['open_ms']:7.1f} ms  ({best['open_ms']:.1f})")
    print(f"  open + {len(PATHS)} field paths     {median['open_and_paths_ms']:7.1f} ms  ({best['open_and_paths_ms']:.1f})   goal <= 50 ms")
    print(f"    of which CPU time       {median['open_and_paths_cpu_ms']:7.1f} ms  ({best['open_and_paths_cpu_ms']:.1f})   (wall time less waiting for a core)")
    print(f"  extra RSS                 {median['extra_rss_mib']:7.1f} MiB ({best['extra_rss_mib']:.1f})   goal <= 20 MiB")
    print(f"  full name index build     {median['name_index_ms']:7.1f} ms  ({best['name_index_ms']:.1f}), +{median['name_index_rss_mib']:.1f} MiB")
    ok = median["open_and_paths_ms"] <= 50 and median["extra_rss_mib"] <= 20
    print("goal met" if ok else "goal NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
