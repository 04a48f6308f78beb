package network

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

// opensslKey is the output of `openssl genpkey -algorithm ed25519` (a
// throwaway test key), to pin that the admin key file is OpenSSL's format.
const opensslKey = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAiK/V0EKL9YS+cpBUXSuKoBx1kXIimyI623AB5+pQ4d
-----END PRIVATE KEY-----
`

// opensslPub is its public key, from `openssl pkey -pubout`.
const opensslPub = "f1f8e4a7125c421cbad60dce08fa03fdbf3850e4fa0015b2160bcc491ee13f48"

func TestAdminKeyFile(t *testing.T) {
	t.Parallel()
	data, err := MarshalAdminKey(adminPriv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----\n")) || !bytes.HasSuffix(data, []byte("-----END PRIVATE KEY-----\n")) {
		t.Errorf("MarshalAdminKey = %q", data)
	}
	priv, err := ParseAdminKey(data)
	if err != nil || !priv.Equal(adminPriv) {
		t.Fatalf("ParseAdminKey(MarshalAdminKey(k)) = %v", err)
	}
	ok, err := ParseAdminKey([]byte(opensslKey))
	if err != nil {
		t.Fatalf("ParseAdminKey(openssl output) = %v", err)
	}
	if got := NodeKey(ok.Public().(ed25519.PublicKey)).Hex(); got != opensslPub {
		t.Errorf("public key of the openssl key = %s, want %s", got, opensslPub)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(nodePriv)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for name, in := range map[string]string{
		"empty":            "",
		"no-newline":       strings.TrimSuffix(s, "\n"),
		"crlf":             strings.ReplaceAll(s, "\n", "\r\n"),
		"text-before":      "my key\n" + s,
		"text-after":       s + "x",
		"two-blocks":       s + s,
		"wrong-type":       strings.ReplaceAll(s, "PRIVATE KEY", "ED25519 PRIVATE KEY"),
		"headers":          strings.Replace(s, "-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1),
		"ecdsa":            string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})),
		"not-pkcs8":        string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")})),
		"pkcs8-extra-byte": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: append(p8, 0)})),
	} {
		t.Run("fail/"+name, func(t *testing.T) {
			if _, err := ParseAdminKey([]byte(in)); !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseAdminKey() = %v, want %v", err, ErrMalformed)
			}
		})
	}
}
