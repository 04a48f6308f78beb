package kmip

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig builds the server's TLS configuration: its certificate and key,
// and the CAs its clients' certificates must chain to (only these: not the
// system roots, not the REST API's). A client without a certificate that
// verifies against them is refused during the handshake. TLS 1.2 is the
// floor (KMIP's Baseline profiles name TLS 1.2); with fips the suites and
// groups are restricted to approved ones.
func TLSConfig(certFile, keyFile string, caFiles []string, fips bool) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("kmip: a server certificate and key are required")
	}
	if len(caFiles) == 0 {
		return nil, errors.New("kmip: at least one client CA is required")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("kmip: server certificate: %w", err)
	}
	pool := x509.NewCertPool()
	for _, f := range caFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("kmip: client CA: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("kmip: client CA %q holds no PEM certificate", f)
		}
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}
	if fips {
		cfg.CipherSuites = []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		}
		cfg.CurvePreferences = []tls.CurveID{tls.CurveP256, tls.CurveP384}
	}
	return cfg, nil
}
