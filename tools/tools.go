//go:build tools

// Package tools pins the versions of the developer tools the Makefile
// installs (golangci-lint), in a module of their own so the main module's
// go.mod lists only what AFVS itself links.
package tools

import (
	_ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
)
