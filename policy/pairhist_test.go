package policy

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkPairHistory reports the live heap a State holds per pair
// after 1k, 10k and 100k grant/revoke cycles of each of 4 pairs, as the
// mesh issues them (each grant reaching its pair's revocations through
// its issuer's chain, each revocation placed on that chain), and the
// time of one cycle. The state's archive is historyArchive
// (histstate_test.go): one that keeps nothing on the heap, standing for
// the mesh's store, which mesh.BenchmarkPairHistory measures for real;
// it counts the bytes handed to it (archive-B/cycle).
func BenchmarkPairHistory(b *testing.B) {
	const pairs = 4
	for _, cycles := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("cycles=%d", cycles), func(b *testing.B) {
			var perPair, perCycle, archived float64
			for b.Loop() {
				before := heapBytes()
				s, written := newHistoryState()
				start := time.Now()
				seq := uint64(0)
				for i := range cycles {
					for p := range pairs {
						party := Party(fmt.Sprintf("token:p%d", p))
						n := i*pairs + p
						if err := s.AddGrantReaching(memGrant(n, "one/k", party), chainReach("c", seq)); err != nil {
							b.Fatal(err)
						}
						seq += 2
						r := Revocation{ID: fmt.Sprintf("0123456789abcdef0123-r%023x", n), Key: "one/k", Party: party,
							Issuer: "token:admin", IssuedAt: t0}
						if err := s.AddRevocationAt(r, Position{Chain: "c", Seq: seq}); err != nil {
							b.Fatal(err)
						}
					}
				}
				perCycle = float64(time.Since(start).Nanoseconds()) / float64(cycles*pairs)
				after := heapBytes()
				perPair = float64(int64(after)-int64(before)) / pairs
				archived = float64(written()) / float64(cycles*pairs)
				if s.CountGrants() != cycles*pairs {
					b.Fatalf("CountGrants() = %d, want %d", s.CountGrants(), cycles*pairs)
				}
				runtime.KeepAlive(s)
			}
			b.ReportMetric(perPair, "B/pair")
			b.ReportMetric(perCycle, "ns/cycle")
			b.ReportMetric(archived, "archive-B/cycle")
		})
	}
}
