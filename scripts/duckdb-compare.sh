#!/usr/bin/env bash
# pulse against the tool a data scientist would reach for: the same capture
# through DuckDB's point-in-time window SQL (scripts/duckdb_features.py: 8 of
# the 46 features, RANGE windows of 7/14/30 days per customer, 2 threads, no
# duplicate, correction or lateness handling, result reduced to one line of
# sums) and through `pulse replay CAPTURE --no-timers --features-out F` (all
# 46 features, the whole contract, every vector written).
#
#   scripts/duckdb-compare.sh CAPTURE [RUNS]      # RUNS defaults to 5
#
# DuckDB comes from PyPI, pinned, into target/duckdb/venv (scripts/venv.sh,
# as local-aws.sh installs moto). Both run as whole processes under
# /usr/bin/time (wall clock and peak RSS; DuckDB's includes starting Python
# and importing duckdb), alternately, RUNS times; prints every run, the
# medians and the ratios. Honours CARGO_TARGET_DIR.
set -euo pipefail
# Paths given are the caller's; the script runs from the repository root.
export PULSE_CALLER_PWD="$PWD"
cd "$(dirname "$0")/.."
source scripts/venv.sh

DUCKDB_VERSION="2.0.0"
VENV="$PWD/target/duckdb/venv"

source scripts/alternate.sh
alternate_args duckdb-compare "$@"

pulse_venv "$VENV" duckdb-compare "duckdb==$DUCKDB_VERSION"
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet --release -p pulse --bin pulse
PULSE="$TARGET/release/pulse"
echo "duckdb-compare: $CAPTURE ($(du -h "$CAPTURE" | cut -f1)), $RUNS alternating runs"
for i in $(seq "$RUNS"); do
    timed "$TMP/duckdb" "$VENV/bin/python" scripts/duckdb_features.py "$CAPTURE" 2
    [[ $i -eq 1 ]] && sed 's/^/  /' "$TMP/stdout"
    # DuckDB's own time (connect and query), without Python's start-up and
    # `import duckdb` (0.2 s and 60 MB of the whole process here).
    sed -n 's/.* in \([0-9.]*\) s (.*/\1/p' "$TMP/stdout" >>"$TMP/duckdb_query"
    timed "$TMP/pulse" "$PULSE" replay "$CAPTURE" --no-timers --features-out "$TMP/features.jsonl" --quiet
    printf '  run %d: duckdb %s s %s KB   pulse %s s %s KB\n' "$i" $(tail -n1 "$TMP/duckdb") $(tail -n1 "$TMP/pulse")
done

d_s=$(cut -d' ' -f1 "$TMP/duckdb" | median)
d_kb=$(cut -d' ' -f2 "$TMP/duckdb" | median)
p_s=$(cut -d' ' -f1 "$TMP/pulse" | median)
p_kb=$(cut -d' ' -f2 "$TMP/pulse" | median)
dq_s=$(median <"$TMP/duckdb_query")
too_small duckdb-compare "$d_s" "$p_s"
awk -v ds="$d_s" -v dk="$d_kb" -v ps="$p_s" -v pk="$p_kb" -v dq="$dq_s" 'BEGIN {
    printf "median duckdb (8 features, 2 threads)     %.2f s  peak RSS %.1f MB (its query alone, by its own clock: %.2f s)\n", ds, dk / 1024, dq
    printf "median pulse replay --no-timers (all 46)  %.2f s  peak RSS %.1f MB\n", ps, pk / 1024
    printf "pulse speed / duckdb speed: %.2fx (whole processes; %.2fx against duckdb'"'"'s query alone, its Python start-up left out); pulse RSS / duckdb RSS: %.2fx\n", ds / ps, dq / ps, pk / dk
}'
