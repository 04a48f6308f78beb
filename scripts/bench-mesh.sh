#!/usr/bin/env bash
# bench-mesh.sh — mesh latency benchmark: N keymesh nodes (one organisation
# each) with real libp2p hosts on 127.0.0.1, in one process per N
# (scripts/benchmesh), for N = 10, 30 and 50. It prints
#
#   # machine: ...                          (nproc, CPU, memory, Go, load)
#   N=<n> grant_p50_ms=… grant_p99_ms=… revoke_p50_ms=… revoke_p99_ms=…
#   catchup_<count>_ms=…                    (at the smallest N; see its # line)
#
# plus '#' comment lines with the network formation time, RSS, CPU use and
# the spread of each measurement. What is timed (see scripts/benchmesh):
#   grant   a grant of org:OrgK (decrypt) at org1's REST API → OrgK's node holds
#           the key's current version and its policy allows OrgK
#   revoke  a revoke of org:OrgK at org1 (rotates the key) → every node's fold
#           holds the revocation and the new version and denies OrgK, and
#           OrgK's node holds no version of the key
#   catchup a node is stopped, org1 issues CATCHUP grants, the node restarts on
#           its data directory → its log height equals org1's
# Grants and revokes alternate round-robin over Org2..OrgN, OPS of each, on a
# fresh key every 10 pairs; nodes are polled in-process every millisecond.
#
# Usage: scripts/bench-mesh.sh [extra benchmesh flags, e.g. -dir /dev/shm]
# Env:   NS       network sizes            (default 10,30,50)
#        OPS      grant/revoke pairs per N (default 50, at least 50 for the record)
#        CATCHUP  events missed by the stopped node (default 1000)
#        TIMEOUT  overall bound            (default 15m)
#
# Everything listens on 127.0.0.1 only; data lives in temporary directories
# that are removed at the end. The script exits non-zero if the network does
# not form, an operation does not become visible within 30 s, or the overall
# bound is reached. Nodes share this machine's cores and disk: every node
# fsyncs every event, so the figures include N nodes' disk flushes on one
# device, which a real deployment spreads over N machines.
set -euo pipefail

NS=${NS:-10,30,50}
OPS=${OPS:-50}
CATCHUP=${CATCHUP:-1000}
TIMEOUT=${TIMEOUT:-15m}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
command -v go >/dev/null || { echo "bench-mesh: go is required" >&2; exit 1; }

# The program bounds itself (-timeout, a minute under TIMEOUT, leaving room to
# compile); timeout(1) is the backstop, and kills the process group.
secs() {
	case $1 in
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}
total=$(secs "$TIMEOUT")
inner=$((total > 180 ? total - 60 : total * 2 / 3))

exec timeout --kill-after=30s "$total" \
	go run ./scripts/benchmesh -n "$NS" -ops "$OPS" -catchup "$CATCHUP" -timeout "${inner}s" "$@"
