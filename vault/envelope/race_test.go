//go:build race

package envelope

// raceEnabled reports a -race build, where sync.Pool drops entries at random
// and allocation counts are meaningless.
const raceEnabled = true
