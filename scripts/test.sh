#!/usr/bin/env bash
# The project's test command (README.md, CI): every test of the workspace,
# unit, integration and doc tests, with a local AWS server (moto, installed
# and started by scripts/local-aws.sh) for the integration tests; then the
# deployment checks (scripts/test-deploy.sh: the SAM template linted and
# deployed on the same local server, every variant read back), and a
# bounded run of the decoder fuzzer (scripts/fuzz.sh). Exits
# non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Property tests: a moderate number of cases by default; raise for a soak.
export PROPTEST_CASES="${PROPTEST_CASES:-256}"

eval "$(scripts/local-aws.sh start)"
trap 'scripts/local-aws.sh stop' EXIT

cargo test --workspace "$@"

# The decoder fuzzer, bounded: 1,000,000 structure-aware mutations.
scripts/fuzz.sh

scripts/test-deploy.sh
