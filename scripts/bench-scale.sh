#!/usr/bin/env bash
# bench-scale.sh — how keymesh's costs grow with what a node holds.
#
# 1. scripts/benchscale against `keymeshd --dev` (one node on 127.0.0.1,
#    badger on disk): for keys, grants on one key, grants spread over 100
#    keys and audit entries, grown through the REST API to each of $SIZES,
#    it prints the growth rate and latency (the grant latency for grants),
#    restart time, idle RSS, encrypt/decrypt p50/p99, GET /v1/status and one
#    page of GET /v1/keys (and audit verify for audit entries).
# 2. scripts/benchsim -scale against a 2-node in-process mesh (in-memory
#    stores and transport) grown to each of $MESH_SIZES events: grant rate
#    and latency, propagation, two writers at once, catch-up of 10k missed
#    events, restart of the log, live heap.
# Every figure after the first size carries its growth exponent b
# (figure ∝ size^b: 0 flat, 1 linear).
#
# With BASE=<commit> the same measurements run first against that commit
# (built from a temporary git worktree), so both are measured in one run;
# the mesh part needs a commit whose packages this tree's benchsim builds
# against (main since the network package), and is skipped otherwise.
#
# Usage: scripts/bench-scale.sh
# Env:   SIZES       single-node sizes       (default 1000,10000)
#        MESH_SIZES  mesh log sizes (events) (default 1000,10000,100000)
#        DIMS        single-node dimensions  (default keys,grants-one,grants-spread,audit)
#        BASE        a baseline commit       (default none)
# 100k on the single node takes long on a 2-core machine (SIZES=1000,10000,100000).
set -euo pipefail

SIZES=${SIZES:-1000,10000}
MESH_SIZES=${MESH_SIZES:-1000,10000,100000}
DIMS=${DIMS:-keys,grants-one,grants-spread,audit}
BASE=${BASE:-}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/keymesh-scale.XXXXXX")
cleanup() {
	if [[ -n "$BASE" && -d "$TMP/base" ]]; then git worktree remove --force "$TMP/base" >/dev/null 2>&1 || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "machine: nproc=$(nproc) cpu=\"$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')\" load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" $(go version)"
go build -o "$TMP/benchscale" ./scripts/benchscale

measure() { # LABEL TREE
	local label=$1 tree=$2
	echo "bench-scale: building $label" >&2
	(cd "$tree" && go build -o "$TMP/keymeshd-$label" ./cmd/keymeshd)
	# benchsim -scale comes from this tree; it drives the other tree's packages.
	if [[ "$tree" != "$ROOT" ]]; then
		cp "$ROOT/scripts/benchsim/main.go" "$ROOT/scripts/benchsim/scale.go" "$tree/scripts/benchsim/"
	fi
	local sim=1
	if ! (cd "$tree" && go build -o "$TMP/benchsim-$label" ./scripts/benchsim); then
		# An older commit's packages may not have the API this tree's
		# benchsim uses (the mesh's signer, the network package).
		echo "bench-scale: this tree's benchsim does not build against $label; skipping its mesh figures" >&2
		sim=0
	fi
	echo "== $label: single node (SIZES=$SIZES), load $(cut -d' ' -f1-3 /proc/loadavg)"
	"$TMP/benchscale" -keymeshd "$TMP/keymeshd-$label" -sizes "$SIZES" -dims "$DIMS" | sed -u "s/^/$label /"
	if [[ $sim == 1 ]]; then
		echo "== $label: 2-node mesh (MESH_SIZES=$MESH_SIZES), load $(cut -d' ' -f1-3 /proc/loadavg)"
		"$TMP/benchsim-$label" -scale "$MESH_SIZES" | sed -u "s/^/$label /"
	fi
}

if [[ -n "$BASE" ]]; then
	git worktree add --detach "$TMP/base" "$BASE" >/dev/null
	measure base "$TMP/base"
fi
measure this "$ROOT"
