// Command afvsadm administers a running afvs with ipvsadm's command line
// and prints ipvsadm 1.31's output formats, so scripts written for ipvsadm
// keep working. It talks to the daemon's control socket
// (/run/afvs/afvs.sock, or $AFVS_SOCKET).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/ipvsadm"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd, err := ipvsadm.Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, oneLine(err))
		return ipvsadm.ExitStatus(err)
	}
	sock := os.Getenv("AFVS_SOCKET")
	if sock == "" {
		sock = api.DefaultSocket
	}
	c := api.NewClient(sock)
	switch cmd.Kind {
	case ipvsadm.Help:
		_ = ipvsadm.Usage(stdout, "afvsadm")
		return 0
	case ipvsadm.Version:
		fmt.Fprintf(stdout, "afvsadm %s (ipvsadm v1.31 command line and output)\n", api.Version)
		return 0
	case ipvsadm.List, ipvsadm.Save:
		snap, err := c.IpvsadmSnapshot(cmd.List.Connection)
		if err != nil {
			fmt.Fprintln(stderr, oneLine(err))
			return 1
		}
		if err := snap.Write(stdout, cmd); err != nil {
			fmt.Fprintln(stderr, oneLine(err))
			return 1
		}
		return 0
	case ipvsadm.Restore:
		in, err := io.ReadAll(io.LimitReader(stdin, maxRestore+1))
		if err == nil && len(in) > maxRestore {
			err = fmt.Errorf("restore: input larger than %d bytes, the most afvsadm -R reads", maxRestore)
		}
		if err != nil {
			fmt.Fprintln(stderr, oneLine(err))
			return 1
		}
		cmds, err := ipvsadm.ParseRestore(bytes.NewReader(in))
		if err != nil {
			fmt.Fprintln(stderr, oneLine(err))
			return ipvsadm.ExitStatus(err)
		}
		lines := make([][]string, len(cmds))
		for i, x := range cmds {
			lines[i] = x.Args()
		}
		if err := c.Commands(lines); err != nil {
			fmt.Fprintln(stderr, oneLine(restoreLine(err, in)))
			return commandStatus(err)
		}
		return 0
	}
	if err := c.Commands([][]string{args}); err != nil {
		fmt.Fprintln(stderr, oneLine(err))
		return commandStatus(err)
	}
	return 0
}

// commandStatus is the exit status for a command afvs did not carry out.
// When afvs refused it, that is 255: ipvsadm 1.31 returns libipvs's -1
// from main when the kernel refuses a command. When afvs could not be
// asked, it is 1.
func commandStatus(err error) int {
	var apiErr *api.APIError
	if errors.As(err, &apiErr) {
		return 255
	}
	return 1
}

// maxRestore bounds what -R reads; a saved table of the largest size afvs
// holds is far smaller. It is half what the daemon takes in one batch,
// since the batch's JSON is larger than the text: each word gains quotes
// and a comma, which at most doubles the shortest, so whatever afvsadm
// reads the daemon accepts.
const maxRestore = api.MaxCommandsBytes / 2

// serverCommand is how the daemon names a command of a batch.
var serverCommand = regexp.MustCompile(`^command (\d+)(\b.*)$`)

// restoreLine turns the daemon's "command N" into "restore line L", the
// line of the input that held the N-th command, as ParseRestore counts
// commands: comments and blank lines hold none.
func restoreLine(err error, in []byte) error {
	m := serverCommand.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	n, _ := strconv.Atoi(m[1])
	for i, line := range strings.Split(string(in), "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		words := strings.Fields(line)
		if len(words) > 0 && (path.Base(words[0]) == "ipvsadm" || path.Base(words[0]) == "afvsadm") {
			words = words[1:]
		}
		if len(words) == 0 {
			continue
		}
		if n--; n == 0 {
			return fmt.Errorf("restore line %d%s", i+1, m[2])
		}
	}
	return err
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
