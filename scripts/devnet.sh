#!/usr/bin/env bash
# Starts a three-organisation keymesh network of real keymeshd processes on
# 127.0.0.1 and keeps it up until interrupted (Ctrl-C, SIGTERM): one
# genesis, orgs Org1MSP, Org2MSP and Org3MSP with one node each, and a
# second node for Org1MSP. On exit it stops every node and removes its
# directory, unless KEEP=1.
#
# It builds keymeshd and keymesh, makes an admin key per org (keymesh org
# keygen), the genesis (keymesh network genesis), initialises each node
# (keymesh init --genesis), starts it (keymeshd --p2p-listen, and for all
# but the first --bootstrap <the first node's p2p address>), registers it
# (keymesh node register --admin-key), waits until every node lists every
# node, and prints how to use the CLI against each node. The state file
# $DEVNET_DIR/env.sh holds the addresses and token files for scripts.
#
# Environment: DEVNET_DIR, BASE_PORT (18420), P2P_BASE_PORT (19000), KEEP;
# see scripts/devnet-lib.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/devnet-lib.sh
source scripts/devnet-lib.sh

trap devnet_down EXIT
trap 'exit 130' INT TERM

devnet_up
devnet_summary
echo "devnet is up; press Ctrl-C to stop it."
# Runs until interrupted. A node that stops (say, one killed to try
# failover) is reported once; the others keep running.
while :; do
	devnet_alive || true
	sleep 2
done
