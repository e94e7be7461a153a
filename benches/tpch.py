"""TPC-H Q1 and Q6 over lineitem CSV: Brisk's command lines (as in the README)
beside DuckDB and Polars running the same queries (../shared/bench/peer_tpch.py).

Usage: python3 benches/tpch.py [--sf 1] [--dir DIR] [--runs 5]
                               [--brisk target/release/brisk] [--peers-python python]

Makes DIR/lineitem.csv with `tpchgen-cli csv -s SF --tables lineitem` when it is
missing, then times whole processes in turn (one run of each per round) and
prints each one's median wall time, peak resident memory and ratio to Brisk.
`--peers-python` names a Python with duckdb and polars (the peers' venv that
../shared/bench/setup_peers.sh makes, written `python`).
"""

import argparse
import os
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "..", "..", "shared", "bench", "peer_tpch.py")

Q1 = ["groupby", "{L}", "--by", "l_returnflag,l_linestatus",
      "--filter", "l_shipdate <= date '1998-12-01' - interval 90 day",
      "--agg", "sum_qty=sum(l_quantity),sum_base_price=sum(l_extendedprice),"
      "sum_disc_price=sum(l_extendedprice * (1 - l_discount)),"
      "sum_charge=sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)),"
      "avg_qty=avg(l_quantity),avg_price=avg(l_extendedprice),avg_disc=avg(l_discount),"
      "count_order=count(*)",
      "--progress", "never"]
Q6 = ["agg", "{L}",
      "--filter", "l_shipdate >= date '1994-01-01' and l_shipdate < date '1995-01-01' "
      "and l_discount between 0.05 and 0.07 and l_quantity < 24",
      "--agg", "revenue=sum(l_extendedprice * l_discount)", "--progress", "never"]


def timed(cmd):
    """Wall seconds and peak resident MiB of one run of `cmd`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sf", default="1")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--brisk", default=os.path.join(HERE, "..", "target", "release", "brisk"))
    ap.add_argument("--peers-python", default="python")
    a = ap.parse_args()
    d = a.dir or f"tpch-sf{a.sf}"
    lineitem = os.path.join(d, "lineitem.csv")
    if not os.path.exists(lineitem):
        subprocess.run(["tpchgen-cli", "csv", "-s", a.sf, "--tables", "lineitem",
                        "--output-dir", d], check=True)
    for name, query in (("q1", Q1), ("q6", Q6)):
        cmds = {"brisk": [a.brisk] + [x.replace("{L}", lineitem) for x in query]}
        for engine in ("duckdb", "polars"):
            cmds[engine] = [a.peers_python, PEER, lineitem, "--query", name, "--engine", engine]
        got = {k: [] for k in cmds}
        for _ in range(a.runs):
            for k, cmd in cmds.items():
                got[k].append(timed(cmd))
        base = statistics.median(w for w, _ in got["brisk"])
        for k, runs in got.items():
            wall = statistics.median(w for w, _ in runs)
            peak = max(m for _, m in runs)
            print(f"{name} {k:7} {wall:6.2f} s  {peak:6.0f} MiB  {wall / base:4.2f}x Brisk's time")


if __name__ == "__main__":
    main()
