// Command barehttp is the ceiling scripts/bench-api.sh measures keymesh
// against: a bare net/http handler speaking keymesh's encrypt and decrypt
// JSON (node/apiv1 types, encoding/json) that checks one bearer token and
// does one AES-256-GCM seal or open per item (random nonce, the context
// as additional data) — no policy, no audit log, no key versions.
//
//	go run ./scripts/barehttp -listen 127.0.0.1:18500 -token-file T
//
// It listens on loopback only and serves until interrupted.
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
)

var aead cipher.AEAD

func aad(ctx map[string]string) []byte {
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = append(b, k...)
		b = append(b, 0)
		b = append(b, ctx[k]...)
		b = append(b, 0)
	}
	return b
}

func seal(pt []byte, ctx map[string]string) string {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(pt)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, pt, aad(ctx)))
}

func open(ct string, ctx map[string]string) ([]byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(ct)
	if err != nil || len(b) < aead.NonceSize() {
		return nil, false
	}
	pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], aad(ctx))
	return pt, err == nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18500", "loopback `address`")
	tokenFile := flag.String("token-file", "", "bearer token `file`")
	flag.Parse()
	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintln(os.Stderr, "barehttp: -listen must be a loopback host:port")
		os.Exit(2)
	}
	tb, err := os.ReadFile(*tokenFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "barehttp:", err)
		os.Exit(2)
	}
	want := []byte("Bearer " + strings.TrimSpace(string(tb)))
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ = cipher.NewGCM(block)
	authed := func(r *http.Request) bool {
		return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) == 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/encrypt", func(w http.ResponseWriter, r *http.Request) {
		if !authed(r) {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		var req apiv1.EncryptRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, apiv1.MaxBodyBytes)).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		resp := apiv1.EncryptResponse{Key: req.Key, Version: 1}
		if len(req.Batch) > 0 {
			resp.Batch = make([]apiv1.EncryptResult, len(req.Batch))
			for i, it := range req.Batch {
				resp.Batch[i] = apiv1.EncryptResult{Ciphertext: seal(it.Plaintext, it.Context), Version: 1}
			}
		} else {
			resp.Ciphertext = seal(req.Plaintext, req.Context)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("POST /v1/decrypt", func(w http.ResponseWriter, r *http.Request) {
		if !authed(r) {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		var req apiv1.DecryptRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, apiv1.MaxBodyBytes)).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var resp apiv1.DecryptResponse
		if len(req.Batch) > 0 {
			resp.Batch = make([]apiv1.DecryptResult, len(req.Batch))
			for i, it := range req.Batch {
				pt, ok := open(it.Ciphertext, it.Context)
				if !ok {
					resp.Batch[i].Error = &apiv1.Error{Code: "decryption_failed", Message: "decryption failed"}
					continue
				}
				resp.Batch[i].Plaintext = pt
			}
		} else {
			pt, ok := open(req.Ciphertext, req.Context)
			if !ok {
				http.Error(w, "decryption failed", http.StatusBadRequest)
				return
			}
			resp.Plaintext = pt
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "barehttp:", err)
		os.Exit(1)
	}
}
