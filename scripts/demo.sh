#!/usr/bin/env bash
# Walks through keymesh across organisations on a devnet of its own (the one
# scripts/devnet.sh runs: Org1MSP with two nodes, Org2MSP, Org3MSP, real
# keymeshd processes on 127.0.0.1), printing each step:
#
#   create a key at Org1 → mint token:app at Org1 and grant it encrypt,decrypt
#   → encrypt at Org1 → grant org:Org2MSP decrypt → decrypt at Org2
#   → the second Org1 node decrypts (mirroring) → revoke org:Org2MSP
#   → encrypt again at Org1 → Org2 refused on what was written after the revoke
#   → destroy at Org1 → every node refuses → no acknowledgement outstanding.
#
# It tears the network down at the end, and exits non-zero as soon as a step
# does not behave as described. Every wait is bounded. Ports: BASE_PORT
# (default 18420) and P2P_BASE_PORT (default 19000); KEEP=1 keeps the
# devnet's directory (data, logs) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/devnet-lib.sh
source scripts/devnet-lib.sh

trap devnet_down EXIT
trap 'exit 130' INT TERM

devnet_up
# The state file is the devnet's interface to scripts.
# shellcheck source=/dev/null
source "$DEVNET_DIR/env.sh"
KM=$DEVNET_BIN/keymesh
TOKENS=$DEVNET_DIR/tokens
mkdir -m 700 "$TOKENS"

KEY=trade/price
CTX=(--context channel=trades --context field=price)
step_no=0
step() {
	step_no=$((step_no + 1))
	printf '\n== %d. %s\n' "$step_no" "$*"
}
ok() { printf '   ok: %s\n' "$*"; }
fail() {
	printf '   FAIL: %s\n' "$*" >&2
	for n in "${DEVNET_NODES[@]}"; do
		devnet_dump_log "$n"
	done
	exit 1
}

# admin NODE ARGS...: keymesh as NODE's operator (admin token file).
admin() { devnet_km "$@"; }
# app NODE TOKEN ARGS...: keymesh with an application token (file TOKENS/TOKEN-NODE).
app() {
	local n=$1 tok=$2
	shift 2
	"$KM" --addr "$(devnet_api "$n")" --token-file "$TOKENS/$tok-$n" "$@"
}
# mint NODE PARTY NAME: a client token for PARTY at NODE, into a file
# (the secret never appears on a command line).
mint() {
	admin "$1" token create --party "$2" --label demo -o json | jq -r .token >"$TOKENS/$3-$1"
	[[ -s $TOKENS/$3-$1 ]] || fail "token create for $2 at $1 gave no token"
}
# decrypts NODE TOKEN ENVELOPE WANT: the app at NODE decrypts to WANT.
decrypts() { [[ $(app "$1" "$2" decrypt "${CTX[@]}" --value "$3" 2>/dev/null) == "$4" ]]; }
# refused NODE TOKEN ENVELOPE: the node refuses (and prints why to $DEVNET_DIR/refusal).
refused() { ! app "$1" "$2" decrypt "${CTX[@]}" --value "$3" >/dev/null 2>"$DEVNET_DIR/refusal"; }
reason() { sed 's/^keymesh: //' "$DEVNET_DIR/refusal"; }
no_pending_acks() {
	admin org1 keys show "$KEY" -o json >"$DEVNET_DIR/key.json" &&
		jq -e '.state == "destroyed" and ((.pending_acks // []) | length == 0) and ((.holders // []) | length > 0)' "$DEVNET_DIR/key.json" >/dev/null
}

printf '\nkeymesh demo on network devnet (%s): org1 and org1b are Org1MSP, org2 is Org2MSP, org3 is Org3MSP\n' "$DEVNET_NETWORK_ID"
admin org1 nodes list

step "Org1 creates the key $KEY"
admin org1 keys create "$KEY" >/dev/null || fail "keys create"
ok "$(admin org1 keys show "$KEY" -o json | jq -r '"\(.name): owner \(.owner), state \(.state), version \(.latest_version)"')"

step "Org1 mints a token for its application token:app and grants it encrypt,decrypt"
mint org1 token:app app
admin org1 grant "$KEY" token:app --ops encrypt,decrypt >/dev/null || fail "grant token:app"
ok "token:app may encrypt and decrypt $KEY at Org1's nodes (token in a 0600 file)"

