#!/usr/bin/env bash
# Runs keymesh's Ethereum example end to end on this machine: a `geth --dev`
# chain and a `keymeshd --dev` node, both bound to 127.0.0.1, then
# chaincode/ethereum/example/cmd/eth-demo (deploy OrderBook, place an order
# with an encrypted price and counterparty, read the event, decrypt it for a
# granted wallet by EIP-712 signature, refuse a stranger's wallet). It stops
# what it starts on exit, and removes its temporary directory.
#
# Environment:
#   GETH_PORT     geth's HTTP JSON-RPC port on 127.0.0.1 (default 18545)
#   KEYMESH_PORT  keymeshd's API port on 127.0.0.1 (default 18420)
#   GETH          a geth binary to use (default: geth on PATH, if it is v1.17.10)
#   GETH_INSTALL  0 to refuse installing geth when it is missing (default 1)
#   ETH_DEMO_JS   1 to also run the TypeScript client's OrderBook tests
#                 (clients/js) against the same chain and node, 0 not to;
#                 default: when node and clients/js/node_modules are there
#
# When no geth v1.17.10 is found, the script says where it will install it
# before it does: `go install` writes one binary (~90 MB; ~6 minutes on 2
# cores) to $(go env GOBIN), or $(go env GOPATH)/bin when GOBIN is unset,
# and nothing else outside the module cache.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="/usr/local/go/bin:$(go env GOPATH)/bin:$PATH"
GETH_VERSION=1.17.10
GETH_PORT=${GETH_PORT:-18545}
KEYMESH_PORT=${KEYMESH_PORT:-18420}
GETH_INSTALL=${GETH_INSTALL:-1}
ETH_DEMO_JS=${ETH_DEMO_JS:-auto}

for v in GETH_PORT KEYMESH_PORT; do
	p=${!v}
	if ! [[ "$p" =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
		echo "eth-demo: $v=$p is not a port number (1-65535)" >&2
		exit 1
	fi
done
if [ "$GETH_PORT" = "$KEYMESH_PORT" ]; then
	echo "eth-demo: GETH_PORT and KEYMESH_PORT are both $GETH_PORT; give them different values" >&2
	exit 1
fi
for p in "$GETH_PORT" "$KEYMESH_PORT"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "eth-demo: port $p on 127.0.0.1 is in use; set GETH_PORT / KEYMESH_PORT to free ports" >&2
		exit 1
	fi
done

geth_ok() { "$1" version 2>/dev/null | grep -q "^Version: $GETH_VERSION"; }
GETH=${GETH:-$(command -v geth || true)}
if [ -z "$GETH" ] || ! geth_ok "$GETH"; then
	gobin=$(go env GOBIN)
	gobin=${gobin:-$(go env GOPATH)/bin}
	if [ "$GETH_INSTALL" = "0" ]; then
		echo "eth-demo: no geth v$GETH_VERSION found (GETH=${GETH:-unset}), and GETH_INSTALL=0" >&2
		exit 1
	fi
	echo "eth-demo: no geth v$GETH_VERSION found (GETH=${GETH:-unset}, or geth on PATH)." >&2
	echo "eth-demo: installing it now with go install into $gobin/geth (~90 MB, a few minutes to build);" >&2
	echo "eth-demo: set GETH=/path/to/geth to use your own, or GETH_INSTALL=0 to stop here instead." >&2
	go install "github.com/ethereum/go-ethereum/cmd/geth@v$GETH_VERSION"
	GETH=$gobin/geth
fi
echo "eth-demo: using $GETH" >&2

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for TRIES CMD...: run CMD every 0.5 s until it succeeds, at most TRIES times.
wait_for() {
	local tries=$1
	shift
	for _ in $(seq "$tries"); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.5
	done
	return 1
}

echo "eth-demo: building keymeshd and the demo" >&2
go build -o "$work/keymeshd" ./cmd/keymeshd
go build -o "$work/eth-demo" ./chaincode/ethereum/example/cmd/eth-demo

echo "eth-demo: starting geth --dev on 127.0.0.1:$GETH_PORT" >&2
"$GETH" --dev --datadir "$work/geth" --http --http.addr 127.0.0.1 --http.port "$GETH_PORT" \
	--http.api eth,net,web3 --ipcdisable --port 0 --nodiscover --maxpeers 0 --verbosity 2 \
	>"$work/geth.log" 2>&1 </dev/null &
pids+=($!)

echo "eth-demo: starting keymeshd --dev on 127.0.0.1:$KEYMESH_PORT" >&2
"$work/keymeshd" --dev --data "$work/keymesh" --listen "127.0.0.1:$KEYMESH_PORT" \
	>"$work/keymeshd.log" 2>&1 </dev/null &
pids+=($!)

rpc() {
	curl -sf -H 'Content-Type: application/json' \
		-d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "http://127.0.0.1:$GETH_PORT"
}
if ! wait_for 60 rpc; then
	echo "eth-demo: geth did not answer within 30 s; its log:" >&2
	cat "$work/geth.log" >&2
	exit 1
fi
if ! wait_for 60 curl -sf "http://127.0.0.1:$KEYMESH_PORT/readyz" || ! wait_for 20 test -s "$work/keymesh/admin.token"; then
	echo "eth-demo: keymeshd was not ready within 30 s; its log:" >&2
	cat "$work/keymeshd.log" >&2
	exit 1
fi

js=()
if [ "$ETH_DEMO_JS" != "0" ]; then
	if command -v node >/dev/null 2>&1 && [ -d clients/js/node_modules/ethers ] && [ -d clients/js/node_modules/typescript ]; then
		echo "eth-demo: building clients/js (tsc)" >&2
		(cd clients/js && node node_modules/typescript/bin/tsc -p .)
		js=(-js "$PWD/clients/js" -timeout 4m)
	elif [ "$ETH_DEMO_JS" = "1" ]; then
		echo "eth-demo: ETH_DEMO_JS=1 needs node and clients/js/node_modules (npm ci in clients/js)" >&2
		exit 1
	else
		echo "eth-demo: not running the TypeScript client's tests (no node, or no clients/js/node_modules: npm ci in clients/js)" >&2
	fi
fi

"$work/eth-demo" -rpc "http://127.0.0.1:$GETH_PORT" -keymesh "127.0.0.1:$KEYMESH_PORT" \
	-admin-token-file "$work/keymesh/admin.token" "${js[@]}"
echo "eth-demo: done" >&2
