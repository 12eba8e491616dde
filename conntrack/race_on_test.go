//go:build race

package conntrack

// raceEnabled scales the flood down under the race detector, which makes
// every atomic operation about 50 times slower: the race build checks the
// synchronisation, the normal build checks the million-SYN numbers.
const raceEnabled = true
