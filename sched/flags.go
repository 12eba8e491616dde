package sched

import (
	"fmt"
	"strings"
)

// Flags are the per-service scheduler flags of ipvsadm -b. The values are
// IPVS's IP_VS_SVC_F_SCHED1..3, so they can be passed through unchanged.
type Flags uint32

const (
	FlagSched1 Flags = 0x0008
	FlagSched2 Flags = 0x0010
	FlagSched3 Flags = 0x0020

	// sh and mh give the generic flags their own names.
	FlagSHFallback = FlagSched1
	FlagSHPort     = FlagSched2
	FlagMHFallback = FlagSched1
	FlagMHPort     = FlagSched2
)

// defaultSched is ipvsadm's DEF_SCHED, which it assumes when -s is absent.
const defaultSched = "wlc"

// ParseFlags parses the ipvsadm -b argument for scheduler sched: a comma
// separated list of flag-1, flag-2, flag-3, and the sh-/mh- names, which are
// valid only with their own scheduler, as ipvsadm's parse_sched_flags rules.
// Empty items are skipped as strtok skips them.
func ParseFlags(sched, s string) (Flags, error) {
	if sched == "" {
		sched = defaultSched
	}
	var f Flags
	seen := false
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			continue
		}
		seen = true
		switch {
		case item == "flag-1":
			f |= FlagSched1
		case item == "flag-2":
			f |= FlagSched2
		case item == "flag-3":
			f |= FlagSched3
		case strings.HasPrefix(item, "sh-") && sched == "sh",
			strings.HasPrefix(item, "mh-") && sched == "mh":
			switch item[3:] {
			case "fallback":
				f |= FlagSched1
			case "port":
				f |= FlagSched2
			default:
				return 0, fmt.Errorf("scheduler flag %q: not a flag of scheduler %q (want %s-fallback or %s-port)", item, sched, sched, sched)
			}
		case strings.HasPrefix(item, "sh-"), strings.HasPrefix(item, "mh-"):
			return 0, fmt.Errorf("scheduler flag %q: valid only with scheduler %q, not %q", item, item[:2], sched)
		default:
			return 0, fmt.Errorf("scheduler flag %q: unknown (want flag-1, flag-2, flag-3, sh-fallback, sh-port, mh-fallback or mh-port)", item)
		}
	}
	if !seen {
		return 0, fmt.Errorf("scheduler flags %q: empty list", s)
	}
	return f, nil
}

// Names returns the ipvsadm spelling of f for scheduler sched, the inverse of
// ParseFlags: sh and mh name SCHED1/SCHED2 after their meaning.
func (f Flags) Names(sched string) []string {
	var out []string
	named := sched == "sh" || sched == "mh"
	if f&FlagSched1 != 0 {
		if named {
			out = append(out, sched+"-fallback")
		} else {
			out = append(out, "flag-1")
		}
	}
	if f&FlagSched2 != 0 {
		if named {
			out = append(out, sched+"-port")
		} else {
			out = append(out, "flag-2")
		}
	}
	if f&FlagSched3 != 0 {
		out = append(out, "flag-3")
	}
	return out
}
