# shellcheck shell=bash
# devnet-lib.sh is sourced by scripts/devnet.sh and scripts/demo.sh: it
# brings up (devnet_up) and tears down (devnet_down) a network of real
# keymeshd processes on 127.0.0.1 — one genesis, three organisations
# (Org1MSP, Org2MSP, Org3MSP), one node each, and a second node for Org1MSP:
#
#   node   org      API                   p2p
#   org1   Org1MSP  127.0.0.1:BASE_PORT+1  /ip4/127.0.0.1/tcp/P2P_BASE_PORT+1
#   org2   Org2MSP  127.0.0.1:BASE_PORT+2  /ip4/127.0.0.1/tcp/P2P_BASE_PORT+2
#   org3   Org3MSP  127.0.0.1:BASE_PORT+3  /ip4/127.0.0.1/tcp/P2P_BASE_PORT+3
#   org1b  Org1MSP  127.0.0.1:BASE_PORT+4  /ip4/127.0.0.1/tcp/P2P_BASE_PORT+4
#
# Environment:
#   DEVNET_DIR     where everything goes (default: a new temporary directory);
#                  it must not exist yet or be empty
#   BASE_PORT      API base port (default 18420: APIs on 18421..18424)
#   P2P_BASE_PORT  p2p base port (default 19000: p2p on 19001..19004)
#   KEEP=1         leave DEVNET_DIR (data, logs, keys) behind on teardown
#
# Layout of DEVNET_DIR: bin/ (keymeshd, keymesh), admin/<Org>.key (org admin
# private keys, 0600), genesis.json, <node>/ (data directory; admin.token,
# keymeshd.log), env.sh (the state file: addresses and token files, for
# scripts and for people).
#
# Needs go, curl and jq. Every wait is bounded.

DEVNET_NODES=(org1 org2 org3 org1b)
declare -A DEVNET_ORG=([org1]=Org1MSP [org2]=Org2MSP [org3]=Org3MSP [org1b]=Org1MSP)
DEVNET_ORGS=(Org1MSP Org2MSP Org3MSP)
declare -A DEVNET_PID=()
DEVNET_CREATED_DIR=0

devnet_log() { printf 'devnet: %s\n' "$*" >&2; }
devnet_die() {
	printf 'devnet: error: %s\n' "$*" >&2
	exit 1
}

# devnet_wait SECONDS WHAT CMD...: run CMD every 0.25 s until it succeeds;
# fail (return 1) after SECONDS.
devnet_wait() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs))
	while ((SECONDS < deadline)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.25
	done
	devnet_log "timed out after ${secs}s waiting for: $what"
	return 1
}

devnet_index() {
	local i
	for i in "${!DEVNET_NODES[@]}"; do
		if [[ ${DEVNET_NODES[$i]} == "$1" ]]; then
			echo $((i + 1))
			return 0
		fi
	done
	return 1
}
devnet_api() { echo "127.0.0.1:$((BASE_PORT + $(devnet_index "$1")))"; }
devnet_p2p() { echo "/ip4/127.0.0.1/tcp/$((P2P_BASE_PORT + $(devnet_index "$1")))"; }
devnet_token_file() { echo "$DEVNET_DIR/$1/admin.token"; }

# devnet_km NODE ARGS...: the keymesh CLI against NODE with its admin token.
devnet_km() {
	local n=$1
	shift
	"$DEVNET_BIN/keymesh" --addr "$(devnet_api "$n")" --token-file "$(devnet_token_file "$n")" "$@"
}

devnet_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

devnet_setup() {
	BASE_PORT=${BASE_PORT:-18420}
	P2P_BASE_PORT=${P2P_BASE_PORT:-19000}
	local tool
	for tool in go curl jq; do
		command -v "$tool" >/dev/null 2>&1 || devnet_die "$tool is required (jq: apt-get install jq)"
	done
	local n port
	for n in "${DEVNET_NODES[@]}"; do
		for port in "$((BASE_PORT + $(devnet_index "$n")))" "$((P2P_BASE_PORT + $(devnet_index "$n")))"; do
			devnet_port_free "$port" || devnet_die "port $port on 127.0.0.1 is in use; choose other ports with BASE_PORT / P2P_BASE_PORT"
		done
	done
	if [[ -z ${DEVNET_DIR:-} ]]; then
		DEVNET_DIR=$(mktemp -d "${TMPDIR:-/tmp}/keymesh-devnet.XXXXXX")
		DEVNET_CREATED_DIR=1
	elif [[ -e $DEVNET_DIR ]]; then
		[[ -d $DEVNET_DIR && -z $(ls -A "$DEVNET_DIR") ]] || devnet_die "DEVNET_DIR $DEVNET_DIR exists and is not empty"
		DEVNET_CREATED_DIR=1
	else
		mkdir -p "$DEVNET_DIR"
		DEVNET_CREATED_DIR=1
	fi
	DEVNET_DIR=$(cd "$DEVNET_DIR" && pwd)
	chmod 700 "$DEVNET_DIR"
	DEVNET_BIN=$DEVNET_DIR/bin
}

