#!/usr/bin/env bash
# The bad-input campaign: every hostile file of scripts/bad-inputs/make.py
# (a captured stream made hostile one way at a time), plus 64 MiB of NUL and
# an output path that is the input, through `pulse replay --score`. Each run
# must end on its own (60 s), within 1 GiB of memory, without a panic, and
# exit 0 (the input was readable; bad records are dead letters) or with a
# message (an unreadable input, a refused path). Prints one line per case.
#
#   scripts/bad-inputs.sh            # uses a generated hostile capture as the seed
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p pulse --bin pulse
pulse="${CARGO_TARGET_DIR:-target}/release/pulse"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$pulse" generate --customers 200 --days 20 --seed 5 --hostility hostile --out "$work/seed.jsonl" >/dev/null
n=$(python3 scripts/bad-inputs/make.py "$work/seed.jsonl" "$work/cases")
echo "bad-inputs: $n hostile files"

failures=0
run_case() {
  local name="$1"; shift
  local status=0
  (ulimit -v $((1 << 20)); timeout 60 "$pulse" "$@" >"$work/out" 2>"$work/err") || status=$?
  local verdict="ok"
  if grep -q "panicked" "$work/err"; then verdict="PANIC"; fi
  if [[ $status -eq 124 ]]; then verdict="HANG"; fi
  if [[ $status -ne 0 && ! -s "$work/err" ]]; then verdict="SILENT FAILURE"; fi
  if [[ $status -ge 128 ]]; then verdict="KILLED ($status)"; fi
  [[ "$verdict" == "ok" ]] || failures=$((failures + 1))
  printf '%-28s exit %-3s %-8s %s\n' "$name" "$status" "$verdict" "$(grep -m1 -E 'error|invalid|dead' "$work/err" | cut -c1-90 || true)"
}

for f in "$work"/cases/*.jsonl; do
  run_case "$(basename "$f")" replay "$f" --score --quiet \
    --features-out "$work/v.jsonl" --dead-letter-out "$work/d.jsonl" \
    --predictions-out "$work/p.jsonl" --alerts-out "$work/a.jsonl" --metrics-out "$work/m.jsonl"
done
head -c $((64 << 20)) /dev/zero >"$work/zeros"
run_case "64 MiB of NUL, no newline" replay "$work/zeros" --quiet --features-out "$work/v.jsonl" --dead-letter-out "$work/d.jsonl"
cp "$work/seed.jsonl" "$work/same.jsonl"
run_case "output = input" replay "$work/same.jsonl" --quiet --features-out "$work/same.jsonl"
cmp -s "$work/seed.jsonl" "$work/same.jsonl" || { echo "output = input: the input was changed"; failures=$((failures + 1)); }

echo "bad-inputs: $failures failures"
[[ $failures -eq 0 ]]
