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
# Paths given are the caller's; the script runs from the repository root.
export PULSE_CALLER_PWD="$PWD"
cd "$(dirname "$0")/.."

source scripts/alternate.sh
alternate_args bench-replay "$@"

TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet --release -p pulse --bin pulse --example parse_json
PULSE="$TARGET/release/pulse"
PARSE="$TARGET/release/examples/parse_json"
read -r -a EXTRA <<<"${PULSE_REPLAY_ARGS:-}"

echo "bench-replay: $CAPTURE ($(du -h "$CAPTURE" | cut -f1)), $RUNS alternating runs"
for i in $(seq "$RUNS"); do
    timed "$TMP/parse" "$PARSE" "$CAPTURE"
    timed "$TMP/replay" "$PULSE" replay "$CAPTURE" --features-out "$TMP/features.jsonl" --quiet "${EXTRA[@]}"
    printf '  run %d: parse %s s %s KB   replay %s s %s KB\n' "$i" \
        $(tail -n1 "$TMP/parse") $(tail -n1 "$TMP/replay")
done

parse_s=$(cut -d' ' -f1 "$TMP/parse" | median)
parse_kb=$(cut -d' ' -f2 "$TMP/parse" | median)
replay_s=$(cut -d' ' -f1 "$TMP/replay" | median)
replay_kb=$(cut -d' ' -f2 "$TMP/replay" | median)
too_small bench-replay "$parse_s" "$replay_s"
lines=$("$PARSE" "$CAPTURE" | awk '{print $2}')
awk -v ps="$parse_s" -v pk="$parse_kb" -v rs="$replay_s" -v rk="$replay_kb" -v n="$lines" 'BEGIN {
    printf "median parse_json     %.2f s  %.0f lines/s  peak RSS %.1f MB\n", ps, n / ps, pk / 1024
    printf "median pulse replay   %.2f s  %.0f lines/s  peak RSS %.1f MB\n", rs, n / rs, rk / 1024
    printf "replay speed / parse speed: %.2fx (wall clock); replay RSS / parse RSS: %.2fx\n", ps / rs, rk / pk
}'
