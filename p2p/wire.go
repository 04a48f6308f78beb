package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Anti-entropy wire format (protocol Config.Protocol, e.g.
// "/keymesh/<network-id-hex>/sync/1").
//
// A stream carries frames. A frame is
//
//	uvarint(len(body)) || body
//
// with 1 <= len(body) <= Config.MaxMessageSize. Every uvarint on the wire must
// be minimally encoded. body[0] is the frame type; the rest depends on it:
//
//	0x01 summary  uvarint(n) then n × (uvarint(len(issuer)) || issuer || uvarint(seq))
//	              n <= 10,000; issuers non-empty, at most 1,024 bytes, strictly
//	              ascending (so no duplicates); seq >= 1.
//	0x02 request  uvarint(len(issuer)) || issuer || uvarint(after) || uvarint(max)
//	              1 <= max <= 256: "send me issuer's events (after, after+max]".
//	0x03 batch    uvarint(n) then n × (uvarint(len(event)) || event)
//	              n <= 256, events non-empty; the events answer the preceding
//	              request in sequence order, contiguous from after+1.
//	0x04 done     empty: the sender has no more requests.
//	0x05 busy     empty: the responder refuses the round (rate or concurrency
//	              limit); the initiator retries later.
//
// No trailing bytes are allowed after a frame's last field. A round is
// half-duplex:
//
//	initiator → summary      responder → summary   (or busy, then close)
//	initiator → request …    responder → batch …   initiator → done
//	responder → request …    initiator → batch …   responder → done
//
// after which both sides close the stream. Each side passes the events it
// receives to Log.Deliver in order.

const (
	frameSummary byte = 0x01
	frameRequest byte = 0x02
	frameBatch   byte = 0x03
	frameDone    byte = 0x04
	frameBusy    byte = 0x05
)

const (
	// maxSummaryIssuers bounds the number of issuers in one summary frame.
	maxSummaryIssuers = 10_000
	// maxIssuerLen bounds the length of an issuer id on the wire.
	maxIssuerLen = 1024
	// maxBatch bounds the events requested and answered in one batch.
	maxBatch = 256
)

var (
	errFrameTooLarge = errors.New("p2p: frame exceeds the maximum message size")
	errMalformed     = errors.New("p2p: malformed frame")
)

// frame is one decoded anti-entropy frame.
type frame struct {
	typ     byte
	summary map[string]uint64 // frameSummary
	issuer  string            // frameRequest
	after   uint64            // frameRequest
	max     uint64            // frameRequest
	events  [][]byte          // frameBatch
}

// reader is a strict, minimal-encoding uvarint reader over a byte slice.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad uvarint", errMalformed)
		return 0
	}
	if n != uvarintLen(v) {
		r.err = fmt.Errorf("%w: non-minimal uvarint", errMalformed)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(min, max int) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n < uint64(min) || n > uint64(max) || n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: length %d out of range", errMalformed, n)
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func uvarintLen(v uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], v)
}

// decodeFrame parses one frame body. It is strict: every field must be in
// range, uvarints minimal and no bytes may follow the last field. Returned
// byte slices alias body.
func decodeFrame(body []byte) (frame, error) {
	if len(body) == 0 {
		return frame{}, fmt.Errorf("%w: empty frame", errMalformed)
	}
	f := frame{typ: body[0]}
	r := &reader{b: body[1:]}
	switch f.typ {
	case frameSummary:
		n := r.uvarint()
		if r.err == nil && n > maxSummaryIssuers {
			return frame{}, fmt.Errorf("%w: %d issuers in summary", errMalformed, n)
		}
		f.summary = make(map[string]uint64, min(n, 1024))
		prev := ""
		for i := uint64(0); i < n && r.err == nil; i++ {
			issuer := string(r.bytes(1, maxIssuerLen))
			seq := r.uvarint()
			if r.err != nil {
				break
			}
			if i > 0 && issuer <= prev {
				return frame{}, fmt.Errorf("%w: summary issuers not strictly ascending", errMalformed)
			}
			if seq == 0 {
				return frame{}, fmt.Errorf("%w: zero sequence in summary", errMalformed)
			}
			f.summary[issuer] = seq
			prev = issuer
		}
	case frameRequest:
		f.issuer = string(r.bytes(1, maxIssuerLen))
		f.after = r.uvarint()
		f.max = r.uvarint()
		if r.err == nil && (f.max == 0 || f.max > maxBatch) {
			return frame{}, fmt.Errorf("%w: request max %d", errMalformed, f.max)
		}
	case frameBatch:
		n := r.uvarint()
		if r.err == nil && n > maxBatch {
			return frame{}, fmt.Errorf("%w: %d events in batch", errMalformed, n)
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			ev := r.bytes(1, len(body))
			if r.err == nil {
				f.events = append(f.events, ev)
			}
		}
	case frameDone, frameBusy:
	default:
		return frame{}, fmt.Errorf("%w: unknown frame type 0x%02x", errMalformed, f.typ)
	}
	if r.err != nil {
		return frame{}, r.err
	}
	if len(r.b) != 0 {
		return frame{}, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(r.b))
	}
	return f, nil
}

