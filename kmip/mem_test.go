package kmip

import (
	"context"
	"encoding/binary"
	"log/slog"
	"runtime"
	"testing"
)

// hostileMessage builds a well-framed request of size bytes holding one
// batch item of an unknown operation whose payload is as many small
// integers as fit: the input that makes a TTLV decoder allocate the most
// per byte.
func hostileMessage(size int) []byte {
	item := func(tag uint32, typ byte, length int) []byte {
		h := make([]byte, 8)
		h[0], h[1], h[2], h[3] = byte(tag>>16), byte(tag>>8), byte(tag), typ
		binary.BigEndian.PutUint32(h[4:], uint32(length))
		return h
	}
	var ints []byte
	n := (size - 8 - 8 - 48 - 16 - 8 - 16 - 8) / 16 // outer, header (version, count), item (operation), payload
	for range n {
		ints = append(ints, item(0x420001, 2, 4)...)
		ints = append(ints, 0, 0, 0, 7, 0, 0, 0, 0)
	}
	op := append(item(0x42005C, 5, 4), 0, 0, 0, 0x7f, 0, 0, 0, 0) // operation 0x7f: unknown
	payload := append(item(0x420079, 1, len(ints)), ints...)
	bi := append(item(0x42000F, 1, len(op)+len(payload)), append(op, payload...)...)
	ver := append(item(0x420069, 1, 32), append(append(item(0x42006A, 2, 4), 0, 0, 0, 1, 0, 0, 0, 0), append(item(0x42006B, 2, 4), 0, 0, 0, 4, 0, 0, 0, 0)...)...)
	count := append(item(0x42000D, 2, 4), 0, 0, 0, 1, 0, 0, 0, 0)
	hdr := append(item(0x420077, 1, len(ver)+len(count)), append(ver, count...)...)
	body := append(hdr, bi...)
	return append(item(0x420078, 1, len(body)), body...)
}

// TestHandleMemoryBound measures what one largest hostile message costs
// the request path (decode, executor, response): the figure behind the
// README's bound of MaxConns concurrent messages.
func TestHandleMemoryBound(t *testing.T) {
	msg := hostileMessage(DefaultMaxMessage)
	if len(msg) > DefaultMaxMessage {
		t.Fatalf("message of %d bytes", len(msg))
	}
	if err := wellFormed(msg); err != nil {
		t.Fatalf("the hostile message is not well framed: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a backend or TLS succeeded")
	}
	// The message never reaches a backend: an unknown operation.
	s := &Server{cfg: Config{MaxBatch: DefaultMaxBatch}, log: discard()}
	s.exec = newExecutor(s)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out := s.Handle(context.Background(), msg)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte hostile message: %d bytes allocated, response %d bytes", len(msg), alloc, len(out))
	if alloc > 8*DefaultMaxMessage {
		t.Errorf("one message of %d bytes allocated %d bytes: the README's bound (7×) no longer holds", len(msg), alloc)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
