#!/usr/bin/env bash
# fabric-e2e.sh runs the keymesh asset-transfer chaincode on a real
# Hyperledger Fabric v2.5 network on 127.0.0.1, without Docker, and checks
# issue 10's scenario end to end.
#
#   usage: scripts/fabric-e2e.sh FABRIC_SRC
#
# FABRIC_SRC is a checkout of hyperledger/fabric at tag v2.5.16 (any v2.5
# should do). The script
#
#   1. builds peer, orderer, configtxgen, cryptogen, osnadmin, configtxlator
#      and the ccaas external builder from FABRIC_SRC (skipped for binaries
#      already in FABRIC_BIN, if set), and keymeshd, keymesh, asset-ccaas,
#      asset-client and fabricforge from this repository;
#   2. stands up one etcdraft orderer (channel participation, joined with
#      osnadmin), one peer each for Org1MSP and Org2MSP with TLS (cryptogen,
#      NodeOUs), the ccaas builder in each peer's core.yaml, two keymeshd in
#      one mesh (network genesis / init --genesis / node register), and one
#      chaincode-as-a-service server per org, each with its own node's
#      chaincode token; the chaincode "asset" is committed on "mychannel"
#      with the endorsement policy AND('Org1MSP.peer','Org2MSP.peer');
#   3. runs the scenario: create (committed VALID; no plaintext in either
#      peer's blocks, state or private databases); reads by a granted and an
#      ungranted identity of each org; a grant; rotation during concurrent
#      creates; a forged creator (a real certificate without its signature)
#      refused by the node; a CRL-revoked and a refused-NodeOU-role identity
#      refused; revocation of an endorsing org, after which client-sealed
#      writes keep working;
#   4. stops every process it started (also on failure or ^C).
#
# It exits non-zero on the first misstep, naming it. Every wait is bounded.
#
# Environment:
#   E2E_DIR         work directory (default: a new temporary directory)
#   E2E_PORT_BASE   first port of the range it uses on 127.0.0.1 (default
#                   27000; it uses BASE+50..BASE+81 and BASE+101..BASE+102,
#                   BASE+201..BASE+202)
#   FABRIC_BIN      directory with prebuilt Fabric binaries (and
#                   ccaas_builder/bin) to skip their build
#   KEEP=1          leave E2E_DIR behind
#
# Needs go, curl, jq, GNU tar, gzip, sha256sum. See docs/fabric-e2e.md.
set -euo pipefail

FABRIC_SRC=${1:?usage: scripts/fabric-e2e.sh FABRIC_SRC}
FABRIC_SRC=$(cd "$FABRIC_SRC" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${E2E_PORT_BASE:-27000}
T0=$SECONDS

# Ports.
ORDERER_PORT=$((B + 50)) ORDERER_ADMIN_PORT=$((B + 53))
PEER1_PORT=$((B + 51)) PEER1_CC_PORT=$((B + 52))
PEER2_PORT=$((B + 61)) PEER2_CC_PORT=$((B + 62))
ORDERER_OPS=$((B + 70)) PEER1_OPS=$((B + 71)) PEER2_OPS=$((B + 72))
CCAAS1_PORT=$((B + 80)) CCAAS2_PORT=$((B + 81))
export BASE_PORT=$((B + 100)) P2P_BASE_PORT=$((B + 200))

# shellcheck source=scripts/devnet-lib.sh
source "$ROOT/scripts/devnet-lib.sh"
# Two keymesh nodes, one per org, in one mesh.
DEVNET_NODES=(org1 org2)
declare -A DEVNET_ORG=([org1]=Org1MSP [org2]=Org2MSP)
DEVNET_ORGS=(Org1MSP Org2MSP)

log() { printf 'fabric-e2e [%4ds]: %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() {
	printf 'fabric-e2e [%4ds]: FAILED: %s\n' "$((SECONDS - T0))" "$*" >&2
	exit 1
}
step() {
	STEP_T=$SECONDS
	log "== $*"
}
done_step() { log "   ok ($((SECONDS - STEP_T))s)"; }

declare -a E2E_PIDS=()
cleanup() {
	local rc=$? pid
	set +e
	for pid in "${E2E_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${E2E_PIDS[@]}"; do
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	DEVNET_DIR= devnet_down # the keymesh directory lives in $W
	if [[ ${KEEP:-0} != 1 && ${E2E_CREATED:-0} == 1 ]]; then
		rm -rf "$W"
	else
		log "left $W in place"
	fi
	if ((rc == 0)); then
		log "PASSED in $((SECONDS - T0))s"
	fi
}

# wait_for SECONDS WHAT CMD...
wait_for() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs))
	while ((SECONDS < deadline)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	die "timed out after ${secs}s waiting for $what"
}

