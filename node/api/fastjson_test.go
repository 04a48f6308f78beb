package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/node/apiv1"
)

// fastLeft are bodies the fast decoder must leave to the strict one.
var fastLeft = []string{
	`{"key":"a","key":"b"}`,
	`{"KEY":"a"}`,
	`{"key":"a","tx_time":"2026-01-01T00:00:00Z"}`,
	`{"key":"a\u0041"}`,
	`{"key":"\u00e9"}`,
	"{\"key\":\"\xc3\xa9\"}",
	`{"key":null}`,
	`{"plaintext":"aGVsbG8"}`,
	`{"plaintext":"aGVs\nbG8="}`,
	`{"unknown":1}`,
	`{"key":"a"} {}`,
	`{"key":"a"}x`,
	`{"key":"a",}`,
	`[]`,
	`null`,
	``,
	`{`,
	`{"batch":[{"plaintext":"eA==","plaintext":"eA=="}]}`,
	`{"batch":[{"ciphertext":"a"},]}`,
	`{"batch":{}}`,
	`{"key":1}`,
}

// strictDecode is bind's decoder over b.
func strictDecode(b []byte, v any) error { return bindReader(bytes.NewReader(b), v) }

// checkFast fails t if the fast decoder accepts b with another value than
// the strict decoder's, or accepts what the strict decoder refuses.
func checkFast[T any](t *testing.T, b []byte, fast func([]byte, *T) bool) bool {
	t.Helper()
	var got T
	if !fast(b, &got) {
		return false
	}
	var want T
	if err := strictDecode(b, &want); err != nil {
		t.Fatalf("fast decoder accepted %q, which the strict decoder refuses: %v", b, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fast decode of %q = %#v, strict decode = %#v", b, got, want)
	}
	return true
}

// FuzzFastDecode holds the fast decoders of the hot routes to the strict
// reference decoder: whatever the fast one accepts, the strict one accepts
// with the same value (nil against empty included).
func FuzzFastDecode(f *testing.F) {
	for _, tc := range fastTaken {
		f.Add([]byte(tc.body))
	}
	for _, s := range fastLeft {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFast(t, b, decodeEncryptFast)
		checkFast(t, b, decodeDecryptFast)
	})
}

// fastTaken are bodies the fast decoder must take: what clients send.
var fastTaken = []struct {
	body    string
	encrypt bool
}{
	{`{"key":"demo/k","plaintext":"aGVsbG8=","context":{"field":"x"}}`, true},
	{`{"key":"demo/k","mode":"deterministic","tx_id":"t","batch":[{"plaintext":"eA==","context":{"a":"b"},"tx_id":"u"},{"plaintext":""}]}`, true},
	{` { "key" : "a" , "plaintext" : "" , "context" : { } , "batch" : [ ] } ` + "\n\t\r", true},
	{`{"context":{"a":"1","a":"2"}}`, true},
	{`{"ciphertext":"km1:AQEIZGVtby9r","context":{"field":"x"}}`, false},
	{`{"batch":[{"ciphertext":"km1:x"},{"ciphertext":"x","context":{}}]}`, false},
	{`{}`, false},
	{`{"batch":[{"ciphertext":"a","context":{"f":"x"}},{"ciphertext":"b","context":{"f":"x"}},{"context":{"f":"x","g":""},"ciphertext":"c"},{"ciphertext":"","context":{"f":"x"}}]}`, false},
	{`{"batch":[{"ciphertext":"a","context":{"f":"x"}},{"ciphertext":"b","context":{"f":"x"} }]}`, false},
}

func TestFastDecodeTakesCommonBodies(t *testing.T) {
	for _, tc := range fastTaken {
		var ok bool
		if tc.encrypt {
			ok = checkFast(t, []byte(tc.body), decodeEncryptFast)
		} else {
			ok = checkFast(t, []byte(tc.body), decodeDecryptFast)
		}
		if !ok {
			t.Errorf("fast decode of %q gave up; want it taken", tc.body)
		}
	}
}

func TestFastDecodeLeavesTheRestToStrict(t *testing.T) {
	for _, body := range fastLeft {
		var e apiv1.EncryptRequest
		var d apiv1.DecryptRequest
		if decodeEncryptFast([]byte(body), &e) || decodeDecryptFast([]byte(body), &d) {
			t.Errorf("fast decode of %q was taken; want it left to the strict decoder", body)
		}
	}
}

// TestBindFastErrors: through the router, a body the fast decoder leaves
// to the strict one gets the strict decoder's answer.
func TestBindFastErrors(t *testing.T) {
	rf := newRouterFixture(t)
	h := map[string][]string{"Authorization": {"Bearer " + rf.app}}
	for _, tc := range []struct {
		path, body, want string
		status           int
	}{
		{"/v1/encrypt", `{"key":"demo/k","plaintext":"aGVsbG8=","bogus":1}`, `unknown field \"bogus\"`, 400},
		{"/v1/encrypt", `{"key":"demo/k"} x`, `trailing data`, 400},
		{"/v1/encrypt", ``, `request body is empty`, 400},
		{"/v1/encrypt", `{"key":"demo/k",`, `invalid JSON body`, 400},
		{"/v1/encrypt", `{"key":1}`, `field \"key\" must be string`, 400},
		{"/v1/decrypt", `{"ciphertext":"x","ciphertext":"km1:"}`, `invalid_ciphertext`, 400},
		{"/v1/decrypt", `{"batch":[{"ciphertext":"x"}],"ciphertext":"y"}`, `in its items only`, 400},
		{"/v1/encrypt", `{"key":"demo/k","plaintext":"` + strings.Repeat("A", apiv1.MaxBodyBytes) + `"}`, `too_large`, 413},
	} {
		status, body := rf.serve("POST", tc.path, h, []byte(tc.body))
		if status != tc.status || !strings.Contains(string(body), tc.want) {
			t.Errorf("POST %s %.60q = %d %s; want %d with %q", tc.path, tc.body, status, body, tc.status, tc.want)
		}
	}
}

