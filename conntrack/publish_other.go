//go:build !amd64 || race

package conntrack

// storeWords is publish_amd64.go's store for other architectures and the
// race build: Go atomic stores, which the race detector sees and which
// order the stores on every architecture.
func storeWords(e *entry, w *entryWords) {
	e.caddr[0].Store(w.caddr0)
	e.caddr[1].Store(w.caddr1)
	e.vaddr[0].Store(w.vaddr0)
	e.vaddr[1].Store(w.vaddr1)
	e.ports.Store(w.ports)
	e.since.Store(w.since)
	e.bind.Store(w.bind)
}