devnet_build() {
	devnet_log "building keymeshd and keymesh into $DEVNET_BIN"
	local root
	root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	(cd "$root" && go build -o "$DEVNET_BIN/keymeshd" ./cmd/keymeshd && go build -o "$DEVNET_BIN/keymesh" ./cmd/keymesh)
}

# devnet_genesis: an admin key pair per org, then the genesis. The genesis
# has no bootstrap list: every node but the first gets the first node's p2p
# address with --bootstrap instead (its peer id is known once it runs).
devnet_genesis() {
	mkdir -m 700 "$DEVNET_DIR/admin"
	local org pub args=()
	for org in "${DEVNET_ORGS[@]}"; do
		pub=$("$DEVNET_BIN/keymesh" org keygen --out "$DEVNET_DIR/admin/$org.key" -o json | jq -r .public_key)
		[[ $pub =~ ^[0-9a-f]{64}$ ]] || devnet_die "org keygen for $org printed no public key"
		args+=(--org "$org=$pub")
	done
	# Org1MSP owns the trade and demo namespaces: only its nodes manage trade/… keys.
	args+=(--namespace "${DEVNET_ORGS[0]}=trade" --namespace "${DEVNET_ORGS[0]}=demo")
	"$DEVNET_BIN/keymesh" network genesis --name devnet "${args[@]}" --out "$DEVNET_DIR/genesis.json" -o json >"$DEVNET_DIR/genesis.out"
	DEVNET_NETWORK_ID=$(jq -r .network_id "$DEVNET_DIR/genesis.out")
	devnet_log "genesis of network devnet, id $DEVNET_NETWORK_ID"
}

devnet_init_node() {
	local n=$1 d=$DEVNET_DIR/$1
	"$DEVNET_BIN/keymesh" init --data "$d" --org "${DEVNET_ORG[$n]}" --genesis "$DEVNET_DIR/genesis.json" \
		--admin-token-file "$d/admin.token" -o json >/dev/null
}

devnet_ready() { curl -sf "http://$(devnet_api "$1")/readyz" >/dev/null; }

# devnet_has_p2p NODE: the node's p2p host is up (it has a listen address).
devnet_has_p2p() {
	[[ $(devnet_km "$1" node show -o json | jq '.addrs | length') -gt 0 ]]
}

devnet_start_node() {
	local n=$1 boot=${2:-} d=$DEVNET_DIR/$1
	local args=(--data "$d" --listen "$(devnet_api "$n")" --p2p-listen "$(devnet_p2p "$n")")
	if [[ -n $boot ]]; then
		args+=(--bootstrap "$boot")
	fi
	devnet_log "starting $n (${DEVNET_ORG[$n]}) API $(devnet_api "$n") p2p $(devnet_p2p "$n")"
	"$DEVNET_BIN/keymeshd" "${args[@]}" >"$d/keymeshd.log" 2>&1 </dev/null &
	DEVNET_PID[$n]=$!
	echo "$n ${DEVNET_PID[$n]}" >>"$DEVNET_DIR/pids"
	if ! devnet_wait 30 "$n /readyz" devnet_ready "$n" || ! devnet_wait 15 "$n p2p host" devnet_has_p2p "$n"; then
		devnet_dump_log "$n"
		devnet_die "$n did not come up"
	fi
}

devnet_register_node() {
	local n=$1
	devnet_km "$n" node register --admin-key "$DEVNET_DIR/admin/${DEVNET_ORG[$n]}.key" -o json >"$DEVNET_DIR/$n/register.json" ||
		devnet_die "registering $n failed"
}

