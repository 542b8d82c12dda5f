#!/usr/bin/env bash
# Replay against the floor, as a user would measure it: whole process against
# whole process on the same file.
#
#   scripts/bench-replay.sh CAPTURE [RUNS]      # RUNS defaults to 5
#
# Builds the release `pulse` and the standalone parse program
# (pipeline/examples/parse_json.rs: read the capture, parse every line into a
# serde_json::Value, nothing else), then runs them alternately RUNS times:
#
#   parse_json CAPTURE
#   pulse replay CAPTURE --features-out F --quiet      (daily timers on)
#
# each under /usr/bin/time (wall clock, peak RSS), and prints every run, the
# medians and the ratios (replay's speed as a multiple of the parse's: above
# 1 means replay is faster). Extra replay flags go in PULSE_REPLAY_ARGS (e.g.
# "--no-timers"). Honours CARGO_TARGET_DIR; the features file goes to a
# temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 CAPTURE [RUNS]" >&2
    exit 2
fi
CAPTURE="$1"
RUNS="${2:-5}"
[[ -f "$CAPTURE" ]] || { echo "bench-replay: no such capture: $CAPTURE" >&2; exit 2; }
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "bench-replay: RUNS must be a positive integer, not $RUNS" >&2; exit 2; }

TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet --release -p pulse --bin pulse --example parse_json
PULSE="$TARGET/release/pulse"
PARSE="$TARGET/release/examples/parse_json"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
read -r -a EXTRA <<<"${PULSE_REPLAY_ARGS:-}"

# One timed run: appends "seconds kilobytes" to the file named first.
timed() {
    local out="$1"
    shift
    /usr/bin/time -f "%e %M" -o "$TMP/time" "$@" >/dev/null
    cat "$TMP/time" >>"$out"
}

echo "bench-replay: $CAPTURE ($(du -h "$CAPTURE" | cut -f1)), $RUNS alternating runs"
for i in $(seq "$RUNS"); do
    timed "$TMP/parse" "$PARSE" "$CAPTURE"
    timed "$TMP/replay" "$PULSE" replay "$CAPTURE" --features-out "$TMP/features.jsonl" --quiet "${EXTRA[@]}"
    printf '  run %d: parse %s s %s KB   replay %s s %s KB\n' "$i" \
        $(tail -n1 "$TMP/parse") $(tail -n1 "$TMP/replay")
done

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
parse_s=$(cut -d' ' -f1 "$TMP/parse" | median)
parse_kb=$(cut -d' ' -f2 "$TMP/parse" | median)
replay_s=$(cut -d' ' -f1 "$TMP/replay" | median)
replay_kb=$(cut -d' ' -f2 "$TMP/replay" | median)
lines=$("$PARSE" "$CAPTURE" | awk '{print $2}')
awk -v ps="$parse_s" -v pk="$parse_kb" -v rs="$replay_s" -v rk="$replay_kb" -v n="$lines" 'BEGIN {
    printf "median parse_json     %.2f s  %.0f lines/s  peak RSS %.1f MB\n", ps, n / ps, pk / 1024
    printf "median pulse replay   %.2f s  %.0f lines/s  peak RSS %.1f MB\n", rs, n / rs, rk / 1024
    printf "replay speed / parse speed: %.2fx (wall clock); replay RSS / parse RSS: %.2fx\n", ps / rs, rk / pk
}'
