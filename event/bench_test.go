package event

import (
	"testing"
)

func benchEvent(b *testing.B, kind Kind) (Event, []byte) {
	e, raw := sampleEvent(b, int(kind)-1)
	b.SetBytes(int64(len(raw)))
	return e, raw
}

func BenchmarkSign(b *testing.B) {
	for _, k := range []Kind{KindGrant, KindKeyVersion} {
		b.Run(k.String(), func(b *testing.B) {
			e, _ := benchEvent(b, k)
			for b.Loop() {
				if _, _, err := Sign(nodePriv, e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, k := range []Kind{KindGrant, KindKeyVersion} {
		b.Run(k.String(), func(b *testing.B) {
			e, _ := benchEvent(b, k)
			for b.Loop() {
				if err := e.Verify(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	for _, k := range []Kind{KindGrant, KindKeyVersion} {
		b.Run(k.String(), func(b *testing.B) {
			_, raw := benchEvent(b, k)
			for b.Loop() {
				if _, err := Parse(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, k := range []Kind{KindGrant, KindKeyVersion, KindNodeRecord} {
		b.Run(k.String(), func(b *testing.B) {
			e, _ := benchEvent(b, k)
			b.SetBytes(int64(len(e.Payload)))
			for b.Loop() {
				if _, err := decodePayload(k, e.Payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGenesisID(b *testing.B) {
	g := testGenesis()
	for b.Loop() {
		g.ID()
	}
}
