package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/node/apiv1"
)

// benchRoute serves body on path through the router in-process (no
// socket, an in-memory store), the handler side of a request: use
// -benchmem for its allocations.
func benchRoute(b *testing.B, rf *routerFixture, path string, body []byte) {
	b.Helper()
	h := http.Header{"Authorization": {"Bearer " + rf.app}, "Content-Type": {"application/json"}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header = h
		w := httptest.NewRecorder()
		rf.srv.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("POST %s = %d %s", path, w.Code, w.Body)
		}
	}
}

func benchCiphertexts(b *testing.B, rf *routerFixture, n int) []string {
	b.Helper()
	items := make([]string, n)
	for i := range items {
		items[i] = `{"plaintext":"` + strings.Repeat("QUJD", 21) + `","context":{"field":"bench"}}`
	}
	status, body := rf.serve("POST", "/v1/encrypt", http.Header{"Authorization": {"Bearer " + rf.app}},
		[]byte(`{"key":"demo/k","batch":[`+strings.Join(items, ",")+`]}`))
	var r apiv1.EncryptResponse
	if err := json.Unmarshal(body, &r); status != http.StatusOK || err != nil {
		b.Fatalf("encrypt = %d %s", status, body)
	}
	out := make([]string, n)
	for i, it := range r.Batch {
		out[i] = it.Ciphertext
	}
	return out
}

func BenchmarkEncryptRoute(b *testing.B) {
	rf := newRouterFixture(b)
	benchRoute(b, rf, "/v1/encrypt", []byte(`{"key":"demo/k","plaintext":"`+strings.Repeat("QUJD", 21)+`","context":{"field":"bench"}}`))
}

func BenchmarkDecryptRoute(b *testing.B) {
	rf := newRouterFixture(b)
	ct := benchCiphertexts(b, rf, 1)[0]
	benchRoute(b, rf, "/v1/decrypt", []byte(`{"ciphertext":"`+ct+`","context":{"field":"bench"}}`))
}

func BenchmarkDecryptBatchRoute(b *testing.B) {
	rf := newRouterFixture(b)
	cts := benchCiphertexts(b, rf, 1000)
	items := make([]string, len(cts))
	for i, ct := range cts {
		items[i] = `{"ciphertext":"` + ct + `","context":{"field":"bench"}}`
	}
	benchRoute(b, rf, "/v1/decrypt", []byte(`{"batch":[`+strings.Join(items, ",")+`]}`))
}
