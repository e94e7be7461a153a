#!/usr/bin/env bash
# A Brisk cluster over ssh: the scheduler on the first host, one worker on each
# of the others, sharing a fresh token; Ctrl-C (or the end of this script's
# session) stops them all.
#
#   deploy/ssh-cluster.sh node1 node2 node3 node4
#   # then, where BRISK_TOKEN is the token printed:
#   brisk groupby 'data/*.csv' --by id1 --scheduler node1:8786
#
# `brisk` must be on each host's PATH; BRISK_PORT picks the scheduler's port.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 SCHEDULER_HOST WORKER_HOST..." >&2
    exit 2
fi
scheduler_host=$1
shift
BRISK_TOKEN=${BRISK_TOKEN:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}
port=${BRISK_PORT:-8786}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM

# The token goes on standard input, never on a command line other users can see.
echo "$BRISK_TOKEN" | ssh -tt "$scheduler_host" \
    "read -r BRISK_TOKEN && export BRISK_TOKEN && exec brisk scheduler --listen 0.0.0.0:$port" &
pids+=($!)
for host in "$@"; do
    echo "$BRISK_TOKEN" | ssh -tt "$host" \
        "read -r BRISK_TOKEN && export BRISK_TOKEN && exec brisk worker $scheduler_host:$port --listen 0.0.0.0:0" &
    pids+=($!)
done

export BRISK_TOKEN
brisk status --scheduler "$scheduler_host:$port" --wait-for "$#" --timeout 60
echo "cluster ready; with BRISK_TOKEN=$BRISK_TOKEN in the environment:"
echo "  brisk COMMAND ... --scheduler $scheduler_host:$port"
wait
