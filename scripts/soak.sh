#!/usr/bin/env bash
# soak.sh — memory soak of one keymeshd: encrypts mixed with grant/revoke.
#
# Starts `keymeshd --dev` on a free loopback port, creates key bench/field and
# a client token granted on it, then runs scripts/soakgen: $CONC workers, each
# owning one key and party pair; a fraction $ADMIN_FRAC of the requests are
# grant/revoke of the worker's pair (alternating), the rest single encrypts.
# It prints the daemon's RSS every $EVERY, then $IDLE of idle samples after
# the load, and a summary. With PPROF=127.0.0.1:PORT the daemon serves
# net/http/pprof there and a heap profile is saved to $HEAP_OUT at the end
# of the load.
#
# Usage: scripts/soak.sh
# Env:   DURATION   load duration           (default 3m)
#        CONC       workers                 (default 16)
#        ADMIN_FRAC grant/revoke fraction   (default 0.1)
#        EVERY      RSS sampling interval   (default 10s)
#        IDLE       idle time after the load, sampled (default 30s)
#        KEYMESHD   a prebuilt keymeshd to run (default: build this tree)
#        PPROF, HEAP_OUT  see above
#        CGROUP_MEM run keymeshd in a memory cgroup of this limit (e.g. 150M;
#                   needs a writable cgroup v1 memory controller or cgroup v2
#                   hierarchy); prints the cgroup's peak use, limit hits
#                   and OOM kills at the end
set -euo pipefail

DURATION=${DURATION:-3m}
CONC=${CONC:-16}
ADMIN_FRAC=${ADMIN_FRAC:-0.1}
EVERY=${EVERY:-10s}
IDLE=${IDLE:-30s}
HEAP_OUT=${HEAP_OUT:-}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

for tool in go curl jq; do
	command -v "$tool" >/dev/null || { echo "soak: $tool is required" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/keymesh-soak.XXXXXX")
DAEMON_PID=""
CGROUP_DIR=""

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID" 2>/dev/null || true
		for _ in $(seq 1 100); do # up to 10 s for a graceful shutdown
			kill -0 "$DAEMON_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$DAEMON_PID" 2>/dev/null; then
			echo "soak: keymeshd did not stop in 10 s; killing it" >&2
			kill -KILL "$DAEMON_PID" 2>/dev/null || true
		fi
		wait "$DAEMON_PID" 2>/dev/null || true
	fi
	if [[ $rc -ne 0 && -s "$TMP/keymeshd.log" ]]; then
		echo "soak: failed (exit $rc); last lines of the keymeshd log:" >&2
		tail -n 20 "$TMP/keymeshd.log" >&2 || true
	fi
	if [[ -n "$CGROUP_DIR" ]]; then
		rmdir "$CGROUP_DIR" 2>/dev/null || echo "soak: could not remove cgroup $CGROUP_DIR" >&2
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() { echo "soak: $*" >&2; exit 1; }

umask 077
mkdir -p "$TMP/bin"

if [[ -z "${KEYMESHD:-}" ]]; then
	echo "soak: building keymeshd" >&2
	go build -o "$TMP/bin/keymeshd" ./cmd/keymeshd
	KEYMESHD="$TMP/bin/keymeshd"
fi
echo "soak: building soakgen" >&2
go build -o "$TMP/bin/soakgen" ./scripts/soakgen

# cgroup_make LIMIT: a memory cgroup of LIMIT (numfmt IEC: 150M) under this
# shell's own, in $CGROUP_DIR; $CGROUP_V is 1 or 2.
cgroup_make() {
	local bytes path
	bytes=$(numfmt --from=iec "$1") || die "CGROUP_MEM=$1: not a size"
	path=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3; exit}' /proc/self/cgroup)
	if [[ -n "$path" && -d /sys/fs/cgroup/memory ]]; then
		CGROUP_V=1
		CGROUP_DIR=/sys/fs/cgroup/memory${path%/}/keymesh-soak-$$
		mkdir "$CGROUP_DIR" || die "cannot create cgroup $CGROUP_DIR"
		echo "$bytes" >"$CGROUP_DIR/memory.limit_in_bytes" || die "cannot set the limit of $CGROUP_DIR"
		return
	fi
	path=$(awk -F: '$1 == "0" {print $3; exit}' /proc/self/cgroup)
	[[ -n "$path" && -f /sys/fs/cgroup/cgroup.controllers ]] || die "CGROUP_MEM: no cgroup memory controller found"
	CGROUP_V=2
	CGROUP_DIR=/sys/fs/cgroup${path%/}/keymesh-soak-$$
	mkdir "$CGROUP_DIR" || die "cannot create cgroup $CGROUP_DIR"
	echo "$bytes" >"$CGROUP_DIR/memory.max" ||
		die "cannot set memory.max of $CGROUP_DIR (is the memory controller enabled in its parent's cgroup.subtree_control?)"
}

