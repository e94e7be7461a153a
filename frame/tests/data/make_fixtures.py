#!/usr/bin/env python3
"""Writes the group-by fixtures: two small db-benchmark data sets made by
../shared/bench/gen_groupby.py (one with nulls) and pandas' answers to the
db-benchmark questions q1-q5 plus one query per other aggregation.

    python frame/tests/data/make_fixtures.py ../shared/bench/gen_groupby.py

Answers are written with 17 significant digits; keys sorted, null keys dropped
(pandas' defaults), so the Rust tests compare against them directly.
"""
import os
import subprocess
import sys

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = sys.argv[1]

QUERIES = {
    # db-benchmark groupby q1-q5
    "q1": (["id1"], {"v1": "sum"}),
    "q2": (["id1", "id2"], {"v1": "sum"}),
    "q3": (["id3"], {"v1": "sum", "v3": "mean"}),
    "q4": (["id4"], {"v1": "mean", "v2": "mean", "v3": "mean"}),
    "q5": (["id6"], {"v1": "sum", "v2": "sum", "v3": "sum"}),
    # the other aggregations
    "aggs": (["id2", "id4"], {"v1": ["count", "min", "max", "first", "last"],
                              "v3": ["std", "var", "min", "max", "size"]}),
    "nunique": (["id1", "id4"], {"id3": "nunique", "v2": "nunique", "v3": "nunique"}),
}

for name, nulls in [("g_plain", 0), ("g_nulls", 5)]:
    csv = os.path.join(HERE, name + ".csv")
    subprocess.run([sys.executable, GEN, "--rows", "10000", "--groups", "10", "--nulls", str(nulls),
                    "--seed", "7", "--out", csv, "--quiet"], check=True)
    df = pd.read_csv(csv)
    for q, (keys, aggs) in QUERIES.items():
        res = df.groupby(keys).agg(aggs)
        if isinstance(res.columns, pd.MultiIndex):
            res.columns = ["%s_%s" % c for c in res.columns]
        res = res.reset_index().sort_values(keys)
        res.to_csv(os.path.join(HERE, "%s.%s.csv" % (name, q)), index=False, float_format="%.17g")
