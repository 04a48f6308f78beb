package policy

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// memGrant is a grant as the mesh issues them: a 45-byte id carrying its
// issuer's prefix, strings decoded from JSON (each its own allocation),
// no Observed.
func memGrant(i int, key string, p Party) Grant {
	return Grant{
		ID:        fmt.Sprintf("0123456789abcdef0123-%024x", i),
		Key:       string([]byte(key)),
		Party:     Party([]byte(p)),
		Ops:       OpsDecrypt,
		Custodian: string([]byte("Org1MSP")),
		Issuer:    string([]byte("token:admin")),
		IssuedAt:  t0.Add(time.Duration(i) * time.Millisecond),
	}
}

// heapBytes returns the live heap after a collection.
func heapBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// reach is a causal reach of one chain, as the mesh gives a grant.
func chainReach(chain string, seq uint64) Reach {
	return func(c string) uint64 {
		if c == chain {
			return seq
		}
		return 0
	}
}

// BenchmarkStateMemory reports what the state holds per grant and per
// revocation (live heap after a collection, divided by the count), for
// 100k of each shape:
//
//	live-one-key   grants of one key, each to another party (benchscale's
//	               "grants on one key")
//	ended          grants of one key, each to another party, each ended by
//	               a revocation of its pair: per grant and its revocation
//	regrant        one pair granted and revoked n times (the soak): per
//	               ended grant and its revocation
//	revocations    revocations alone, each of another pair: per revocation
//
// An ended grant alone costs "ended" less "revocations".
func BenchmarkStateMemory(b *testing.B) {
	const n = 100_000
	cases := []struct {
		name, unit string
		grants     int
		fill       func(s *State)
	}{
		{"live-one-key", "B/grant", n, func(s *State) {
			for i := range n {
				p := Party(fmt.Sprintf("token:p%d", i))
				if err := s.AddGrantReaching(memGrant(i, "one/k", p), chainReach("c", uint64(2*i))); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"ended", "B/grant+revocation", n, func(s *State) {
			for i := range n {
				p := Party(fmt.Sprintf("token:p%d", i))
				if err := s.AddGrantReaching(memGrant(i, "one/k", p), chainReach("c", uint64(2*i))); err != nil {
					b.Fatal(err)
				}
				r := Revocation{ID: fmt.Sprintf("0123456789abcdef0123-r%023x", i), Key: string([]byte("one/k")), Party: p,
					Issuer: string([]byte("token:admin")), IssuedAt: t0}
				if err := s.AddRevocationAt(r, Position{Chain: "c", Seq: uint64(2*i + 2)}); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"regrant", "B/grant+revocation", n, func(s *State) {
			p := Party("token:app")
			for i := range n {
				if err := s.AddGrantReaching(memGrant(i, "one/k", p), chainReach("c", uint64(2*i))); err != nil {
					b.Fatal(err)
				}
				r := Revocation{ID: fmt.Sprintf("0123456789abcdef0123-r%023x", i), Key: string([]byte("one/k")), Party: p,
					Issuer: string([]byte("token:admin")), IssuedAt: t0}
				if err := s.AddRevocationAt(r, Position{Chain: "c", Seq: uint64(2*i + 2)}); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"revocations", "B/revocation", 0, func(s *State) {
			for i := range n {
				p := Party(fmt.Sprintf("token:p%d", i))
				r := Revocation{ID: fmt.Sprintf("0123456789abcdef0123-r%023x", i), Key: string([]byte("one/k")), Party: p,
					Issuer: string([]byte("token:admin")), IssuedAt: t0}
				if err := s.AddRevocationAt(r, Position{Chain: "c", Seq: uint64(2*i + 2)}); err != nil {
					b.Fatal(err)
				}
			}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var per float64
			for b.Loop() {
				before := heapBytes()
				s := NewState()
				c.fill(s)
				after := heapBytes()
				per = float64(int64(after)-int64(before)) / n
				if s.CountGrants() != c.grants {
					b.Fatalf("CountGrants() = %d, want %d", s.CountGrants(), c.grants)
				}
				runtime.KeepAlive(s)
			}
			b.ReportMetric(per, c.unit)
		})
	}
}