# cgroup_report: the cgroup's peak use, how often it hit its limit, OOM kills.
cgroup_report() {
	[[ -n "$CGROUP_DIR" ]] || return 0
	local d=$CGROUP_DIR
	if [[ $CGROUP_V == 1 ]]; then
		echo "cgroup (v1, limit $(numfmt --to=iec <"$d/memory.limit_in_bytes")): peak $(numfmt --to=iec <"$d/memory.max_usage_in_bytes")," \
			"limit hits $(cat "$d/memory.failcnt"), oom kills $(awk '$1 == "oom_kill" {print $2}' "$d/memory.oom_control")"
	else
		echo "cgroup (v2, limit $(numfmt --to=iec <"$d/memory.max")): peak $(numfmt --to=iec <"$d/memory.peak" 2>/dev/null || echo ?)," \
			"$(awk '{printf "%s %s ", $1, $2}' "$d/memory.events")"
	fi
}

# in_cgroup CMD...: run CMD in $CGROUP_DIR if there is one (same PID).
in_cgroup() {
	if [[ -z "$CGROUP_DIR" ]]; then
		exec "$@"
	fi
	echo "$BASHPID" >"$CGROUP_DIR/cgroup.procs" || die "cannot join $CGROUP_DIR"
	exec "$@"
}

if [[ -n "${CGROUP_MEM:-}" ]]; then
	cgroup_make "$CGROUP_MEM"
	echo "soak: keymeshd runs in $CGROUP_DIR, limit $CGROUP_MEM" >&2
	# A copy made inside the cgroup, as a container reads its image: the
	# binary's page cache is charged to the cgroup, so the daemon's RSS
	# is part of what the limit bounds.
	(in_cgroup cp "$KEYMESHD" "$TMP/bin/keymeshd-cgroup") || die "cannot copy $KEYMESHD"
	KEYMESHD="$TMP/bin/keymeshd-cgroup"
fi

# port_in_use PORT: something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_daemon: start keymeshd on the first free port from 18420 upward and
# wait (30 s at most) for it to be ready. A port taken between the probe and
# the bind makes the daemon exit; the next port is tried then.
start_daemon() {
	local port deadline
	for port in $(seq 18420 18499); do
		port_in_use "$port" && continue
		KEYMESHD_PPROF=${PPROF:-} in_cgroup "$KEYMESHD" --dev --data "$TMP/data" --listen "127.0.0.1:$port" --log-level warn \
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
echo "soak: keymeshd (pid $DAEMON_PID) ready on $URL" >&2
[[ -s "$TMP/data/admin.token" ]] || die "no admin token in $TMP/data/admin.token"
tr -d '[:space:]' <"$TMP/data/admin.token" >"$TMP/admin.token"
printf 'Authorization: Bearer %s\n' "$(cat "$TMP/admin.token")" >"$TMP/admin.hdr"
api GET /v1/status '' 200 "$TMP/admin.hdr" >/dev/null
api POST /v1/keys '{"name":"bench/field"}' 201 "$TMP/admin.hdr" >/dev/null
api POST /v1/tokens '{"party":"token:bench","label":"soak"}' 201 "$TMP/admin.hdr" |
	jq -er '.token' >"$TMP/client.token" || die "POST /v1/tokens: no token in the response"
api POST /v1/grants '{"key":"bench/field","party":"token:bench","ops":["encrypt","decrypt"]}' 201 "$TMP/admin.hdr" >/dev/null

rss() { awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s%.1f ", $1, $2/1024}' "/proc/$DAEMON_PID/status"; }
echo "machine: nproc=$(nproc) cpu=\"$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')\" load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" $(go version)"
echo "idle before load (MiB): $(rss)"
rc=0
"$TMP/bin/soakgen" -url "$URL" -admin-token-file "$TMP/admin.token" -token-file "$TMP/client.token" \
	-key bench/field -pid "$DAEMON_PID" -c "$CONC" -admin-frac "$ADMIN_FRAC" -d "$DURATION" -every "$EVERY" || rc=$?
if [[ -n "${PPROF:-}" && -n "$HEAP_OUT" ]]; then
	curl -sS --max-time 30 -o "$HEAP_OUT" "http://$PPROF/debug/pprof/heap?gc=1" && echo "heap profile: $HEAP_OUT"
fi
idle_s=$(( ${IDLE%s} ))
for ((i = 0; i < idle_s; i += 10)); do
	sleep 10
	echo "idle t=+$((i + 10))s (MiB): $(rss)"
done
cgroup_report
exit "$rc"
