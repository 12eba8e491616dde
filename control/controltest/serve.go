package controltest

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/syncd"
	"github.com/afvs/afvs/vs"
)

// Served is a control API running for a test.
type Served struct {
	Director *Director
	Server   *control.Server
	Socket   string
	// Reload is what POST /v1/reload loads, as control.New takes it; tests
	// replace it to model a changed or broken configuration file.
	Reload func() (*vs.Table, func(), error)
	// Sync is the connection-sync daemon --start-daemon drives, on the
	// host's real interfaces (lo works).
	Sync *syncd.Manager
}

// Serve starts the control API for a fresh Director on a unix socket in
// t.TempDir(). The socket is not wrapped in control.RootOnly, so the test
// need not run as root; RootOnly has tests of its own.
func Serve(t testing.TB) *Served {
	t.Helper()
	return serve(t, nil)
}

// ServeWithSync is Serve with sync as the daemon --start-daemon drives,
// in place of a syncd.Manager on the host's interfaces (Served.Sync is
// then nil).
func ServeWithSync(t testing.TB, sync control.SyncDaemons) *Served {
	t.Helper()
	return serve(t, sync)
}

func serve(t testing.TB, sync control.SyncDaemons) *Served {
	t.Helper()
	d, err := NewDirector(4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	s := &Served{Director: d, Socket: filepath.Join(t.TempDir(), "afvs.sock")}
	s.Reload = func() (*vs.Table, func(), error) { return nil, nil, errors.New("no configuration file in this test") }
	s.Server = control.New(d, d.CT, &vs.Table{}, func() (*vs.Table, func(), error) { return s.Reload() },
		func(st *api.Status) {
			st.Table = d.TableStatus()
			st.Defense = control.DefenseStatus(d.CT, d.SYNLimits())
		})
	if sync == nil {
		s.Sync = syncd.New(d, syncd.Options{Log: slog.New(slog.DiscardHandler)})
		t.Cleanup(s.Sync.Close)
		sync = s.Sync
	}
	s.Server.SetSync(sync)
	l, err := control.Listen(s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	hs := control.NewHTTPServer(s.Server.Handler(d.Loads()), control.DefaultHTTPLimits)
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(control.LimitConns(l, control.DefaultHTTPLimits.MaxConns)) }()
	t.Cleanup(func() {
		hs.Close()
		<-done
	})
	return s
}

// Client returns a control API client for the served socket.
func (s *Served) Client() *api.Client { return api.NewClient(s.Socket) }