for tool in go curl jq tar gzip sha256sum; do
	command -v "$tool" >/dev/null || die "$tool is required"
done
if [[ -z ${E2E_DIR:-} ]]; then
	W=$(mktemp -d "${TMPDIR:-/tmp}/keymesh-fabric-e2e.XXXXXX")
	E2E_CREATED=1
else
	W=$E2E_DIR
	mkdir -p "$W"
	[[ -z $(ls -A "$W") ]] || die "E2E_DIR $W is not empty"
	E2E_CREATED=1
fi
W=$(cd "$W" && pwd)
export DEVNET_DIR=$W/keymesh
trap cleanup EXIT
trap 'exit 130' INT TERM
for p in $ORDERER_PORT $ORDERER_ADMIN_PORT $PEER1_PORT $PEER1_CC_PORT $PEER2_PORT $PEER2_CC_PORT $ORDERER_OPS $PEER1_OPS $PEER2_OPS $CCAAS1_PORT $CCAAS2_PORT; do
	devnet_port_free "$p" || die "port $p is in use; choose another E2E_PORT_BASE"
done

# ---------------------------------------------------------------- build
FB=${FABRIC_BIN:-$W/fabric-bin}
step "build Fabric binaries from $FABRIC_SRC into $FB"
mkdir -p "$FB"
need=()
for b in peer orderer configtxgen cryptogen osnadmin configtxlator; do
	[[ -x $FB/$b ]] || need+=("./cmd/$b")