// TestHotRoutesRoundTrip: an encrypt answered by the fast encoder decodes,
// and its envelope decrypts, single and batch.
func TestHotRoutesRoundTrip(t *testing.T) {
	rf := newRouterFixture(t)
	h := map[string][]string{"Authorization": {"Bearer " + rf.app}}
	status, body := rf.serve("POST", "/v1/encrypt", h, []byte(`{"key":"demo/k","plaintext":"aGVsbG8=","context":{"field":"x"}}`))
	var er apiv1.EncryptResponse
	if err := json.Unmarshal(body, &er); status != 200 || err != nil || er.Ciphertext == "" || er.Key != "demo/k" || er.Version != 1 {
		t.Fatalf("encrypt = %d %s (%v)", status, body, err)
	}
	status, body = rf.serve("POST", "/v1/decrypt", h, []byte(`{"ciphertext":"`+er.Ciphertext+`","context":{"field":"x"}}`))
	if want := `{"plaintext":"aGVsbG8=","key":"demo/k","version":1}`; status != 200 || string(body) != want {
		t.Fatalf("decrypt = %d %s; want 200 %s", status, body, want)
	}
	status, body = rf.serve("POST", "/v1/decrypt", h, []byte(`{"batch":[{"ciphertext":"`+er.Ciphertext+`","context":{"field":"x"}},{"ciphertext":"`+er.Ciphertext+`"}]}`))
	if want := `{"batch":[{"plaintext":"aGVsbG8="},{"error":{"code":"decryption_failed","message":"decryption failed"}}]}`; status != 200 || string(body) != want {
		t.Fatalf("batch decrypt = %d %s; want 200 %s", status, body, want)
	}
}

// encodeCases are responses with every field set and unset, and strings
// json.Marshal escapes.
func encodeCases() ([]apiv1.EncryptResponse, []apiv1.DecryptResponse) {
	e := &apiv1.Error{Code: "decryption_failed", Message: `a "quoted" <message> & more` + "\u2028\x01\xff"}
	enc := []apiv1.EncryptResponse{
		{},
		{Ciphertext: "km1:abc", Key: "demo/k", Version: 3},
		{Key: "a<b>&\"\\\n\u00e9\xff"},
		{Key: "demo/k", Batch: []apiv1.EncryptResult{{Ciphertext: "x", Version: 1}, {}, {Error: e}, {Ciphertext: "y", Error: e}, {Version: 2, Error: e}, {Version: 4294967295}}},
	}
	dec := []apiv1.DecryptResponse{
		{},
		{Plaintext: []byte("hello"), Key: "demo/k", Version: 2},
		{Plaintext: []byte{}, Key: "k"},
		{Version: 1},
		{Batch: []apiv1.DecryptResult{{Plaintext: []byte{0, 0xff, '<'}}, {}, {Error: e}, {Plaintext: []byte("x"), Error: e}}},
		{Plaintext: []byte("p"), Batch: []apiv1.DecryptResult{{}}},
	}
	return enc, dec
}

func TestFastEncode(t *testing.T) {
	enc, dec := encodeCases()
	for _, r := range enc {
		checkEncode(t, r, appendEncryptResponse(nil, &r))
	}
	for _, r := range dec {
		checkEncode(t, r, appendDecryptResponse(nil, &r))
	}
}

func checkEncode(t *testing.T, r any, got []byte) {
	t.Helper()
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("fast encode of %#v = %s; json.Marshal = %s", r, got, want)
	}
}

// FuzzFastEncode holds the fast encoders to json.Marshal.
func FuzzFastEncode(f *testing.F) {
	f.Add("km1:abc", "demo/k", uint32(1), []byte("hello"), "code", "message", uint8(0))
	f.Add("", "a<b>", uint32(0), []byte{}, "", "\u2028", uint8(0xff))
	f.Fuzz(func(t *testing.T, ct, key string, version uint32, pt []byte, code, msg string, shape uint8) {
		var e *apiv1.Error
		if shape&1 != 0 {
			e = &apiv1.Error{Code: code, Message: msg}
		}
		er := apiv1.EncryptResponse{Ciphertext: ct, Key: key, Version: version}
		dr := apiv1.DecryptResponse{Plaintext: pt, Key: key, Version: version}
		if shape&2 != 0 {
			er.Batch = []apiv1.EncryptResult{{Ciphertext: ct, Version: version, Error: e}, {}}
			dr.Batch = []apiv1.DecryptResult{{Plaintext: pt, Error: e}, {}}
		}
		if shape&4 != 0 {
			dr.Plaintext, dr.Key = nil, ""
		}
		checkEncode(t, er, appendEncryptResponse(nil, &er))
		checkEncode(t, dr, appendDecryptResponse(nil, &dr))
	})
}

func TestPutBufClears(t *testing.T) {
	b := []byte("secret plaintext")
	used := b[:len(b):len(b)]
	putBuf(&used)
	if !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatalf("putBuf left %q in the buffer; want it cleared", b)
	}
}
