package node

import (
	"crypto/fips140"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
)

// ErrFIPSMode is returned by CheckFIPS (and so by Config.Validate with
// FIPS set) when the process does not run in FIPS 140-only mode.
var ErrFIPSMode = errors.New("node: FIPS mode requires the Go Cryptographic Module in FIPS 140-only mode")

// CheckFIPS reports whether the process runs with GODEBUG=fips140=only, the
// mode in which the Go Cryptographic Module refuses every non-approved
// algorithm (crypto/fips140.Enforced). FIPS 140-3 mode alone ("on", which
// GOFIPS140 builds default to) still allows non-approved algorithms, so it is
// not enough.
func CheckFIPS() error {
	if fips140.Enforced() {
		return nil
	}
	mode := "off"
	if fips140.Enabled() {
		mode = "on, not only"
	}
	return fmt.Errorf("%w: this process runs with fips140 %s (module %s); start keymeshd with GODEBUG=fips140=only, "+
		"on a binary built with GOFIPS140=v1.0.0 (the CMVP-certified module) or GOFIPS140=v1.26.0, or without --fips / fips / KEYMESH_FIPS",
		ErrFIPSMode, mode, fips140.Version())
}

// apiTLSConfig is the TLS configuration of the REST listener. In FIPS mode
// (--fips, or the process running with fips140=only) it allows TLS 1.2 and
// 1.3 with approved algorithms only: ECDHE with AES-GCM suites (TLS 1.3's
// suite list is not configurable in crypto/tls; in FIPS 140 mode it is
// TLS_AES_128_GCM_SHA256 and TLS_AES_256_GCM_SHA384), and key exchange over
// NIST curves, plain or hybrid with ML-KEM (SecP256r1MLKEM768,
// SecP384r1MLKEM1024, P-256, P-384); X25519, and the X25519MLKEM768 hybrid
// that Go's FIPS mode would still allow, are not offered. Otherwise it is
// Go's default with TLS 1.2 at least.
func apiTLSConfig(fips bool) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if fips || fips140.Enforced() {
		cfg.CipherSuites = []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		}
		cfg.CurvePreferences = []tls.CurveID{tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024, tls.CurveP256, tls.CurveP384}
	}
	return cfg
}

// logFIPS logs the FIPS 140-3 mode a --fips node runs in, and warns when the
// module is the toolchain's own tree ("latest"), which is not a frozen,
// validated module version.
func logFIPS(logger *slog.Logger) {
	v := fips140.Version()
	logger.Info("FIPS 140-only mode", "module", v)
	if v == "latest" {
		logger.Warn("FIPS 140-only mode on the toolchain's in-tree Go Cryptographic Module, which is not a validated version; build with GOFIPS140=v1.0.0 (CMVP certificate #5247) or GOFIPS140=v1.26.0 (in process)")
	}
}
