#!/usr/bin/env bash
# Regenerates the Ethereum example contract's ABI, bytecode and Go bindings:
#   chaincode/ethereum/example/OrderBook.abi, OrderBook.bin, orderbook.go
# from OrderBook.sol. It installs the solc npm package (solcjs) into a
# temporary directory, compiles with a fixed configuration, then runs abigen
# (go-ethereum v1.17.10, --v2). The outputs are committed, so CI and users
# need neither solc nor abigen. Needs Node 18+ with npm, Go and network access
# to the npm registry and the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

SOLC_VERSION=0.8.37
ABIGEN=github.com/ethereum/go-ethereum/cmd/abigen@v1.17.10
dir=chaincode/ethereum/example

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "gen-eth-contract: installing solc@$SOLC_VERSION into $tmp" >&2
(cd "$tmp" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent "solc@$SOLC_VERSION" >/dev/null)

echo "gen-eth-contract: compiling $dir/OrderBook.sol" >&2
NODE_PATH="$tmp/node_modules" node - "$dir/OrderBook.sol" "$dir" <<'JS'
const fs = require('fs');
const path = require('path');
const solc = require('solc');
const [src, outDir] = process.argv.slice(2);
const input = {
  language: 'Solidity',
  sources: { 'OrderBook.sol': { content: fs.readFileSync(src, 'utf8') } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { OrderBook: ['abi', 'evm.bytecode.object'] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === 'error');
for (const e of out.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);
const c = out.contracts['OrderBook.sol'].OrderBook;
fs.writeFileSync(path.join(outDir, 'OrderBook.abi'), JSON.stringify(c.abi, null, 2) + '\n');
fs.writeFileSync(path.join(outDir, 'OrderBook.bin'), c.evm.bytecode.object + '\n');
console.error(`compiled with solc ${solc.version()}`);
JS

echo "gen-eth-contract: generating Go bindings with abigen --v2" >&2
go run "$ABIGEN" --v2 --abi "$dir/OrderBook.abi" --bin "$dir/OrderBook.bin" \
	--pkg example --type OrderBook --out "$dir/orderbook.go"
chmod 644 "$dir/orderbook.go"
gofmt -l "$dir" | (! grep .) || { echo "gen-eth-contract: gofmt needed" >&2; exit 1; }
echo "gen-eth-contract: wrote $dir/OrderBook.abi, OrderBook.bin, orderbook.go" >&2
