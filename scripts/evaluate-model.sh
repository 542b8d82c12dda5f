#!/usr/bin/env bash
# Makes the embedded model and its evaluation, from nothing but pulse:
#   two synthetic worlds (classic: pulse's segment Markov chain; lifecycle:
#   signups, weekly habits, a school calendar, churn by a lagged hazard of bad
#   experiences), each captured as a stream;
#   pulse train on each (every candidate, in time and out of time);
#   each world's shipped model evaluated on the other world.
# The classic world's shipped model becomes model/artifact (the embedded
# default); the reports and their SVG figures go to model/evaluation/.
#
#   scripts/evaluate-model.sh            # 3,000 customers × 120 days per world
#   CUSTOMERS=1000 DAYS=100 scripts/evaluate-model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS=${CUSTOMERS:-3000}
DAYS=${DAYS:-120}
VERSION=${MODEL_VERSION:-2}
WORK=${PULSE_EVAL_DIR:-target/model-eval}
OUT=model/evaluation
mkdir -p "$WORK" "$OUT"
cargo build --release -p pulse --bin pulse
pulse="${CARGO_TARGET_DIR:-target}/release/pulse"

for world in classic lifecycle; do
  seed=$([ "$world" = classic ] && echo 101 || echo 202)
  "$pulse" generate --world "$world" --customers "$CUSTOMERS" --days "$DAYS" --seed "$seed" \
    --out "$WORK/$world.jsonl.zst" --truth-out "$WORK/$world-truth.csv" --quiet
done

"$pulse" train --capture "$WORK/classic.jsonl.zst" --truth "$WORK/classic-truth.csv" \
  --model-version "$VERSION" --out model/artifact --report "$OUT/classic.md" --quiet
"$pulse" train --capture "$WORK/lifecycle.jsonl.zst" --truth "$WORK/lifecycle-truth.csv" \
  --model-version "$VERSION-lifecycle" --out "$WORK/lifecycle-model" --report "$OUT/lifecycle.md" --quiet
"$pulse" evaluate --capture "$WORK/lifecycle.jsonl.zst" --truth "$WORK/lifecycle-truth.csv" \
  --model model/artifact --report "$OUT/classic-on-lifecycle.md" --quiet
"$pulse" evaluate --capture "$WORK/classic.jsonl.zst" --truth "$WORK/classic-truth.csv" \
  --model "$WORK/lifecycle-model" --report "$OUT/lifecycle-on-classic.md" --quiet
echo "model/artifact and $OUT/ written"
python3 scripts/evaluation-summary.py "$OUT" "$CUSTOMERS" "$DAYS"
