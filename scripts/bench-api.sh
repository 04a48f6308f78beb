#!/usr/bin/env bash
# bench-api.sh — end-to-end REST API benchmark of keymesh's encrypt endpoint.
#
# Builds keymeshd, the keymesh CLI and the load generator (scripts/loadgen)
# into a temporary directory, starts a dev-mode daemon on a free loopback
# port, creates key bench/field, mints a client token for party token:bench
# with an encrypt+decrypt grant, then measures:
#   1. single-item encrypt (64 B plaintext) at concurrency $CONC for $DURATION
#   2. batch encrypt ($BATCH × 64 B items per request) at concurrency $BATCH_CONC
# and prints one result line for each, plus the machine it ran on and the
# daemon's memory after each run (VmHWM: its peak RSS so far). The daemon
# is stopped and the temporary directory removed on any exit.
#
# Usage: scripts/bench-api.sh
# Env:   DURATION   measured time per run          (default 10s)
#        WARMUP     warm-up before each run         (default 2s)
#        CONC       single-encrypt concurrency      (default 16)
#        BATCH_CONC batch-encrypt concurrency       (default 4)
#        BATCH      items per batch request         (default 1000, max 1000)
#        SIZE       plaintext bytes per item        (default 64)
#        DECRYPT=1  also measure decrypt, single and batch (default off)
#        BARE=0     skip the bare net/http handler (default on)
#        ROUNDS     rounds of keymesh then bare, interleaved (default 1)
#
# The bare handler (scripts/barehttp) is the ceiling: net/http and
# encoding/json with the same request and response types, one token check
# and one AES-256-GCM seal or open per item, no policy, audit or key
# versions. Each run prints keymesh's figure as a ratio of the bare one
# from the same round, with the load average after it.
#
# GOMAXPROCS is not pinned: the daemon and the load generator run on the same
# machine and share its cores, so the figures are for that set-up, not for a
# daemon with the machine to itself. Traffic only ever goes to 127.0.0.1.
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONC=${CONC:-16}
BATCH_CONC=${BATCH_CONC:-4}
BATCH=${BATCH:-1000}
SIZE=${SIZE:-64}
DECRYPT=${DECRYPT:-0}
BARE=${BARE:-1}
ROUNDS=${ROUNDS:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

for tool in go curl jq; do
	command -v "$tool" >/dev/null || { echo "bench-api: $tool is required" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/keymesh-bench.XXXXXX")
DAEMON_PID=""
BARE_PID=""

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n "$BARE_PID" ]]; then kill "$BARE_PID" 2>/dev/null || true; wait "$BARE_PID" 2>/dev/null || true; fi
	if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID" 2>/dev/null || true
		for _ in $(seq 1 100); do # up to 10 s for a graceful shutdown
			kill -0 "$DAEMON_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$DAEMON_PID" 2>/dev/null; then
			echo "bench-api: keymeshd did not stop in 10 s; killing it" >&2
			kill -KILL "$DAEMON_PID" 2>/dev/null || true
		fi
		wait "$DAEMON_PID" 2>/dev/null || true
	fi
	if [[ $rc -ne 0 && -s "$TMP/keymeshd.log" ]]; then
		echo "bench-api: failed (exit $rc); last lines of the keymeshd log:" >&2
		tail -n 20 "$TMP/keymeshd.log" >&2 || true
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() { echo "bench-api: $*" >&2; exit 1; }

umask 077
mkdir -p "$TMP/bin"

echo "bench-api: building keymeshd, keymesh and loadgen" >&2
go build -o "$TMP/bin/keymeshd" ./cmd/keymeshd
go build -o "$TMP/bin/keymesh" ./cmd/keymesh
go build -o "$TMP/bin/loadgen" ./scripts/loadgen
if [[ "$BARE" == 1 ]]; then go build -o "$TMP/bin/barehttp" ./scripts/barehttp; fi

# port_in_use PORT: something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_daemon: start keymeshd on the first free port from 18420 upward and
# wait (30 s at most) for it to be ready. A port taken between the probe and
# the bind makes the daemon exit; the next port is tried then.
start_daemon() {
	local port deadline
	for port in $(seq 18420 18499); do
		port_in_use "$port" && continue
		"$TMP/bin/keymeshd" --dev --data "$TMP/data" --listen "127.0.0.1:$port" --log-level warn \
			>"$TMP/keymeshd.log" 2>&1 &
		DAEMON_PID=$!
		URL="http://127.0.0.1:$port"
		deadline=$((SECONDS + 30))
		while ((SECONDS < deadline)); do
			if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
				wait "$DAEMON_PID" 2>/dev/null || true
				DAEMON_PID=""
				if grep -qi "address already in use" "$TMP/keymeshd.log"; then
					continue 2 # lost the race for this port
				fi
				die "keymeshd exited before it was ready: $(tail -n 5 "$TMP/keymeshd.log")"
			fi
			if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/readyz" || true)" == 200 ]]; then
				return 0
			fi
			sleep 0.2
		done
		die "keymeshd was not ready on $URL within 30 s"
	done
	die "no free port in 127.0.0.1:18420-18499"
}