# devnet_sees_all NODE: NODE lists every devnet node, registered.
devnet_sees_all() {
	local want=${#DEVNET_NODES[@]}
	[[ $(devnet_km "$1" nodes list -o json | jq '[.nodes[] | select(.deregistered | not)] | length') -eq "$want" ]]
}

devnet_dump_log() {
	local f=$DEVNET_DIR/$1/keymeshd.log
	if [[ -f $f ]]; then
		devnet_log "last lines of $f:"
		tail -n 30 "$f" | sed "s/^/  [$1] /" >&2
	fi
}

devnet_write_env() {
	local f=$DEVNET_DIR/env.sh n up
	{
		echo "# keymesh devnet state, written by scripts/devnet-lib.sh; source it."
		printf 'DEVNET_DIR=%q\n' "$DEVNET_DIR"
		printf 'DEVNET_BIN=%q\n' "$DEVNET_BIN"
		printf 'DEVNET_NETWORK_ID=%q\n' "$DEVNET_NETWORK_ID"
		printf 'DEVNET_GENESIS=%q\n' "$DEVNET_DIR/genesis.json"
		printf 'DEVNET_NODES=(%s)\n' "${DEVNET_NODES[*]}"
		for n in "${DEVNET_NODES[@]}"; do
			up=${n^^}
			printf 'DEVNET_%s_ORG=%q\n' "$up" "${DEVNET_ORG[$n]}"
			printf 'DEVNET_%s_ADDR=%q\n' "$up" "$(devnet_api "$n")"
			printf 'DEVNET_%s_P2P=%q\n' "$up" "$(devnet_p2p "$n")"
			printf 'DEVNET_%s_TOKEN_FILE=%q\n' "$up" "$(devnet_token_file "$n")"
			printf 'DEVNET_%s_PID=%q\n' "$up" "${DEVNET_PID[$n]}"
		done
		for n in "${DEVNET_ORGS[@]}"; do
			printf 'DEVNET_ADMIN_KEY_%s=%q\n' "$n" "$DEVNET_DIR/admin/$n.key"
		done
	} >"$f"
}

# devnet_up builds, initialises, starts, registers and waits until every
# node lists every node.
devnet_up() {
	devnet_setup
	devnet_build
	devnet_genesis
	local n boot=""
	for n in "${DEVNET_NODES[@]}"; do
		devnet_init_node "$n"
	done
	for n in "${DEVNET_NODES[@]}"; do
		devnet_start_node "$n" "$boot"
		if [[ -z $boot ]]; then
			boot=$(devnet_km "$n" node show -o json | jq -r '.addrs[0]')
			devnet_log "bootstrap address: $boot"
		fi
		devnet_register_node "$n"
	done
	devnet_log "waiting until every node lists all ${#DEVNET_NODES[@]} nodes"
	for n in "${DEVNET_NODES[@]}"; do
		if ! devnet_wait 60 "$n to list every node" devnet_sees_all "$n"; then
			devnet_km "$n" nodes list >&2 || true
			devnet_dump_log "$n"
			devnet_die "the network did not converge"
		fi
	done
	devnet_write_env
}

devnet_summary() {
	local n
	echo
	echo "keymesh devnet: network devnet ($DEVNET_NETWORK_ID), ${#DEVNET_NODES[@]} nodes on 127.0.0.1"
	echo
	printf '  %-6s %-8s %-16s %-28s %s\n' NODE ORG API P2P "ADMIN TOKEN FILE"
	for n in "${DEVNET_NODES[@]}"; do
		printf '  %-6s %-8s %-16s %-28s %s\n' "$n" "${DEVNET_ORG[$n]}" "$(devnet_api "$n")" "$(devnet_p2p "$n")" "$(devnet_token_file "$n")"
	done
	echo
	echo "State file: $DEVNET_DIR/env.sh   Logs: $DEVNET_DIR/<node>/keymeshd.log"
	echo "Use the CLI against a node, e.g.:"
	echo
	for n in "${DEVNET_NODES[@]}"; do
		# shellcheck disable=SC2016 # $PATH and $(cat …) are for the reader's shell
		printf '  # %s\n  export PATH=%q:$PATH KEYMESH_ADDR=%s KEYMESH_TOKEN=$(cat %q)\n' "$n" "$DEVNET_BIN" "$(devnet_api "$n")" "$(devnet_token_file "$n")"
	done
	echo
	echo "  keymesh nodes list; keymesh status"
	echo
}

declare -A DEVNET_GONE=()

# devnet_alive: every node process is still running; a node found stopped
# is reported (once, with the end of its log).
devnet_alive() {
	local n ok=0
	for n in "${!DEVNET_PID[@]}"; do
		if ! kill -0 "${DEVNET_PID[$n]}" 2>/dev/null; then
			ok=1
			if [[ -z ${DEVNET_GONE[$n]:-} ]]; then
				DEVNET_GONE[$n]=1
				devnet_log "$n (pid ${DEVNET_PID[$n]}) has exited"
				devnet_dump_log "$n"
			fi
		fi
	done
	return "$ok"
}

# devnet_down stops every node it started (SIGTERM, then SIGKILL after
# 20 s) and removes DEVNET_DIR unless KEEP=1.
devnet_down() {
	local n pid deadline
	for n in "${!DEVNET_PID[@]}"; do
		kill -TERM "${DEVNET_PID[$n]}" 2>/dev/null || true
	done
	deadline=$((SECONDS + 20))
	for n in "${!DEVNET_PID[@]}"; do
		pid=${DEVNET_PID[$n]}
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.2
		done
		if kill -0 "$pid" 2>/dev/null; then
			devnet_log "$n (pid $pid) did not stop within 20s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	DEVNET_PID=()
	if [[ -n ${DEVNET_DIR:-} && -d $DEVNET_DIR ]]; then
		if [[ ${KEEP:-0} == 1 || $DEVNET_CREATED_DIR != 1 ]]; then
			devnet_log "left $DEVNET_DIR in place"
		else
			rm -rf "$DEVNET_DIR"
		fi
	fi
}
