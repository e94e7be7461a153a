"""The q1 group-by over a CSV served by a local S3 server and by a plain HTTP
server with Range support, beside the same file read locally, and beside Polars
reading the same URLs.

Usage: python3 benches/object_store.py DATA.csv [--runs 3] [--brisk target/release/brisk]
                                       [--polars-python python]

Starts tests/object_server.py (moto's S3 server on 127.0.0.1, DATA.csv's folder
served under /_files/) with a bucket `bench`, uploads DATA.csv as
s3://bench/data.csv (boto3, which moto brings), then times whole processes in
turn, one run of each per round, and prints each one's median wall time and its
ratio to Brisk reading the same URL. Moto answers a ranged GET by copying the
whole object, so its times measure moto more than the readers. `--polars-python` names
a Python with Polars (the peers' venv of ../shared/bench/setup_peers.sh, written
`python`); Polars reads the URL through its own object_store client. DuckDB's
httpfs extension is downloaded on first use; without a network it is left out.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
POLARS_Q1 = """
import sys, polars as pl
opts = {"aws_endpoint_url": sys.argv[2], "aws_access_key_id": "bench",
        "aws_secret_access_key": "bench", "aws_region": "us-east-1", "aws_allow_http": "true"}
if sys.argv[1].startswith("http"):
    opts = None
df = (pl.scan_csv(sys.argv[1], storage_options=opts)
      .group_by("id1").agg(pl.col("v1").mean(), pl.col("v2").mean(), pl.col("v3").mean())
      .sort("id1").collect(engine="streaming"))
print(df.height)
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--brisk", default=os.path.join(HERE, "..", "target", "release", "brisk"))
    p.add_argument("--polars-python", help="a Python with polars")
    args = p.parse_args()

    server = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "..", "tests", "object_server.py"), "--bucket", "bench",
         "--files", os.path.dirname(os.path.abspath(args.data))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    endpoint = server.stdout.readline().split()[-1]
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_ENDPOINT_URL=endpoint)
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                          aws_secret_access_key="bench", region_name="us-east-1")
        s3.upload_file(args.data, "bench", "data.csv")
        q1 = ["groupby", "--by", "id1", "--agg", "v1:mean,v2:mean,v3:mean", "--progress", "never"]
        http = f"{endpoint}/_files/{os.path.basename(args.data)}"
        commands = {
            "brisk s3://": [args.brisk, q1[0], "s3://bench/data.csv", *q1[1:]],
            "brisk http://": [args.brisk, q1[0], http, *q1[1:]],
            "brisk local": [args.brisk, q1[0], args.data, *q1[1:]],
        }
        if args.polars_python:
            commands["polars s3://"] = [args.polars_python, "-c", POLARS_Q1,
                                        "s3://bench/data.csv", endpoint]
            commands["polars http://"] = [args.polars_python, "-c", POLARS_Q1, http, endpoint]
        times = {name: [] for name in commands}
        outputs = {}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                start = time.perf_counter()
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                times[name].append(time.perf_counter() - start)
                if out.returncode != 0:
                    sys.exit(f"{name} failed: {out.stderr}")
                outputs[name] = out.stdout
        if outputs["brisk http://"] != outputs["brisk s3://"]:
            sys.exit("brisk's answers differ between the two URLs")
        for name, t in times.items():
            kind = name.split()[-1]
            base = statistics.median(times[f"brisk {kind}"] if kind != "local" else t)
            m = statistics.median(t)
            print(f"{name:15} median {m:6.3f} s  (min {min(t):.3f}, max {max(t):.3f})  "
                  f"{m / base:5.2f}x brisk {kind}")
    finally:
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
