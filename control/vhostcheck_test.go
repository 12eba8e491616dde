package control_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afvs/afvs/control"
)

// TestHTTPGetVirtualHost: with a virtual host the check's GET carries it
// as its Host header (keepalived's virtualhost), and over TLS as the
// server name it asks for, so a server that answers by name passes;
// without one the Host is the real server's address and the same server
// fails the check. Through HealthOptions as well.
func TestHTTPGetVirtualHost(t *testing.T) {
	const vhost = "www.example.test"
	var sni atomic.Value
	sni.Store("")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			sni.Store(r.TLS.ServerName)
		}
		if r.Host != vhost && r.Host != vhost+":8080" {
			http.Error(w, "no such site: "+r.Host, http.StatusNotFound)
			return
		}
		w.Write([]byte("site " + r.Host))
	})
	srv := httptest.NewServer(handler)
	defer srv.Close()
	tls := httptest.NewTLSServer(handler)
	defer tls.Close()
	for _, s := range []struct {
		name  string
		https bool
		addr  netip.AddrPort
	}{
		{"http", false, netip.MustParseAddrPort(srv.Listener.Addr().String())},
		{"https", true, netip.MustParseAddrPort(tls.Listener.Addr().String())},
	} {
		for _, vh := range []string{vhost, vhost + ":8080"} {
			sni.Store("")
			check := control.HTTPGetCheck(control.HTTPGet{HTTPS: s.https, Path: "/", Status: 200, VirtualHost: vh})
			if _, err := runCheck(check, s.addr, time.Second); err != nil {
				t.Errorf("%s: virtual host %s: %v", s.name, vh, err)
			}
			if got := sni.Load().(string); s.https && got != vhost {
				t.Errorf("%s: virtual host %s: the handshake asked for %q, want %q", s.name, vh, got, vhost)
			}
		}
		plain := control.HTTPGetCheck(control.HTTPGet{HTTPS: s.https, Path: "/", Status: 200})
		if _, err := runCheck(plain, s.addr, time.Second); err == nil || !strings.Contains(err.Error(), "status 404") {
			t.Errorf("%s: no virtual host: %v, want status 404", s.name, err)
		}
	}
	addr := netip.MustParseAddrPort(srv.Listener.Addr().String())
	if err := control.NormalizedDial(control.HealthOptions{HTTPPath: "/", HTTPStatus: 200, HTTPVirtualHost: vhost}, addr); err != nil {
		t.Errorf("HealthOptions.HTTPVirtualHost: %v", err)
	}
	if err := control.NormalizedDial(control.HealthOptions{HTTPPath: "/", HTTPStatus: 200}, addr); err == nil {
		t.Error("HealthOptions without a virtual host passed")
	}
}
