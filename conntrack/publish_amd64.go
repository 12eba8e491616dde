//go:build amd64 && !race

package conntrack

// On amd64 every store is seen by other cores in program order (x86-TSO),
// so a plain MOV already has the release ordering that publishing an
// entry needs: a reader that sees the final meta word sees every word
// stored before it. Go's atomic stores are XCHG instead, a full fence that
// waits for all earlier stores to reach the cache; publish makes ten of
// them on a line that is often still on its way from memory. The store
// below and internal/plainstore's single-word stores are plain MOVs in
// assembly, where the compiler can neither drop nor reorder them. The race build uses the atomic versions
// (publish_other.go), so the detector sees every access.

// storeWords writes an entry's words other than meta: the key, ports and
// forwarding method, since and bind.
//
//go:noescape
func storeWords(e *entry, w *entryWords)
