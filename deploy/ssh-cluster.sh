#!/usr/bin/env bash
# A Brisk cluster over ssh: the scheduler on the first host, one worker on each
# of the others, sharing a fresh token; Ctrl-C (or the end of this script's
# session) stops them all.
#
#   deploy/ssh-cluster.sh node1 node2 node3 node4
#   # then, in another shell:
#   BRISK_TOKEN=$(cat ~/.brisk-token) brisk groupby 'data/*.csv' --by id1 --scheduler node1:8786
#
# `brisk` must be on each host's PATH; BRISK_PORT picks the scheduler's port.
# The token goes to each host in a file only its user can read (~/.brisk-token),
# never on a command line, where other users could see it.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 SCHEDULER_HOST WORKER_HOST..." >&2
    exit 2
fi
scheduler_host=$1
shift
port=${BRISK_PORT:-8786}
token_file="$HOME/.brisk-token"
(umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$token_file")

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
# Each host gets the token (no terminal: nothing echoed), then the process,
# with a terminal so that it ends when this script does.
start() {
    local host=$1 command=$2
    ssh -T "$host" 'umask 077 && cat > ~/.brisk-token' < "$token_file"
    ssh -tt "$host" "export BRISK_TOKEN=\$(cat ~/.brisk-token) && exec $command" < /dev/null &
    pids+=($!)
}
start "$scheduler_host" "brisk scheduler --listen 0.0.0.0:$port"
for host in "$@"; do
    start "$host" "brisk worker $scheduler_host:$port --listen 0.0.0.0:0"
done

BRISK_TOKEN=$(cat "$token_file") brisk status --scheduler "$scheduler_host:$port" --wait-for "$#" --timeout 60
echo "cluster ready: BRISK_TOKEN=\$(cat $token_file) brisk COMMAND ... --scheduler $scheduler_host:$port"
wait
