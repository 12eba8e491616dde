//go:build !amd64

package header

// Prefetch is a no-op where there is no assembly version (see the amd64
// one): parsing is still correct, only the frame's first load may wait.
func Prefetch(frame []byte) {}
