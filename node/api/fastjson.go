package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/node/apiv1"
)

// The hot routes (POST /v1/encrypt and /v1/decrypt) read their bodies into
// a pooled buffer and decode them with a small hand-written decoder for
// the common shape of their two request types, and write their answers
// with a hand-written encoder. Neither changes what a client sees:
//
//   - The fast decoder accepts only a subset of what bind accepts — one
//     object of the request's own fields, spelled exactly, each at most
//     once, whose strings are printable ASCII without escapes — and gives
//     the value bind gives for it (FuzzFastDecode holds the two together).
//     For anything else — an unknown, misspelt or repeated field, an
//     escape, a null, a syntax error, trailing data, a tx_time — it gives
//     up and the body is decoded again by bind's strict decoder, over the
//     same bytes, with the same errors.
//   - The encoder writes what gin's c.JSON (json.Marshal) writes, byte for
//     byte (TestFastEncode and FuzzFastEncode); a string that json.Marshal
//     would escape is handed to json.Marshal.

// maxPooled is the largest buffer put back in a pool: a 1,000-item batch
// is about 150 KB; the rare larger body gets a buffer of its own.
const maxPooled = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

// putBuf clears the bytes used (a body or an answer may carry a
// plaintext; best effort, as everywhere) and pools the buffer.
func putBuf(b *[]byte) {
	clear(*b)
	if cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// bindFast decodes the body of c into v as bind does — the same value, the
// same errors — trying fast first (see above). A body without a
// Content-Length, or with one over the limit, goes to bind as it is.
func bindFast[T any](c *gin.Context, v *T, fast func([]byte, *T) bool) error {
	n := c.Request.ContentLength
	if n < 0 || n > apiv1.MaxBodyBytes {
		return bind(c, v)
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, apiv1.MaxBodyBytes)
	bp := getBuf()
	b := *bp
	if cap(b) < int(n)+1 {
		b = make([]byte, 0, int(n)+1) // one more byte, to see the end of the body
	}
	defer func() { *bp = b; putBuf(bp) }() // b as read, so that all of it is cleared
	for {
		if len(b) == cap(b) {
			// Longer than its Content-Length said: net/http never lets
			// this happen, but the decision is bind's all the same.
			return bindReader(io.MultiReader(bytes.NewReader(b), body), v)
		}
		m, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			// The error is sticky: bind's decoder reads the same bytes
			// and then meets the same error.
			return bindReader(io.MultiReader(bytes.NewReader(b), body), v)
		}
	}
	if fast(b, v) {
		return nil
	}
	var zero T
	*v = zero
	return bindReader(bytes.NewReader(b), v)
}

