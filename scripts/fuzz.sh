#!/usr/bin/env bash
# The decoder fuzzer (operators/examples/fuzz_decoder.rs): structure-aware
# mutations of the corpus in scripts/fuzz/corpus through the capture decoder,
# the Lambda's decoder and the engine. Inputs that break an invariant are
# kept in scripts/fuzz/crashes (replayed by operators/tests/fuzz_regressions.rs)
# and the run exits 1.
#
#   scripts/fuzz.sh                      # 1,000,000 inputs (what CI runs)
#   scripts/fuzz.sh --inputs 100000000   # the long run, by hand
#   FUZZ_SEED=42 scripts/fuzz.sh         # reproduce a run
#
# The seed defaults to the day (each day's CI explores other inputs) and is
# printed, so any run can be repeated.
set -euo pipefail
cd "$(dirname "$0")/.."

seed="${FUZZ_SEED:-$(date -u +%Y%j)}"
cargo build --release --quiet -p pulse-operators --example fuzz_decoder
exec "${CARGO_TARGET_DIR:-target}/release/examples/fuzz_decoder" --seed "$seed" --inputs 1000000 "$@"