# api METHOD PATH BODY WANT_STATUS HEADER_FILE: call the API; the response
# body goes to stdout; any other status than WANT_STATUS fails the script.
api() {
	local method=$1 path=$2 body=$3 want=$4 hdr=$5 code
	local args=(-sS -o "$TMP/resp.json" -w '%{http_code}' --max-time 30 -X "$method" -H @"$hdr")
	if [[ -n "$body" ]]; then
		args+=(-H 'Content-Type: application/json' --data "$body")
	fi
	code=$(curl "${args[@]}" "$URL$path") || die "$method $path: curl failed"
	[[ "$code" == "$want" ]] || die "$method $path: HTTP $code (want $want): $(head -c 1000 "$TMP/resp.json")"
	cat "$TMP/resp.json"
}

start_daemon
echo "bench-api: keymeshd (pid $DAEMON_PID) ready on $URL" >&2

# Tokens go in files (curl -H @file, loadgen -token-file), never in argv.
[[ -s "$TMP/data/admin.token" ]] || die "no admin token in $TMP/data/admin.token"
printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"$TMP/data/admin.token")" >"$TMP/admin.hdr"

# The daemon on $URL must be ours: only it knows this fresh admin token.
api GET /v1/status '' 200 "$TMP/admin.hdr" >/dev/null

api POST /v1/keys '{"name":"bench/field"}' 201 "$TMP/admin.hdr" >/dev/null
api POST /v1/tokens '{"party":"token:bench","label":"bench-api"}' 201 "$TMP/admin.hdr" |
	jq -er '.token' >"$TMP/client.token" || die "POST /v1/tokens: no token in the response"
api POST /v1/grants '{"key":"bench/field","party":"token:bench","ops":["encrypt","decrypt"]}' 201 "$TMP/admin.hdr" >/dev/null

# loadgen URL LABEL ARGS...: one load-generator run; its result line goes to
# stdout. A run with any failed request fails the script (after its line).
loadgen() {
	local url=$1 label=$2 line rc=0
	shift 2
	echo "bench-api: $label, $DURATION after $WARMUP warm-up" >&2
	line=$("$TMP/bin/loadgen" -url "$url" -token-file "$TMP/client.token" -key bench/field \
		-d "$DURATION" -warmup "$WARMUP" -size "$SIZE" "$@") || rc=$?
	if [[ $rc -ne 0 ]]; then
		[[ -n "$line" ]] && echo "$label: $line"
		die "$label: the load generator failed (exit $rc)"
	fi
	echo "$label: $line"
}

# rate LINE: the throughput figure of a loadgen line.
rate() { sed -E 's/^[^:]*: [a-z_]*(rps|per_s)=([0-9.]+).*/\2/' <<<"$1"; }

if [[ "$BARE" == 1 ]]; then
	for port in $(seq 18500 18519); do
		port_in_use "$port" && continue
		"$TMP/bin/barehttp" -listen "127.0.0.1:$port" -token-file "$TMP/client.token" 2>"$TMP/bare.log" &
		BARE_PID=$!
		BARE_URL="http://127.0.0.1:$port"
		for _ in $(seq 1 50); do
			port_in_use "$port" && break
			sleep 0.1
		done
		kill -0 "$BARE_PID" 2>/dev/null && break
		BARE_PID=""
	done
	[[ -n "$BARE_PID" ]] || die "the bare handler did not start: $(cat "$TMP/bare.log")"
fi

cpus=$(nproc)
model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
echo "machine: nproc=$cpus cpu=\"${model:-unknown}\" load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" $(go version)"
echo "note: GOMAXPROCS not pinned; the server and the load generator share the $cpus core(s) on loopback"

runs=("single encrypt ${SIZE} B c=$CONC|-c $CONC" "batch encrypt $BATCH x ${SIZE} B c=$BATCH_CONC|-c $BATCH_CONC -batch $BATCH")
if [[ "$DECRYPT" == 1 ]]; then
	runs+=("single decrypt ${SIZE} B c=$CONC|-op decrypt -c $CONC" "batch decrypt $BATCH x ${SIZE} B c=$BATCH_CONC|-op decrypt -c $BATCH_CONC -batch $BATCH")
fi
for round in $(seq 1 "$ROUNDS"); do
	for r in "${runs[@]}"; do
		label=${r%%|*}
		# shellcheck disable=SC2086 # the arguments are words
		km=$(loadgen "$URL" "keymesh $label" ${r#*|})
		echo "$km"
		echo "keymesh memory after $label (MiB): $(awk '/^(VmRSS|VmHWM|RssAnon|RssFile):/ {printf "%s%.1f ", $1, $2/1024}' "/proc/$DAEMON_PID/status")"
		if [[ "$BARE" == 1 ]]; then
			# shellcheck disable=SC2086
			bare=$(loadgen "$BARE_URL" "bare $label" ${r#*|})
			echo "$bare"
			awk -v a="$(rate "$km")" -v b="$(rate "$bare")" -v l="$label" -v n="$round" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" \
				'BEGIN { if (b > 0) printf "ratio round %d, %s: keymesh/bare = %.2f (load %s)\n", n, l, a / b, load }'
		fi
	done
done