step "Org1's application encrypts a price"
ENV1=$(printf '%s' '100.25 USD' | app org1 app encrypt "$KEY" "${CTX[@]}") || fail "encrypt at org1"
[[ $ENV1 == km1:* ]] || fail "encrypt printed no envelope"
ok "envelope ${ENV1:0:40}… (written before any revoke)"

step "Org2's application cannot read it yet"
mint org2 token:reader reader
refused org2 reader "$ENV1" || fail "org2 decrypted before any grant"
ok "org2 refused: $(reason)"

step "Org1 grants org:Org2MSP decrypt"
admin org1 grant "$KEY" org:Org2MSP --ops decrypt >/dev/null || fail "grant org:Org2MSP"
ok "granted; the key travels to Org2's node wrapped for it (HPKE, ML-KEM-768 + P-256)"

step "Org2's application decrypts Org1's envelope (within 10 s)"
devnet_wait 10 "org2 decrypts" decrypts org2 reader "$ENV1" '100.25 USD' || fail "org2 could not decrypt within 10 s after the grant"
ok "org2 read: $(app org2 reader decrypt "${CTX[@]}" --value "$ENV1")"

step "Org3 was granted nothing and cannot read it"
mint org3 token:reader reader
refused org3 reader "$ENV1" || fail "org3 decrypted without a grant"
ok "org3 refused: $(reason)"

step "Org1's second node holds the key too (mirroring) and serves token:app"
mint org1b token:app app
devnet_wait 10 "org1b decrypts" decrypts org1b app "$ENV1" '100.25 USD' || fail "the second Org1 node could not decrypt within 10 s"
ok "org1b read: $(app org1b app decrypt "${CTX[@]}" --value "$ENV1")"

step "Org1 revokes org:Org2MSP (the key rotates at once)"
admin org1 revoke "$KEY" org:Org2MSP >/dev/null || fail "revoke org:Org2MSP"
ok "revoked; $(admin org1 keys show "$KEY" -o json | jq -r '"latest version now \(.latest_version)"')"

step "Org1's application encrypts again, after the revoke"
ENV2=$(printf '%s' '101.00 USD' | app org1 app encrypt "$KEY" "${CTX[@]}") || fail "encrypt at org1 after the revoke"
ok "envelope ${ENV2:0:40}…"

step "Org2 is refused on what was written after the revoke"
devnet_wait 10 "org2 refuses the new envelope" refused org2 reader "$ENV2" || fail "org2 decrypted an envelope written after its revoke"
ok "org2 refused: $(reason)"
# Not an assertion: what Org2 could read before the revoke was shared; its
# honest node also purges the key, so the old envelope stops opening there.
if refused org2 reader "$ENV1"; then
	ok "(org2's node purged the key: the old envelope is refused too: $(reason))"
fi

step "Org1's nodes still read the new envelope"
devnet_wait 10 "org1b decrypts v2" decrypts org1b app "$ENV2" '101.00 USD' || fail "org1b could not decrypt the post-revoke envelope within 10 s"
decrypts org1 app "$ENV2" '101.00 USD' || fail "org1 could not decrypt its own envelope"
ok "org1 and org1b read: 101.00 USD"

step "Org1 destroys the key (crypto-shredding)"
admin org1 keys destroy "$KEY" --confirm "$KEY" >/dev/null || fail "keys destroy"
ok "destroyed at org1"

step "Every node refuses, for both envelopes (within 10 s)"
for pair in org1:app org1b:app org2:reader org3:reader; do
	n=${pair%%:*} tok=${pair##*:}
	for env in "$ENV1" "$ENV2"; do
		devnet_wait 10 "$n refuses after the destroy" refused "$n" "$tok" "$env" || fail "$n still decrypts after the destroy"
	done
	ok "$n refused: $(reason)"
done

step "Org1's 'keys show' lists no outstanding destroy acknowledgement (within 15 s)"
devnet_wait 15 "every holder acknowledges the destroy" no_pending_acks || {
	admin org1 keys show "$KEY" >&2 || true
	fail "acknowledgements still outstanding after 15 s"
}
admin org1 keys show "$KEY"
ok "every holder ($(jq '.holders | length' "$DEVNET_DIR/key.json") nodes) deleted the key and acknowledged it"

printf '\ndemo: every step behaved as described; tearing the devnet down.\n'
