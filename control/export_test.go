package control

import (
	"context"
	"net/netip"
	"time"
)

// NormalizedDial runs, once, the TCP-side check RunHealth would build
// from opt.
func NormalizedDial(opt HealthOptions, addr netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return normalize(opt).Dial(ctx, addr)
}
