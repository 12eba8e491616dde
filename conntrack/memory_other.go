//go:build !linux

package conntrack

func physicalMemory() uint64 { return 0 }
