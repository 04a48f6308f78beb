package policy

import (
	"fmt"
	"testing"
	"time"
)

// benchState holds 1,000 keys with 8 parties each, some of them revoked
// and re-granted, as a busy node might.
func benchState(b *testing.B) *State {
	s := NewState()
	for k := range 1000 {
		key := fmt.Sprintf("ns%d/key%d", k%10, k)
		for p := range 8 {
			party := Party(fmt.Sprintf("token:app%d", p))
			mustAddGrant(b, s, grant(fmt.Sprintf("g-%d-%d", k, p), key, party, OpsAll))
			if p%2 == 0 {
				rid := fmt.Sprintf("r-%d-%d", k, p)
				mustAddRevocation(b, s, revoke(rid, key, party))
				gr := grant(fmt.Sprintf("h-%d-%d", k, p), key, party, OpsAll, rid)
				gr.NotAfter = t0.Add(24 * time.Hour)
				mustAddGrant(b, s, gr)
			}
		}
	}
	return s
}

// BenchmarkDecide measures the allowed path, the hot path of every encrypt
// and decrypt request. It must not allocate.
func BenchmarkDecide(b *testing.B) {
	s := benchState(b)
	p := principal("fabric:Org1MSP/alice", "token:app4")
	key := "ns7/key517"
	if d := s.Decide(p, key, OpDecrypt, t0); !d.Allowed {
		b.Fatalf("Decide(%v, %q, decrypt) = %+v, want allowed", p, key, d)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Decide(p, key, OpDecrypt, t0)
	}
}

// BenchmarkDecideParallel measures the allowed path under read-lock
// sharing.
func BenchmarkDecideParallel(b *testing.B) {
	s := benchState(b)
	p := principal("token:app3")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Decide(p, "ns3/key3", OpEncrypt, t0)
		}
	})
}

// BenchmarkDecideDenied measures a denial, which builds its reason.
func BenchmarkDecideDenied(b *testing.B) {
	s := benchState(b)
	p := principal("token:nobody")
	b.ReportAllocs()
	for b.Loop() {
		s.Decide(p, "ns3/key3", OpEncrypt, t0)
	}
}

func TestDecideAllowedDoesNotAllocate(t *testing.T) {
	s := NewState()
	mustAddGrant(t, s, grant("g1", ssn, org1, OpsDecrypt))
	p := principal(alice, org1)
	allocs := testing.AllocsPerRun(100, func() {
		if !s.Decide(p, ssn, OpDecrypt, t0).Allowed {
			t.Fatal("Decide denied")
		}
	})
	if allocs != 0 {
		t.Errorf("Decide(allowed) allocates %v times per call, want 0", allocs)
	}
}
