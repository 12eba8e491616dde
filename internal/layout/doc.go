// Package layout holds a test that keeps the tree's import rules honest:
// each heavy dependency has exactly one home, and the leaf packages never
// import the dataplane. It is the depguard block of a linter config, run by
// go test so that CI enforces it without extra tools.
package layout
