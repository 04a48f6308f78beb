package api

import (
	"crypto/fips140"
	"errors"

	"github.com/keymesh/keymesh/node/apiv1"
)

// ErrFIPSUnsupported is the answer of a node started with --fips
// (Info.FIPS) to every request that would authenticate an eth: party:
// EIP-712 and EIP-191 wallet signatures are secp256k1 ECDSA over Keccak-256
// digests, computed by go-ethereum, neither approved algorithms nor the Go
// Cryptographic Module's code, so GODEBUG=fips140=only does not stop them
// and the node must. The routes stay registered (the API's shape does not
// depend on a flag) and answer 403 fips_unsupported before the body is
// read, so no signature is parsed, hashed or recovered.
//
// 403 rather than 401: no credential is judged, a valid one would be
// refused the same; rather than 503: retrying does not help; rather than
// 501 or any 5xx: the node works as its operator configured it, and a 5xx
// would page the operator and make clients retry.
var ErrFIPSUnsupported = errors.New("this node runs with --fips: Ethereum wallet authentication (eth: parties, EIP-712/EIP-191 signatures with secp256k1 and Keccak-256) is outside the FIPS 140-3 claim and refused")

// fipsStatus reports the process's FIPS 140-3 mode and module, and, when
// the node was started with --fips (required), what that turns away.
func fipsStatus(required bool) apiv1.FIPSStatus {
	mode := "off"
	switch {
	case fips140.Enforced():
		mode = "only"
	case fips140.Enabled():
		mode = "on"
	}
	st := apiv1.FIPSStatus{Mode: mode, Module: fips140.Version(), Required: required}
	if required {
		st.Disabled = []string{apiv1.FIPSDisabledEthWallets}
	}
	return st
}
