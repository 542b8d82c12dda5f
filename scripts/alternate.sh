# Sourced by the whole-process comparisons (bench-replay.sh,
# duckdb-compare.sh): their arguments, one timed run, a median. Each run is
# a whole process under /usr/bin/time, the way a user measures one program
# against another.

# alternate_args NAME "$@": checks `CAPTURE [RUNS]` and sets CAPTURE, RUNS
# (default 5) and TMP (a temporary directory removed on exit).
alternate_args() {
    local name="$1"
    shift
    if [[ $# -lt 1 || $# -gt 2 ]]; then
        echo "usage: scripts/$name.sh CAPTURE [RUNS]" >&2
        exit 2
    fi
    CAPTURE="$1"
    RUNS="${2:-5}"
    # The scripts run from the repository root; a relative path is the
    # caller's (it was read from the root: a same-named file there was
    # measured instead, and one beside the caller was "no such capture").
    [[ "$CAPTURE" = /* ]] || CAPTURE="${PULSE_CALLER_PWD:-$PWD}/$CAPTURE"
    [[ -f "$CAPTURE" ]] || { echo "$name: no such capture: $CAPTURE" >&2; exit 2; }
    [[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "$name: RUNS must be a positive integer, not $RUNS" >&2; exit 2; }
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
}

# timed FILE COMMAND...: runs COMMAND (its stdout to $TMP/stdout) and appends
# "seconds peak-kilobytes" to FILE.
timed() {
    local out="$1"
    shift
    /usr/bin/time -f "%e %M" -o "$TMP/time" "$@" >"$TMP/stdout"
    cat "$TMP/time" >>"$out"
}

# too_small NAME SECONDS...: exits, saying so, when a median is under 0.05 s
# (/usr/bin/time's 0.00: the ratios read inf and nan).
too_small() {
    local name="$1"
    shift
    for s in "$@"; do
        if awk -v s="$s" 'BEGIN {exit !(s < 0.05)}'; then
            echo "$name: $CAPTURE is too small to time (a run took ${s} s): use a capture that takes a second or more" >&2
            exit 1
        fi
    done
}

# median: the median of the numbers on stdin, one a line.
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
