#!/usr/bin/env bash
# hostile-memory.sh — RSS of a keymeshd under malformed input from callers
# that hold a token but no grant, and after the attack.
#
# Starts a dev-mode keymeshd ($KEYMESHD, or one built from this tree) on a
# free loopback port, mints a client token with no grant, then sends
# $ROUNDS rounds of hostile requests with $CONC in parallel: 4 MiB junk and
# nearly-4 MiB valid-shaped bodies to encrypt, decrypt and key routes, deep
# JSON nesting, 1,000-item batches of junk envelopes, and bad tokens. It
# prints the daemon's RSS (VmRSS) before, the highest seen during, and
# $SETTLE after the attack. Only 127.0.0.1 is contacted; the daemon and the
# temporary directory are removed on exit.
#
# Usage: scripts/hostile-memory.sh
# Env:   KEYMESHD  daemon binary (default: go build ./cmd/keymeshd)
#        ROUNDS    rounds of the request mix (default 40)
#        CONC      parallel requests (default 16)
#        SETTLE    idle time before the last reading (default 30s)
set -euo pipefail

ROUNDS=${ROUNDS:-40}
CONC=${CONC:-16}
SETTLE=${SETTLE:-30s}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

bin=${KEYMESHD:-}
if [ -z "$bin" ]; then
	go build -o "$tmp/keymeshd" ./cmd/keymeshd
	bin=$tmp/keymeshd
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" --dev --data "$tmp/data" --listen "127.0.0.1:$port" --log-level error >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -f "$tmp/data/admin.token" ] && curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
url=http://127.0.0.1:$port
admin=$(cat "$tmp/data/admin.token")
curl -sf -H "Authorization: Bearer $admin" "$url/v1/keys" -d '{"name":"victim/k"}' >/dev/null
app=$(curl -sf -H "Authorization: Bearer $admin" "$url/v1/tokens" -d '{"party":"token:mallory"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')

python3 - "$tmp" <<'EOF'
import base64, json, sys
d = sys.argv[1]
big = "A" * (4 * 1024 * 1024 - 200)
open(d + "/b1", "w").write('{"key":"victim/k","plaintext":"' + big + '","context":{"f":"x"}}')
open(d + "/b2", "w").write('{"ciphertext":"km1:' + big + '"}')
open(d + "/b3", "w").write("[" * (4 * 1024 * 1024 - 16))
open(d + "/b4", "w").write(json.dumps({"batch": [{"ciphertext": "km1:" + "A" * 3000} for _ in range(1000)]}))
open(d + "/b5", "w").write('{"name":"' + "n" * (4 * 1024 * 1024 - 32) + '"}')
open(d + "/b6", "w").write("\x00\xff" * (2 * 1024 * 1024 - 8))
EOF

rss() { awk '/VmRSS/{print $2}' "/proc/$pid/status"; }
before=$(rss)
peak=$before
reqs() {
	for _ in $(seq "$ROUNDS"); do
		echo "encrypt b1 $app"; echo "decrypt b2 $app"; echo "decrypt b3 $app"; echo "decrypt b4 $app"
		echo "encrypt b5 $app"; echo "keys b5 $admin"; echo "decrypt b6 $app"; echo "encrypt b1 kmt_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	done
}
reqs | xargs -P "$CONC" -L 1 sh -c 'curl -s -o /dev/null -H "Authorization: Bearer $2" --data-binary @'"$tmp"'/$1 '"$url"'/v1/$0' &
load=$!
while kill -0 "$load" 2>/dev/null; do
	r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
	sleep 0.2
done
wait "$load" || true
sleep "$SETTLE"
after=$(rss)
echo "hostile-memory: $((ROUNDS * 8)) requests at concurrency $CONC on $(nproc) cores ($(go env GOVERSION 2>/dev/null || true))"
echo "RSS before ${before} KiB, peak ${peak} KiB, ${SETTLE} after ${after} KiB"
