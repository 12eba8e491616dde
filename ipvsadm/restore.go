package ipvsadm

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// maxRestoreLine bounds one line of a restore stream; ipvsadm's own
// limit is far lower, so only garbage reaches it.
const maxRestoreLine = 64 << 10

// ParseRestore reads commands in the format -S writes, one per line, as
// ipvsadm -R does. Blank lines and everything from a '#' on are ignored,
// and a leading program word ("ipvsadm", "/sbin/ipvsadm", "afvsadm") is
// dropped so saved shell scripts restore as they are. Each line is parsed
// with Parse; the first bad line stops the read and the error gives its
// number. A -R inside the stream is refused, as ipvsadm refuses to recurse.
func ParseRestore(r io.Reader) ([]*Command, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxRestoreLine)
	var cmds []*Command
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		words := strings.Fields(line)
		if len(words) > 0 {
			switch path.Base(words[0]) {
			case "ipvsadm", "afvsadm":
				words = words[1:]
			}
		}
		if len(words) == 0 {
			continue
		}
		c, err := Parse(words)
		if err != nil {
			return nil, fmt.Errorf("restore line %d: %w", n, err)
		}
		if c.Kind == Restore {
			// ipvsadm's restore_table calls tryhelp_exit(-1) here.
			return nil, optionErrorf("restore line %d: -R cannot be nested inside a restore stream", n)
		}
		cmds = append(cmds, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("restore: read after line %d: %w", n, err)
	}
	return cmds, nil
}
