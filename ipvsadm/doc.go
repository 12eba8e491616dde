// Package ipvsadm is the command-line half of afvsadm: it reads ipvsadm
// 1.31 command lines and prints the director's table exactly as ipvsadm
// prints the kernel's, so that operators' scripts and habits carry over.
// It does no I/O of its own beyond the io.Reader and io.Writer it is
// given, needs no privileges, and never resolves names.
//
// Parsing follows ipvsadm's popt-based option handling. The first option
// must be a command (-A, -L, --set, ...); short options may be bundled
// (-Ln, -Lnc) and take attached arguments (-w5); long options take
// "--opt value" or "--opt=value"; -p takes its timeout only if the next
// word does not start with '-'. Legality is decided, as in ipvsadm, by a
// table of commands against options (compulsory, illegal, optional or
// mutually exclusive) followed by the cross-option rules: a zero port
// needs persistence, -g and -i servers inherit the service port, only
// tunnels may mix address families, and so on. Checks that need the
// running table (does the service exist, is the scheduler known) are the
// caller's. Options ipvsadm has but afvs cannot honour, such as
// persistence engines, fail with an error wrapping ErrNotSupported. The
// sync daemon's commands and options are parsed into Command.Daemon.
//
// ParseRestore reads the -S format line by line with the same parser,
// so a saved table and a hand-written script restore alike.
//
// Output is built from a Snapshot, a plain value the caller fills from
// its own state. The listing code reproduces ipvsadm's printf formats:
// fixed-width columns, IPv4 names cut to the column width, counters
// shortened to K, M, G or T past 10^8 unless --exact is given, services
// sorted by mark, family, protocol, address and port, and real servers by
// address and port, with ipvsadm's own comparators and glibc's merge sort,
// quirks included (keys 2^31 or more apart compare the wrong way, marks
// from 2^31 on print negative), scheduler flags named by bit after the
// scheduler. Addresses are always printed numerically, as with -n.
package ipvsadm
