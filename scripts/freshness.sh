#!/usr/bin/env bash
# The knob a user must choose, measured: `--linger-s` against write →
# prediction latency (p50, p99) and model calls per event, live on the local
# server (moto), one `pulse loadtest` per setting with everything else equal.
#
#   scripts/freshness.sh [OUT_DIR]        # default out/freshness
#
# Settings by environment: LINGERS ("0 0.25 0.5 1 2 4"), RATE (events/s, 10),
# DURATION_S (30), CUSTOMERS (300). Writes each run's summary JSON and log to
# OUT_DIR, then draws OUT_DIR/freshness-latency.svg and -calls.svg
# (pipeline/examples/freshness_plot.rs) and prints the table. Starts its own
# moto (scripts/local-aws.sh) unless AWS_ENDPOINT_URL is set, and stops it.
set -euo pipefail
# Paths given are the caller's; the script runs from the repository root.
export PULSE_CALLER_PWD="$PWD"
cd "$(dirname "$0")/.."

OUT="${1:-out/freshness}"
# A directory given is the caller's; the default is the repository's out/.
[[ -z "${1:-}" || "$OUT" = /* ]] || OUT="$PULSE_CALLER_PWD/$OUT"
LINGERS="${LINGERS:-0 0.25 0.5 1 2 4}"
RATE="${RATE:-10}"
DURATION_S="${DURATION_S:-30}"
CUSTOMERS="${CUSTOMERS:-300}"
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$OUT"

cargo build --quiet --release -p pulse --bin pulse --example freshness_plot
if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
    eval "$(scripts/local-aws.sh start)"
    trap 'scripts/local-aws.sh stop >/dev/null 2>&1 || true' EXIT
fi

pairs=()
for linger in $LINGERS; do
    echo "freshness: --linger-s $linger ($RATE events/s for $DURATION_S s, $CUSTOMERS customers)" >&2
    "$TARGET/release/pulse" loadtest --customers "$CUSTOMERS" --days 30 --rate "$RATE" \
        --duration-s "$DURATION_S" --linger-s "$linger" --quiet \
        --summary-json "$OUT/linger-$linger.json" >"$OUT/linger-$linger.log" 2>&1
    pairs+=("$linger=$OUT/linger-$linger.json")
done
"$TARGET/release/examples/freshness_plot" "$OUT/freshness" "${pairs[@]}"
