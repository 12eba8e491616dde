package ipvsadm

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary command lines to Parse. It must never panic;
// errors must be single lines; and any command it accepts must survive
// Args and a second Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"-A -t 198.19.0.1:80 -s wlc -p 300 -M 255.255.255.0",
		"-a -t 198.19.0.1:80 -r 198.18.1.2:80 -g -w 1",
		"-a -t [2001:2::10]:443 -r 198.18.1.2 -i --tun-type gue --tun-port 6080 --tun-csum",
		"-Lnc --persistent-conn",
		"-A -f 7 -6 -p -M 64 -b flag-1",
		"--set 900 120 300",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := Parse(strings.Fields(line))
		if err != nil {
			if c != nil {
				t.Fatalf("Parse(%q) returned both %+v and %v", line, *c, err)
			}
			if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("Parse(%q) error is not one line: %q", line, msg)
			}
			return
		}
		back, err := Parse(c.Args())
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its Args %q fail: %v", line, c.Args(), err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("Parse(%q) = %+v\nArgs %q reparse to %+v", line, *c, c.Args(), *back)
		}
	})
}

// FuzzParseRestore feeds arbitrary streams to ParseRestore, which must
// not panic and must name the line of any error.
func FuzzParseRestore(f *testing.F) {
	f.Add("/sbin/ipvsadm -A -t 198.19.0.1:80 -s wlc\n/sbin/ipvsadm -a -t 198.19.0.1:80 -r 198.18.1.2 -i -w 1\n")
	f.Add("# comment\n\n-C\n-R\n")
	f.Fuzz(func(t *testing.T, in string) {
		cmds, err := ParseRestore(strings.NewReader(in))
		if err != nil {
			if cmds != nil || !strings.HasPrefix(err.Error(), "restore") {
				t.Fatalf("ParseRestore(%q): %d commands with error %v", in, len(cmds), err)
			}
			return
		}
		for _, c := range cmds {
			if c.Kind == Restore {
				t.Fatalf("ParseRestore(%q) let -R through", in)
			}
		}
	})
}
