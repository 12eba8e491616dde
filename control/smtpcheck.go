package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/textproto"
)

// SMTPCheck returns keepalived's SMTP_CHECK: over a TCP connection the
// server's greeting must be 220, "HELO helo" must be answered 250, and
// "QUIT" must be answered by a line before the server closes. A greeting
// or HELO reply with another code (421 busy, 554 no service, 5xx refused),
// a connection closed or reset before the end of this dialogue, or
// silence until the timeout fails the check. Replies may span lines
// ("220-..." then "220 ..."); the code of the last line counts.
func SMTPCheck(helo string) func(ctx context.Context, addr netip.AddrPort) error {
	return func(ctx context.Context, addr netip.AddrPort) error {
		nc, err := dialCheck(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer nc.Close()
		c := textproto.NewConn(nc)
		if _, _, err := c.ReadResponse(220); err != nil {
			return fmt.Errorf("SMTP %s: greeting: %w", addr, smtpErr(err))
		}
		if err := c.PrintfLine("HELO %s", helo); err != nil {
			return fmt.Errorf("SMTP %s: HELO: %w", addr, err)
		}
		if _, _, err := c.ReadResponse(250); err != nil {
			return fmt.Errorf("SMTP %s: HELO %s: %w", addr, helo, smtpErr(err))
		}
		if err := c.PrintfLine("QUIT"); err != nil {
			return fmt.Errorf("SMTP %s: QUIT: %w", addr, err)
		}
		if _, err := c.ReadLine(); err != nil {
			return fmt.Errorf("SMTP %s: QUIT: %w", addr, err)
		}
		return nil
	}
}

// smtpErr cuts an unexpected reply's text to 200 bytes, so a server
// cannot fill the log with it.
func smtpErr(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && len(te.Msg) > 200 {
		return &textproto.Error{Code: te.Code, Msg: te.Msg[:200] + "..."}
	}
	return err
}