done
if ((${#need[@]} > 0)); then
	(cd "$FABRIC_SRC" && nice -n 10 go build -o "$FB/" "${need[@]}") || die "building Fabric ${need[*]}"
fi
if [[ ! -x $FB/ccaas_builder/bin/release ]]; then
	mkdir -p "$FB/ccaas_builder/bin"
	(cd "$FABRIC_SRC/ccaas_builder" && nice -n 10 go build -o "$FB/ccaas_builder/bin/" ./cmd/detect ./cmd/build ./cmd/release) ||
		die "building the ccaas builder"
fi
"$FB/peer" version | grep -q 'Version: v\?2\.5\|Version: latest' || log "warning: peer version: $("$FB/peer" version | head -2 | tail -1)"
KB=$W/keymesh-bin
mkdir -p "$KB"
(cd "$ROOT" && go build -o "$KB/" ./cmd/keymeshd ./cmd/keymesh ./chaincode/fabric/example/cmd/asset-ccaas \
	./chaincode/fabric/example/cmd/asset-client ./scripts/fabricforge) || die "building keymesh binaries"
done_step

# ---------------------------------------------------------------- crypto material
step "crypto material (cryptogen) and channel genesis block (configtxgen)"
cat >"$W/crypto-config.yaml" <<EOF
OrdererOrgs:
  - Name: Orderer
    Domain: example.com
    EnableNodeOUs: true
    Specs:
      - Hostname: orderer
        SANS: [localhost, 127.0.0.1]
PeerOrgs:
  - Name: Org1
    Domain: org1.example.com
    EnableNodeOUs: true
    Template: {Count: 1, SANS: [localhost, 127.0.0.1]}
    Users: {Count: 2}
  - Name: Org2
    Domain: org2.example.com
    EnableNodeOUs: true
    Template: {Count: 1, SANS: [localhost, 127.0.0.1]}
    Users: {Count: 3}
EOF
"$FB/cryptogen" generate --config "$W/crypto-config.yaml" --output "$W/crypto" >/dev/null || die "cryptogen"
C=$W/crypto
ORD=$C/ordererOrganizations/example.com
P1=$C/peerOrganizations/org1.example.com
P2=$C/peerOrganizations/org2.example.com
ORDERER_CA=$ORD/orderers/orderer.example.com/tls/ca.crt

cat >"$W/configtx.yaml" <<EOF
Organizations:
  - &OrdererOrg
    Name: OrdererOrg
    ID: OrdererMSP
    MSPDir: $ORD/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Writers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Admins: {Type: Signature, Rule: "OR('OrdererMSP.admin')"}
    OrdererEndpoints: [127.0.0.1:$ORDERER_PORT]
  - &Org1
    Name: Org1MSP
    ID: Org1MSP
    MSPDir: $P1/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')"}
      Writers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.client')"}
      Admins: {Type: Signature, Rule: "OR('Org1MSP.admin')"}
      Endorsement: {Type: Signature, Rule: "OR('Org1MSP.peer')"}
    AnchorPeers: [{Host: 127.0.0.1, Port: $PEER1_PORT}]
  - &Org2
    Name: Org2MSP
    ID: Org2MSP
    MSPDir: $P2/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('Org2MSP.admin', 'Org2MSP.peer', 'Org2MSP.client')"}
      Writers: {Type: Signature, Rule: "OR('Org2MSP.admin', 'Org2MSP.client')"}
      Admins: {Type: Signature, Rule: "OR('Org2MSP.admin')"}
      Endorsement: {Type: Signature, Rule: "OR('Org2MSP.peer')"}
    AnchorPeers: [{Host: 127.0.0.1, Port: $PEER2_PORT}]
Capabilities:
  Channel: &ChannelCapabilities {V2_0: true}
  Orderer: &OrdererCapabilities {V2_0: true}
  Application: &ApplicationCapabilities {V2_5: true}
Application: &ApplicationDefaults
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    LifecycleEndorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
    Endorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
  Capabilities: *ApplicationCapabilities
Orderer: &OrdererDefaults
  OrdererType: etcdraft
  Addresses: [127.0.0.1:$ORDERER_PORT]
  EtcdRaft:
    Consenters:
      - Host: 127.0.0.1
        Port: $ORDERER_PORT
        ClientTLSCert: $ORD/orderers/orderer.example.com/tls/server.crt
        ServerTLSCert: $ORD/orderers/orderer.example.com/tls/server.crt
  BatchTimeout: 1s
  BatchSize: {MaxMessageCount: 50, AbsoluteMaxBytes: 99 MB, PreferredMaxBytes: 512 KB}
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    BlockValidation: {Type: ImplicitMeta, Rule: "ANY Writers"}
Channel: &ChannelDefaults
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
  Capabilities: *ChannelCapabilities
Profiles:
  ChannelUsingRaft:
    <<: *ChannelDefaults
    Orderer:
      <<: *OrdererDefaults
      Organizations: [*OrdererOrg]
      Capabilities: *OrdererCapabilities
    Application:
      <<: *ApplicationDefaults
      Organizations: [*Org1, *Org2]
      Capabilities: *ApplicationCapabilities
EOF
FABRIC_CFG_PATH=$W "$FB/configtxgen" -profile ChannelUsingRaft -outputBlock "$W/mychannel.block" -channelID mychannel 2>"$W/configtxgen.log" ||
	die "configtxgen (see $W/configtxgen.log)"
done_step

# ---------------------------------------------------------------- orderer and peers
step "start the orderer and join it to mychannel (osnadmin)"
mkdir -p "$W/orderer"
cp "$FABRIC_SRC/sampleconfig/orderer.yaml" "$W/orderer/"
OT=$ORD/orderers/orderer.example.com/tls
(
	export FABRIC_CFG_PATH=$W/orderer
	export ORDERER_GENERAL_LISTENADDRESS=127.0.0.1 ORDERER_GENERAL_LISTENPORT=$ORDERER_PORT
	export ORDERER_GENERAL_LOCALMSPID=OrdererMSP ORDERER_GENERAL_LOCALMSPDIR=$ORD/orderers/orderer.example.com/msp
	export ORDERER_GENERAL_TLS_ENABLED=true ORDERER_GENERAL_TLS_PRIVATEKEY=$OT/server.key
	export ORDERER_GENERAL_TLS_CERTIFICATE=$OT/server.crt ORDERER_GENERAL_TLS_ROOTCAS="[$OT/ca.crt]"
	export ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE=$OT/server.crt ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY=$OT/server.key
	export ORDERER_GENERAL_CLUSTER_ROOTCAS="[$OT/ca.crt]"
	export ORDERER_GENERAL_BOOTSTRAPMETHOD=none ORDERER_CHANNELPARTICIPATION_ENABLED=true
	export ORDERER_ADMIN_LISTENADDRESS=127.0.0.1:$ORDERER_ADMIN_PORT ORDERER_ADMIN_TLS_ENABLED=true
	export ORDERER_ADMIN_TLS_CERTIFICATE=$OT/server.crt ORDERER_ADMIN_TLS_PRIVATEKEY=$OT/server.key
	export ORDERER_ADMIN_TLS_ROOTCAS="[$OT/ca.crt]" ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED=true
	export ORDERER_ADMIN_TLS_CLIENTROOTCAS="[$OT/ca.crt]"
	export ORDERER_FILELEDGER_LOCATION=$W/orderer/ledger
	export ORDERER_CONSENSUS_WALDIR=$W/orderer/etcdraft/wal ORDERER_CONSENSUS_SNAPDIR=$W/orderer/etcdraft/snap
	export ORDERER_OPERATIONS_LISTENADDRESS=127.0.0.1:$ORDERER_OPS ORDERER_METRICS_PROVIDER=disabled
	exec "$FB/orderer"
) >"$W/orderer/orderer.log" 2>&1 </dev/null &
E2E_PIDS+=($!)
osn() { "$FB/osnadmin" "$@" -o "127.0.0.1:$ORDERER_ADMIN_PORT" --ca-file "$OT/ca.crt" --client-cert "$OT/server.crt" --client-key "$OT/server.key"; }
osn_list() { osn channel list >/dev/null; }
wait_for 30 "the orderer's admin endpoint" osn_list
osn channel join --channelID mychannel --config-block "$W/mychannel.block" >"$W/orderer/join.json" || die "osnadmin channel join"
done_step

step "start both peers (TLS, ccaas builder) and join them to mychannel"
# peer_env ORG: the environment of ORG's peer process.
peer_env() {
	local org=$1 dir port cc ops id
	if [[ $org == 1 ]]; then dir=$P1 port=$PEER1_PORT cc=$PEER1_CC_PORT ops=$PEER1_OPS; else dir=$P2 port=$PEER2_PORT cc=$PEER2_CC_PORT ops=$PEER2_OPS; fi
	id=peer0.org$org.example.com
	local t=$dir/peers/$id/tls
	cat <<EOF
export FABRIC_CFG_PATH=$W/peer$org
export CORE_PEER_ID=$id CORE_PEER_LOCALMSPID=Org${org}MSP CORE_PEER_MSPCONFIGPATH=$dir/peers/$id/msp
export CORE_PEER_ADDRESS=127.0.0.1:$port CORE_PEER_LISTENADDRESS=127.0.0.1:$port
export CORE_PEER_CHAINCODEADDRESS=127.0.0.1:$cc CORE_PEER_CHAINCODELISTENADDRESS=127.0.0.1:$cc
export CORE_PEER_GOSSIP_BOOTSTRAP=127.0.0.1:$port CORE_PEER_GOSSIP_EXTERNALENDPOINT=127.0.0.1:$port
export CORE_PEER_TLS_ENABLED=true CORE_PEER_TLS_CERT_FILE=$t/server.crt CORE_PEER_TLS_KEY_FILE=$t/server.key CORE_PEER_TLS_ROOTCERT_FILE=$t/ca.crt
export CORE_PEER_FILESYSTEMPATH=$W/peer$org/data CORE_LEDGER_SNAPSHOTS_ROOTDIR=$W/peer$org/snapshots
export CORE_OPERATIONS_LISTENADDRESS=127.0.0.1:$ops CORE_METRICS_PROVIDER=disabled
export CORE_VM_ENDPOINT= CORE_CHAINCODE_EXECUTETIMEOUT=60s
EOF
}
# as_admin ORG: the environment of ORG's admin CLI (peer commands).
as_admin() {
	local org=$1 dir port
	if [[ $org == 1 ]]; then dir=$P1 port=$PEER1_PORT; else dir=$P2 port=$PEER2_PORT; fi
	cat <<EOF
export FABRIC_CFG_PATH=$W/peer$org CORE_PEER_LOCALMSPID=Org${org}MSP
export CORE_PEER_MSPCONFIGPATH=$dir/users/Admin@org$org.example.com/msp
export CORE_PEER_ADDRESS=127.0.0.1:$port CORE_PEER_TLS_ENABLED=true
export CORE_PEER_TLS_ROOTCERT_FILE=$dir/peers/peer0.org$org.example.com/tls/ca.crt
EOF
}
for org in 1 2; do
	mkdir -p "$W/peer$org"
	sed "s#path: /opt/hyperledger/ccaas_builder#path: $FB/ccaas_builder#" "$FABRIC_SRC/sampleconfig/core.yaml" >"$W/peer$org/core.yaml"
	grep -q "path: $FB/ccaas_builder" "$W/peer$org/core.yaml" || die "could not set the ccaas builder in core.yaml"
	# shellcheck disable=SC2016
	bash -c "$(peer_env $org)"'; exec "$0" node start' "$FB/peer" >"$W/peer$org/peer.log" 2>&1 </dev/null &
	E2E_PIDS+=($!)
done
peer_cli() {
	local org=$1
	shift
	bash -c "$(as_admin "$org")"'; exec "$0" "$@"' "$FB/peer" "$@"
}
peer_up() { peer_cli "$1" channel list; }
wait_for 60 "peer0.org1" peer_up 1
wait_for 60 "peer0.org2" peer_up 2
for org in 1 2; do
	peer_cli $org channel join -b "$W/mychannel.block" >"$W/peer$org/join.log" 2>&1 || die "peer$org channel join (see $W/peer$org/join.log)"
done
peer_height() { peer_cli "$1" channel getinfo -c mychannel 2>/dev/null | sed 's/^Blockchain info: //' | jq -e '.height >= 1'; }
wait_for 60 "peer0.org1 on mychannel" peer_height 1
wait_for 60 "peer0.org2 on mychannel" peer_height 2
done_step

# ---------------------------------------------------------------- keymesh
step "two keymeshd in one mesh (Org1MSP owns the keys)"
# Both nodes trust both MSPs; Org2MSP's entry has NodeOUs on with only
# clients accepted as creators, and a CRL (made with Org2's CA key) that
# revokes User3@org2.
"$KB/fabricforge" -print crl -ca-cert "$P2/ca/ca.org2.example.com-cert.pem" -ca-key "$P2/ca/priv_sk" \
	-cert "$(ls "$P2"/users/User3@org2.example.com/msp/signcerts/*.pem)" >"$W/org2-crl.pem" || die "making Org2's CRL"
cat >"$W/keymeshd.yaml" <<EOF
fabric_msps:
  Org1MSP:
    cas: [$P1/ca/ca.org1.example.com-cert.pem]
    node_ous: {enable: true}
  Org2MSP:
    cas: [$P2/ca/ca.org2.example.com-cert.pem]
    crls: [$W/org2-crl.pem]
    node_ous: {enable: true, roles: [client]}
EOF
export KEYMESH_CONFIG=$W/keymeshd.yaml
unset KEYMESH_FABRIC_MSPS
devnet_setup
mkdir -p "$DEVNET_BIN"
cp "$KB/keymeshd" "$KB/keymesh" "$DEVNET_BIN/"
# The genesis (as devnet_genesis, but Org1MSP owns the asset namespace:
# since the mesh format 2, a key's owner org is fixed by the genesis).
mkdir -m 700 "$DEVNET_DIR/admin"
gargs=()
for org in "${DEVNET_ORGS[@]}"; do
	pub=$("$DEVNET_BIN/keymesh" org keygen --out "$DEVNET_DIR/admin/$org.key" -o json | jq -r .public_key)
	[[ $pub =~ ^[0-9a-f]{64}$ ]] || die "org keygen for $org printed no public key"
	gargs+=(--org "$org=$pub")
done
"$DEVNET_BIN/keymesh" network genesis --name fabric-e2e "${gargs[@]}" --namespace Org1MSP=asset \
	--out "$DEVNET_DIR/genesis.json" -o json >"$DEVNET_DIR/genesis.out" || die "network genesis"
DEVNET_NETWORK_ID=$(jq -r .network_id "$DEVNET_DIR/genesis.out")
boot=""
for n in org1 org2; do
	devnet_init_node "$n"
done
for n in org1 org2; do
	devnet_start_node "$n" "$boot"
	[[ -n $boot ]] || boot=$(devnet_km "$n" node show -o json | jq -r '.addrs[0]')
	devnet_register_node "$n"
done
for n in org1 org2; do
	wait_for 60 "$n to list both nodes" devnet_sees_all "$n"
done
KEYS=(asset/appraised-value asset/owner-pii asset/terms)
party() { "$KB/keymesh" fabric party --msp "$1" --cert "$2"; }
U1O1=$P1/users/User1@org1.example.com/msp U2O1=$P1/users/User2@org1.example.com/msp
U1O2=$P2/users/User1@org2.example.com/msp U2O2=$P2/users/User2@org2.example.com/msp
P_U1O1=$(party Org1MSP "$U1O1/signcerts/"*.pem)
P_U2O1=$(party Org1MSP "$U2O1/signcerts/"*.pem)
P_U1O2=$(party Org2MSP "$U1O2/signcerts/"*.pem)
P_U3O2=$(party Org2MSP "$P2/users/User3@org2.example.com/msp/signcerts/"*.pem)
P_ADMO2=$(party Org2MSP "$P2/users/Admin@org2.example.com/msp/signcerts/"*.pem)
log "   User1@org1 is $P_U1O1"
for k in "${KEYS[@]}"; do
	devnet_km org1 keys create "$k" >/dev/null || die "keys create $k"
	devnet_km org1 grant "$k" org:Org1MSP --ops encrypt >/dev/null || die "grant $k org:Org1MSP"
	devnet_km org1 grant "$k" org:Org2MSP --ops encrypt >/dev/null || die "grant $k org:Org2MSP"
	devnet_km org1 grant "$k" "$P_U1O1" --ops decrypt >/dev/null || die "grant $k User1@org1"
	devnet_km org1 grant "$k" "$P_U1O2" --ops decrypt --custodian Org2MSP >/dev/null || die "grant $k User1@org2"
	# Granted, but refused by Org2's CRL and NodeOU roles at the nodes:
	devnet_km org1 grant "$k" "$P_U3O2" --ops decrypt --custodian Org2MSP >/dev/null || die "grant $k User3@org2"
	devnet_km org1 grant "$k" "$P_ADMO2" --ops decrypt --custodian Org2MSP >/dev/null || die "grant $k Admin@org2"
done
holds_all() {
	local k
	for k in "${KEYS[@]}"; do
		devnet_km org2 keys show "$k" -o json | jq -e '.latest_version >= 1' >/dev/null || return 1
	done
}
wait_for 60 "org2's node to hold the keys" holds_all
declare -A CCTOKEN=()
for n in org1 org2; do
	CCTOKEN[$n]=$(devnet_km "$n" token create --party token:cc-asset --role chaincode --label asset-e2e \
		--channel mychannel --chaincode asset --msp Org1MSP --msp Org2MSP -o json | jq -r .token)
	[[ ${CCTOKEN[$n]} == kmt_* ]] || die "chaincode token on $n"
done
APPTOKEN=$(devnet_km org1 token create --party token:org1-app -o json | jq -r .token)
for k in asset/appraised-value asset/owner-pii; do
	devnet_km org1 grant "$k" token:org1-app --ops encrypt >/dev/null || die "grant $k token:org1-app"
done
done_step

# ---------------------------------------------------------------- chaincode
step "package, install, approve and commit the ccaas chaincode (AND policy), start one server per org"
declare -A PKG=()
for org in 1 2; do
	port=$CCAAS1_PORT
	[[ $org == 1 ]] || port=$CCAAS2_PORT
	mkdir -p "$W/cc$org"
	PKG[$org]=$("$ROOT/chaincode/fabric/example/ccaas/package.sh" asset_1.0 "127.0.0.1:$port" "$W/cc$org")
	peer_cli $org lifecycle chaincode install "$W/cc$org/asset_1.0.tar.gz" >"$W/cc$org/install.log" 2>&1 ||
		die "install on peer$org (see $W/cc$org/install.log)"
	n=org$org
	CHAINCODE_SERVER_ADDRESS=127.0.0.1:$port CORE_CHAINCODE_ID_NAME=${PKG[$org]} \
		KEYMESH_ADDR=$(devnet_api $n) KEYMESH_TOKEN=${CCTOKEN[$n]} \
		"$KB/asset-ccaas" >"$W/cc$org/ccaas.log" 2>&1 </dev/null &
	E2E_PIDS+=($!)
done
POLICY="AND('Org1MSP.peer','Org2MSP.peer')"
COLL=$ROOT/chaincode/fabric/example/ccaas/collections_config.json
ORD_ARGS=(-o "127.0.0.1:$ORDERER_PORT" --tls --cafile "$ORDERER_CA")
for org in 1 2; do
	peer_cli $org lifecycle chaincode approveformyorg "${ORD_ARGS[@]}" -C mychannel -n asset -v 1.0 --sequence 1 \
		--package-id "${PKG[$org]}" --signature-policy "$POLICY" --collections-config "$COLL" --waitForEvent \
		>"$W/cc$org/approve.log" 2>&1 || die "approveformyorg org$org (see $W/cc$org/approve.log)"
done
PEERS=(--peerAddresses "127.0.0.1:$PEER1_PORT" --tlsRootCertFiles "$P1/peers/peer0.org1.example.com/tls/ca.crt"
	--peerAddresses "127.0.0.1:$PEER2_PORT" --tlsRootCertFiles "$P2/peers/peer0.org2.example.com/tls/ca.crt")
peer_cli 1 lifecycle chaincode commit "${ORD_ARGS[@]}" -C mychannel -n asset -v 1.0 --sequence 1 \
	--signature-policy "$POLICY" --collections-config "$COLL" "${PEERS[@]}" --waitForEvent >"$W/commit.log" 2>&1 ||
	die "chaincode commit (see $W/commit.log)"
committed() { peer_cli "$1" lifecycle chaincode querycommitted -C mychannel -n asset; }
wait_for 30 "the definition on peer1" committed 1
wait_for 30 "the definition on peer2" committed 2
done_step

# ---------------------------------------------------------------- scenario
# client ORG USER ARGS...: asset-client as UserN@orgORG (USER "Admin":
# Admin@orgORG) through its org's gateway.
client() {
	local org=$1 user=$2 dir port
	shift 2
	if [[ $org == 1 ]]; then dir=$P1 port=$PEER1_PORT; else dir=$P2 port=$PEER2_PORT; fi
	[[ $user == Admin ]] || user=User$user
	local msp=$dir/users/$user@org$org.example.com/msp
	"$KB/asset-client" -gateway "127.0.0.1:$port" -tls-ca "$dir/peers/peer0.org$org.example.com/tls/ca.crt" \
		-msp "Org${org}MSP" -cert "$(ls "$msp"/signcerts/*.pem)" -key "$(ls "$msp"/keystore/*)" "$@"
}
expect_ok() {
	local what=$1
	shift
	"$@" >"$W/last.out" 2>&1 || { cat "$W/last.out" >&2; die "$what"; }
}
expect_fail() {
	local what=$1 want=$2
	shift 2
	if "$@" >"$W/last.out" 2>&1; then
		cat "$W/last.out" >&2
		die "$what: succeeded, want a failure mentioning \"$want\""
	fi
	grep -q -- "$want" "$W/last.out" || { cat "$W/last.out" >&2; die "$what: failed without \"$want\""; }
	log "   refused as expected: $(grep -o -- "$want.\{0,80\}" "$W/last.out" | head -1)"
}

step "wait until the gateway can endorse on both orgs (cross-org gossip and discovery)"
# Right after the channel join, peer1's discovery may not know Org2's peer
# yet; only that answer is retried, and only for a bounded time.
deadline=$((SECONDS + 90))
until client 1 1 create probe0 >"$W/probe.out" 2>&1; do
	grep -q "no combination of peers" "$W/probe.out" || { cat "$W/probe.out" >&2; die "the probe create failed"; }
	((SECONDS < deadline)) || die "discovery did not find both orgs' peers within 90s"
	sleep 2
done
done_step

step "create asset1 (User1@org1, endorsed by both orgs, committed VALID)"
expect_ok "create asset1" client 1 1 create asset1
expect_ok "read asset1 (public)" client 2 2 read asset1
grep -q '"ID":"asset1"' "$W/last.out" || die "ReadAsset did not return asset1"
done_step

step "the ledgers hold envelopes only"
for org in 1 2; do
	peer_cli $org channel fetch newest "$W/newest$org.block" -c mychannel >/dev/null 2>&1 || die "fetch newest block from peer$org"
done
# The asset-client's plaintexts (appraised value 300 is too common a byte string to grep).
for canary in 123-45-6789 alice@example.com; do
	if grep -rqa -- "$canary" "$W/peer1/data" "$W/peer2/data" "$W/newest1.block" "$W/newest2.block"; then
		die "plaintext \"$canary\" found in a peer's ledger"
	fi
	# Nor the keymesh nodes' stores and logs (they saw the signed proposals).
	if grep -rqa -- "$canary" "$DEVNET_DIR/org1" "$DEVNET_DIR/org2"; then
		die "plaintext \"$canary\" found in a keymesh node's data directory"
	fi
done
grep -qa 'km1:' "$W/newest1.block" || die "the newest block holds no km1: envelope"
done_step

step "reads by a granted and an ungranted identity of each org"
expect_ok "User1@org1 read-private" client 1 1 read-private asset1
grep -q '"appraisedValue":300' "$W/last.out" || { cat "$W/last.out" >&2; die "User1@org1 did not read the appraised value"; }
expect_fail "User2@org1 read-private" "not granted" client 1 2 read-private asset1
expect_ok "User1@org2 read-private" client 2 1 read-private asset1
grep -q '"appraisedValue":300' "$W/last.out" || die "User1@org2 did not read the appraised value"
expect_fail "User2@org2 read-private" "not granted" client 2 2 read-private asset1
done_step

step "certificate checks at Org2's node: a CRL-revoked and a refused-role identity, both granted"
expect_fail "User3@org2 (revoked by Org2's CRL) read-private" "certificate revoked" client 2 3 read-private asset1
expect_fail "Admin@org2 (NodeOU role admin, only client accepted) read-private" "role admin is not accepted" client 2 Admin read-private asset1
done_step

step "grant User2@org1 decrypt: it reads"
for k in "${KEYS[@]}"; do
	devnet_km org1 grant "$k" "$P_U2O1" --ops decrypt >/dev/null || die "grant $k User2@org1"
done
expect_ok "User2@org1 read-private after the grant" client 1 2 read-private asset1
done_step

step "rotation during concurrent creates"
declare -a CPIDS=()
for i in $(seq 1 8); do
	client 1 1 create "rot$i" >"$W/rot$i.out" 2>&1 &
	CPIDS+=($!)
	if ((i == 3)); then
		for k in "${KEYS[@]}"; do devnet_km org1 keys rotate "$k" >/dev/null || die "rotate $k"; done
	fi
done
failed=0
for i in "${!CPIDS[@]}"; do
	wait "${CPIDS[$i]}" || { failed=1; cat "$W/rot$((i + 1)).out" >&2; }
done
((failed == 0)) || die "a create during the rotation failed"
v2() { devnet_km org2 keys show asset/appraised-value -o json | jq -e '.latest_version >= 2'; }
wait_for 60 "org2's node to hold version 2" v2
# The rotated versions activate after the node's grace (5 s); creates after it use them.
sleep 6
expect_ok "create after the rotation" client 1 1 create rot9
expect_ok "read an asset created during the rotation" client 1 1 read-private rot5
done_step

step "a forged creator (User1@org1's real certificate, no signature) is refused by the node"
forged=$("$KB/fabricforge" -msp Org1MSP -cert "$(ls "$U1O1"/signcerts/*.pem)")
env1=$(jq -r .ciphertext <<<"$(curl -sf -H "Authorization: Bearer $APPTOKEN" -d '{"key":"asset/appraised-value","plaintext":"MzAw","context":{"f":"x"}}' "http://$(devnet_api org1)/v1/encrypt")")
[[ $env1 == km1:* ]] || die "encrypt for the forgery test"
body="{\"ciphertext\":\"$env1\",\"context\":{\"f\":\"x\"}}"
code=$(curl -s -o "$W/forged.json" -w '%{http_code}' -H "Authorization: Bearer ${CCTOKEN[org1]}" \
	-H "X-Keymesh-Fabric-Proposal: $forged" -d "$body" "http://$(devnet_api org1)/v1/decrypt")
[[ $code == 401 ]] && jq -e '.error.code == "invalid_creator"' "$W/forged.json" >/dev/null || die "forged proposal: HTTP $code $(cat "$W/forged.json")"
creator=$("$KB/fabricforge" -print creator -msp Org1MSP -cert "$(ls "$U1O1"/signcerts/*.pem)")
code=$(curl -s -o "$W/forged2.json" -w '%{http_code}' -H "Authorization: Bearer ${CCTOKEN[org1]}" \
	-H "X-Keymesh-Fabric-Creator: $creator" -d "$body" "http://$(devnet_api org1)/v1/decrypt")
[[ $code == 401 ]] || die "creator header alone: HTTP $code $(cat "$W/forged2.json")"
log "   forged proposal: 401 $(jq -r .error.message "$W/forged.json")"
done_step

step "revoke org:Org2MSP (rotates); client-sealed writes keep working"
for k in "${KEYS[@]}"; do
	devnet_km org1 revoke "$k" org:Org2MSP >/dev/null || die "revoke $k org:Org2MSP"
done
expect_fail "chaincode-sealed create without Org2's key" "does not hold version" client 1 1 create asset-after-revoke
expect_ok "client-sealed create after the revocation" client 1 1 -keymesh-addr "$(devnet_api org1)" -keymesh-token "$APPTOKEN" create-sealed sealed1
expect_ok "User1@org1 reads the client-sealed asset" client 1 1 read-private sealed1
grep -q '"appraisedValue":400' "$W/last.out" || { cat "$W/last.out" >&2; die "the client-sealed value did not read back"; }
done_step

log "every step passed"
