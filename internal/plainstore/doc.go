// Package plainstore writes atomic words with plain stores where that is
// enough: a word with one writer, whose readers need only see it whole.
//
// On amd64 an aligned MOV is such a store, and x86's store order already
// keeps stores in program order, while Go's atomic Store is an XCHG, a
// full fence that first drains every earlier store. Elsewhere, and in the
// race build (so the detector sees every access), the functions are the
// atomic Store.
package plainstore
