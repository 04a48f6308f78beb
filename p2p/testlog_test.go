package p2p

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/keymesh/keymesh/gossip"
)

// memLog is an in-memory Log for tests. Events are "issuer|seq|payload"; an
// issuer's events must arrive in sequence (a gap is ignored, as a real log
// ignores an event whose dependencies it lacks), a duplicate is ignored and a
// payload starting with "bad" is rejected.
type memLog struct {
	mu        sync.Mutex
	events    map[string][][]byte
	acceptAll bool                                        // a faulty node: accepts and stores anything
	onAccept  func(issuer string, seq uint64, raw []byte) // called after an Accept, without mu
	rejects   int
}

func newMemLog() *memLog { return &memLog{events: map[string][][]byte{}} }

func ev(issuer string, seq uint64, payload string) []byte {
	return fmt.Appendf(nil, "%s|%d|%s", issuer, seq, payload)
}

func parseEv(raw []byte) (issuer string, seq uint64, payload string, ok bool) {
	parts := strings.SplitN(string(raw), "|", 3)
	if len(parts) != 3 || parts[0] == "" {
		return "", 0, "", false
	}
	seq, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil || seq == 0 {
		return "", 0, "", false
	}
	return parts[0], seq, parts[2], true
}

func (l *memLog) Deliver(raw []byte) gossip.Verdict {
	issuer, seq, payload, ok := parseEv(raw)
	l.mu.Lock()
	if l.acceptAll {
		if ok && seq == uint64(len(l.events[issuer]))+1 {
			l.events[issuer] = append(l.events[issuer], append([]byte(nil), raw...))
		}
		l.mu.Unlock()
		return gossip.Accept
	}
	if !ok || strings.HasPrefix(payload, "bad") {
		l.rejects++
		l.mu.Unlock()
		return gossip.Reject
	}
	have := uint64(len(l.events[issuer]))
	switch {
	case seq <= have:
		l.mu.Unlock()
		return gossip.Ignore // duplicate
	case seq > have+1:
		l.mu.Unlock()
		return gossip.Ignore // gap: predecessors unknown
	}
	l.events[issuer] = append(l.events[issuer], append([]byte(nil), raw...))
	cb := l.onAccept
	l.mu.Unlock()
	if cb != nil {
		cb(issuer, seq, raw)
	}
	return gossip.Accept
}

func (l *memLog) Summary() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := make(map[string]uint64, len(l.events))
	for k, v := range l.events {
		s[k] = uint64(len(v))
	}
	return s
}

func (l *memLog) Events(issuer string, after uint64, max int) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.events[issuer]
	if after >= uint64(len(evs)) {
		return nil, nil
	}
	end := min(uint64(len(evs)), after+uint64(max))
	return append([][]byte(nil), evs[after:end]...), nil
}

// count returns how many events of issuer the log holds.
func (l *memLog) count(issuer string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events[issuer])
}

// has reports whether the log holds raw.
func (l *memLog) has(raw []byte) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, evs := range l.events {
		for _, e := range evs {
			if string(e) == string(raw) {
				return true
			}
		}
	}
	return false
}

// total returns the number of events the log holds.
func (l *memLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, evs := range l.events {
		n += len(evs)
	}
	return n
}