// encodeSummary encodes s as a summary frame body of at most maxBody bytes.
// Entries with a zero sequence are left out; if s has more issuers than a
// frame may carry, the (ascending) tail is cut off and truncated reports how
// many entries were dropped.
func encodeSummary(s map[string]uint64, maxBody int) (body []byte, truncated int) {
	issuers := make([]string, 0, len(s))
	for k, v := range s {
		if v == 0 || k == "" || len(k) > maxIssuerLen {
			continue
		}
		issuers = append(issuers, k)
	}
	slices.Sort(issuers)
	// Work out how many entries fit.
	n, size := 0, 1
	for _, k := range issuers {
		entry := uvarintLen(uint64(len(k))) + len(k) + uvarintLen(s[k])
		if n == maxSummaryIssuers || size+uvarintLen(uint64(n+1))+entry > maxBody {
			break
		}
		size += entry
		n++
	}
	body = make([]byte, 0, size+binary.MaxVarintLen64)
	body = append(body, frameSummary)
	body = binary.AppendUvarint(body, uint64(n))
	for _, k := range issuers[:n] {
		body = binary.AppendUvarint(body, uint64(len(k)))
		body = append(body, k...)
		body = binary.AppendUvarint(body, s[k])
	}
	return body, len(issuers) - n
}

func encodeRequest(issuer string, after, max uint64) []byte {
	body := make([]byte, 0, 1+len(issuer)+3*binary.MaxVarintLen64)
	body = append(body, frameRequest)
	body = binary.AppendUvarint(body, uint64(len(issuer)))
	body = append(body, issuer...)
	body = binary.AppendUvarint(body, after)
	body = binary.AppendUvarint(body, max)
	return body
}

// encodeBatch encodes the longest prefix of events that fits in maxBody
// bytes (and in maxBatch entries) and reports how many it took. It stops at
// the first empty event: an empty event is not a valid event.
func encodeBatch(events [][]byte, maxBody int) (body []byte, n int) {
	size := 1 + binary.MaxVarintLen64 // type + worst-case count
	for _, ev := range events {
		entry := uvarintLen(uint64(len(ev))) + len(ev)
		if n == maxBatch || len(ev) == 0 || size+entry > maxBody {
			break
		}
		size += entry
		n++
	}
	body = make([]byte, 0, size)
	body = append(body, frameBatch)
	body = binary.AppendUvarint(body, uint64(n))
	for _, ev := range events[:n] {
		body = binary.AppendUvarint(body, uint64(len(ev)))
		body = append(body, ev...)
	}
	return body, n
}

// frameIO reads and writes length-prefixed frames on a stream.
type frameIO struct {
	r   *bufio.Reader
	w   io.Writer
	max int
}

func newFrameIO(rw io.ReadWriter, max int) *frameIO {
	return &frameIO{r: bufio.NewReader(rw), w: rw, max: max}
}

// readBody reads one frame body, refusing lengths above the limit before
// allocating anything.
func (c *frameIO) readBody() ([]byte, error) {
	var buf [binary.MaxVarintLen64]byte
	i := 0
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return nil, err
		}
		buf[i] = b
		i++
		if b < 0x80 {
			break
		}
		if i == len(buf) {
			return nil, fmt.Errorf("%w: bad length prefix", errMalformed)
		}
	}
	n, k := binary.Uvarint(buf[:i])
	if k != i || k != uvarintLen(n) {
		return nil, fmt.Errorf("%w: bad length prefix", errMalformed)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", errMalformed)
	}
	if n > uint64(c.max) {
		return nil, fmt.Errorf("%w: %d > %d bytes", errFrameTooLarge, n, c.max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, err
	}
	return body, nil
}

func (c *frameIO) read() (frame, error) {
	body, err := c.readBody()
	if err != nil {
		return frame{}, err
	}
	return decodeFrame(body)
}

func (c *frameIO) write(body []byte) error {
	if len(body) == 0 || len(body) > c.max {
		return fmt.Errorf("%w: %d > %d bytes", errFrameTooLarge, len(body), c.max)
	}
	out := make([]byte, 0, binary.MaxVarintLen64+len(body))
	out = binary.AppendUvarint(out, uint64(len(body)))
	out = append(out, body...)
	_, err := c.w.Write(out)
	return err
}

// frameName names a frame type for errors and logs.
func frameName(t byte) string {
	switch t {
	case frameSummary:
		return "summary"
	case frameRequest:
		return "request"
	case frameBatch:
		return "batch"
	case frameDone:
		return "done"
	case frameBusy:
		return "busy"
	}
	return fmt.Sprintf("0x%02x", t)
}

// quoteIssuer renders an issuer id for logs (issuers are public ids).
func quoteIssuer(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", strings.ToValidUTF8(s, "?"))
}