// scanner reads the JSON subset of the fast decoder. Its methods report
// false for anything outside it; a false is never an error, only "ask the
// strict decoder".
type scanner struct {
	b []byte
	i int
	// text, if set, is b as a string: strings are cut from it rather than
	// copied one by one (a decrypt body holds envelopes, no secrets).
	text string
	// The last context read, its text and its map: an item whose context
	// has the same text shares the map. Nothing writes to a request's
	// context maps (ethid.CanonicalContext copies before it changes one).
	lastCtx    []byte
	lastCtxMap map[string]string
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next consumes the byte c (after white space) if it is there.
func (s *scanner) next(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// str reads a string of printable ASCII without escapes and returns its
// bytes, which alias the input.
func (s *scanner) str() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	for j := s.i; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := s.b[s.i:j]
			s.i = j + 1
			return v, true
		case c < 0x20 || c == '\\' || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// string reads a string as a Go string (a copy, or cut from text).
func (s *scanner) string(dst *string) bool {
	v, ok := s.str()
	*dst = s.goString(v)
	return ok
}

// goString returns v, a subslice of b, as a string.
func (s *scanner) goString(v []byte) string {
	if s.text == "" || len(v) == 0 {
		return string(v)
	}
	start := cap(s.b) - cap(v) // v is s.b[start:start+len(v)]
	return s.text[start : start+len(v)]
}

// bytes reads a base64 string as encoding/json decodes one into a []byte:
// standard encoding, padded, never nil.
func (s *scanner) bytes(dst *[]byte) bool {
	v, ok := s.str()
	if !ok {
		return false
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(v)))
	n, err := base64.StdEncoding.Decode(b, v)
	if err != nil {
		return false
	}
	*dst = b[:n]
	return true
}

// object reads an object, calling field with each member's name with the
// scanner at its value.
func (s *scanner) object(field func(name []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		name, ok := s.str()
		if !ok || !s.next(':') || !field(name) {
			return false
		}
		if s.next(',') {
			continue
		}
		return s.next('}')
	}
}

// array reads an array, calling elem with the scanner at each element.
func (s *scanner) array(elem func() bool) bool {
	if !s.next('[') {
		return false
	}
	if s.next(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if s.next(',') {
			continue
		}
		return s.next(']')
	}
}

// context reads an object of strings into a new map (never nil, as
// encoding/json makes it); a repeated name keeps its last value, as there.
func (s *scanner) context(dst *map[string]string) bool {
	s.ws()
	if s.lastCtxMap != nil && bytes.HasPrefix(s.b[s.i:], s.lastCtx) {
		s.i += len(s.lastCtx) // the same text: the same object
		*dst = s.lastCtxMap
		return true
	}
	start := s.i
	m := map[string]string{}
	*dst = m
	ok := s.object(func(name []byte) bool {
		v, ok := s.str()
		if ok {
			m[s.goString(name)] = s.goString(v)
		}
		return ok
	})
	if ok {
		s.lastCtx, s.lastCtxMap = s.b[start:s.i], m
	}
	return ok
}

// once records field bit f in seen, and reports false if it was already
// there: a repeated field is left to the strict decoder.
func once(seen *uint32, f uint32) bool {
	if *seen&f != 0 {
		return false
	}
	*seen |= f
	return true
}

// decodeEncryptFast decodes an encrypt request of the fast subset.
func decodeEncryptFast(b []byte, req *apiv1.EncryptRequest) bool {
	s := scanner{b: b}
	var seen uint32
	ok := s.object(func(name []byte) bool {
		switch string(name) {
		case "key":
			return once(&seen, 1<<0) && s.string(&req.Key)
		case "plaintext":
			return once(&seen, 1<<1) && s.bytes(&req.Plaintext)
		case "context":
			return once(&seen, 1<<2) && s.context(&req.Context)
		case "mode":
			return once(&seen, 1<<3) && s.string(&req.Mode)
		case "tx_id":
			return once(&seen, 1<<4) && s.string(&req.TxID)
		case "batch":
			if !once(&seen, 1<<5) {
				return false
			}
			req.Batch = []apiv1.EncryptItem{}
			return s.array(func() bool {
				var it apiv1.EncryptItem
				var seen uint32
				ok := s.object(func(name []byte) bool {
					switch string(name) {
					case "plaintext":
						return once(&seen, 1<<0) && s.bytes(&it.Plaintext)
					case "context":
						return once(&seen, 1<<1) && s.context(&it.Context)
					case "tx_id":
						return once(&seen, 1<<2) && s.string(&it.TxID)
					}
					return false
				})
				req.Batch = append(req.Batch, it)
				return ok
			})
		}
		return false
	})
	return ok && s.end()
}

// decodeDecryptFast decodes a decrypt request of the fast subset.
func decodeDecryptFast(b []byte, req *apiv1.DecryptRequest) bool {
	s := scanner{b: b, text: string(b)}
	var seen uint32
	ok := s.object(func(name []byte) bool {
		switch string(name) {
		case "ciphertext":
			return once(&seen, 1<<0) && s.string(&req.Ciphertext)
		case "context":
			return once(&seen, 1<<1) && s.context(&req.Context)
		case "batch":
			if !once(&seen, 1<<2) {
				return false
			}
			req.Batch = []apiv1.DecryptItem{}
			return s.array(func() bool {
				var it apiv1.DecryptItem
				var seen uint32
				ok := s.object(func(name []byte) bool {
					switch string(name) {
					case "ciphertext":
						return once(&seen, 1<<0) && s.string(&it.Ciphertext)
					case "context":
						return once(&seen, 1<<1) && s.context(&it.Context)
					}
					return false
				})
				req.Batch = append(req.Batch, it)
				return ok
			})
		}
		return false
	})
	return ok && s.end()
}

var jsonContentType = []string{"application/json; charset=utf-8"}

// writeJSON answers 200 with body, as c.JSON would with the value it
// encodes.
func writeJSON(c *gin.Context, body []byte) {
	if h := c.Writer.Header(); len(h["Content-Type"]) == 0 {
		h["Content-Type"] = jsonContentType
	}
	c.Status(http.StatusOK)
	_, _ = c.Writer.Write(body) // a client gone away is not an error of ours
}

// appendString appends s as json.Marshal writes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string never fails to encode
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendBase64(b []byte, p []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, p)
	return append(b, '"')
}

func appendError(b []byte, e *apiv1.Error) []byte {
	b = append(b, `"error":{"code":`...)
	b = appendString(b, e.Code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	return append(b, '}')
}

// appendEncryptResponse appends r as json.Marshal writes it.
func appendEncryptResponse(b []byte, r *apiv1.EncryptResponse) []byte {
	b = append(b, '{')
	if r.Ciphertext != "" {
		b = append(b, `"ciphertext":`...)
		b = appendString(b, r.Ciphertext)
		b = append(b, ',')
	}
	b = append(b, `"key":`...)
	b = appendString(b, r.Key)
	if r.Version != 0 {
		b = append(b, `,"version":`...)
		b = strconv.AppendUint(b, uint64(r.Version), 10)
	}
	if len(r.Batch) > 0 {
		b = append(b, `,"batch":[`...)
		for i := range r.Batch {
			it := &r.Batch[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			sep := false
			if it.Ciphertext != "" {
				b = append(b, `"ciphertext":`...)
				b = appendString(b, it.Ciphertext)
				sep = true
			}
			if it.Version != 0 {
				if sep {
					b = append(b, ',')
				}
				b = append(b, `"version":`...)
				b = strconv.AppendUint(b, uint64(it.Version), 10)
				sep = true
			}
			if it.Error != nil {
				if sep {
					b = append(b, ',')
				}
				b = appendError(b, it.Error)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendDecryptResponse appends r as json.Marshal writes it.
func appendDecryptResponse(b []byte, r *apiv1.DecryptResponse) []byte {
	b = append(b, '{')
	sep := false
	if len(r.Plaintext) > 0 {
		b = append(b, `"plaintext":`...)
		b = appendBase64(b, r.Plaintext)
		sep = true
	}
	if r.Key != "" {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"key":`...)
		b = appendString(b, r.Key)
		sep = true
	}
	if r.Version != 0 {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"version":`...)
		b = strconv.AppendUint(b, uint64(r.Version), 10)
		sep = true
	}
	if len(r.Batch) > 0 {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"batch":[`...)
		for i := range r.Batch {
			it := &r.Batch[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if len(it.Plaintext) > 0 {
				b = append(b, `"plaintext":`...)
				b = appendBase64(b, it.Plaintext)
				if it.Error != nil {
					b = append(b, ',')
				}
			}
			if it.Error != nil {
				b = appendError(b, it.Error)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}
