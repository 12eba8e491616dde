#!/usr/bin/env bash
# Runs every fuzz target of the main module in turn for FUZZTIME each, with
# a short minimisation time (the default 60 s per new input starves the
# engine on targets whose inputs are whole frames), and ends with one line
# per target: executions, average executions per second, new interesting inputs.
# A failing target is reported in the summary, its input saved under
# testdata/fuzz, and the run goes on to the next target; the script then
# exits non-zero. FUZZPKGS limits the run to some packages (default ./...).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-2s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
summary=()
failed=0
for pkg in $($GO list ${FUZZPKGS:-./...}); do
	for target in $($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $target ($FUZZTIME, minimise $FUZZMINIMIZETIME)"
		if ! $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" \
			-fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg" 2>&1 | tee "$log"; then
			failed=1
			summary+=("$(printf '%-32s %-18s FAILED: %s' "${pkg#github.com/afvs/afvs/}" "$target" \
				"$(grep -m1 'Failing input written to' "$log" | sed 's/^ *//')")")
			continue
		fi
		# The engine's last progress line (its rate is over the last interval;
		# the average over the whole run is execs/elapsed): "fuzz: elapsed: 30s, execs: N (R/sec), new interesting: K (total: T)".
		last=$(grep 'fuzz: elapsed' "$log" | tail -1 || true)
		execs=$(sed -n 's/.*execs: \([0-9]*\) .*/\1/p' <<<"$last")
		# elapsed is a Go duration: 27s, 1m3s or 1h0m2s.
		secs=$(sed -n 's/.*elapsed: \([0-9hms]*\),.*/\1/p' <<<"$last" |
			awk '{ n = 0; s = $0; while (match(s, /^[0-9]+[hms]/)) { v = substr(s, 1, RLENGTH - 1); u = substr(s, RLENGTH, 1);
				n += v * (u == "h" ? 3600 : u == "m" ? 60 : 1); s = substr(s, RLENGTH + 1) } print (n > 0 ? n : 1) }')
		rate=$((${execs:-0} / ${secs:-1}))
		newi=$(sed -n 's/.*new interesting: \([0-9]*\).*/\1/p' <<<"$last")
		if grep -q -- '--- SKIP' "$log"; then
			summary+=("$(printf '%-32s %-18s skipped (%s)' "${pkg#github.com/afvs/afvs/}" "$target" "$(grep -m1 -A1 -- '--- SKIP' "$log" | tail -1 | sed 's/^ *//')")")
		else
			summary+=("$(printf '%-32s %-18s %10s execs %8s/s %4s new' "${pkg#github.com/afvs/afvs/}" "$target" "${execs:-?}" "${rate:-?}" "${newi:-?}")")
		fi
	done
done
echo
echo "fuzz summary (FUZZTIME=$FUZZTIME, FUZZMINIMIZETIME=$FUZZMINIMIZETIME, GOMAXPROCS=${GOMAXPROCS:-$(nproc)}):"
printf '%s\n' "${summary[@]}"
exit $failed
