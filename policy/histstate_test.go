package policy

import "sync/atomic"

// historyArchive is an Archive that keeps nothing: it counts the bytes
// of the records it is given (names and records) and reads back as
// empty, which a State whose cycles all reach their pair's revocations
// never notices. BenchmarkPairHistory measures the State's own heap with it.
type historyArchive struct{ n *atomic.Int64 }

func (historyArchive) Get([]byte) ([]byte, error)                      { return nil, nil }
func (historyArchive) Scan([]byte, func(name, rec []byte) error) error { return nil }
func (a historyArchive) Set(name, rec []byte) error                    { a.n.Add(int64(len(name) + len(rec))); return nil }
func (historyArchive) DeletePrefix([]byte) error                       { return nil }

// newHistoryState returns the state BenchmarkPairHistory fills, and how
// many bytes its archive was given.
func newHistoryState() (*State, func() int64) {
	var n atomic.Int64
	return NewState(WithArchive(historyArchive{&n})), n.Load
}
