package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"
)

func TestConfigFIPS(t *testing.T) {
	t.Parallel()
	c := Config{DataDir: "d", Listen: "127.0.0.1:1", FIPS: true}
	c.Defaults()
	err := c.Validate()
	if fips140.Enforced() {
		if err != nil {
			t.Fatalf("Validate(fips) under fips140=only = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, ErrFIPSMode) {
		t.Fatalf("Validate(fips) = %v, want %v", err, ErrFIPSMode)
	}
	var env Config
	if err := env.LoadEnv(func(k string) string { return map[string]string{"KEYMESH_FIPS": "true"}[k] }); err != nil || !env.FIPS {
		t.Fatalf("LoadEnv(KEYMESH_FIPS=true) = %v, FIPS %v", err, env.FIPS)
	}
}

// selfSigned returns a P-256 certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keymesh test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestAPITLSConfigFIPS handshakes with the REST listener's FIPS TLS
// configuration on 127.0.0.1: approved suites and groups connect, ChaCha20,
// CBC and X25519 (plain or hybrid) do not.
func TestAPITLSConfigFIPS(t *testing.T) {
	t.Parallel()
	cfg := apiTLSConfig(true)
	for _, id := range cfg.CipherSuites {
		if name := tls.CipherSuiteName(id); !slices.Contains([]string{
			"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
			"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		}, name) {
			t.Errorf("FIPS suite %s is not an approved AES-GCM ECDHE suite", name)
		}
	}
	if slices.Contains(cfg.CurvePreferences, tls.X25519) || slices.Contains(cfg.CurvePreferences, tls.X25519MLKEM768) {
		t.Errorf("FIPS groups %v include X25519", cfg.CurvePreferences)
	}
	if def := apiTLSConfig(false); !fips140.Enforced() && (def.CipherSuites != nil || def.CurvePreferences != nil) {
		t.Errorf("default TLS config restricts suites %v / groups %v", def.CipherSuites, def.CurvePreferences)
	}

	cfg.Certificates = []tls.Certificate{selfSigned(t)}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	dial := func(c *tls.Config) (tls.ConnectionState, error) {
		c.InsecureSkipVerify = true
		d := &net.Dialer{Timeout: 10 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), c)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.ConnectionState(), nil
	}
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"ok/tls13-default", &tls.Config{}, true},
		{"ok/tls12-aes-gcm-p256", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, CurvePreferences: []tls.CurveID{tls.CurveP256}}, true},
		{"ok/tls13-p384", &tls.Config{MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.CurveP384}}, true},
		{"fail/tls12-chacha20", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, false},
		{"fail/tls12-cbc", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}, false},
		{"fail/tls13-x25519", &tls.Config{MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519}}, false},
		{"fail/tls13-x25519mlkem768", &tls.Config{MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}}, false},
		{"fail/tls11", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st tls.ConnectionState
			var err error
			// The client side is the test's: under fips140=only it could
			// not even offer what the server must refuse.
			fips140.WithoutEnforcement(func() { st, err = dial(tc.cfg) })
			if (err == nil) != tc.ok {
				t.Fatalf("handshake = %v, want ok=%v", err, tc.ok)
			}
			if err == nil {
				suite := tls.CipherSuiteName(st.CipherSuite)
				if st.Version == tls.VersionTLS13 && suite == "TLS_CHACHA20_POLY1305_SHA256" {
					t.Errorf("negotiated %s", suite)
				}
				if st.CurveID == tls.X25519 || st.CurveID == tls.X25519MLKEM768 {
					t.Errorf("negotiated group %v", st.CurveID)
				}
				t.Logf("%s, %v", suite, st.CurveID)
			}
		})
	}
}
