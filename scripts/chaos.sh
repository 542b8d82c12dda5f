#!/usr/bin/env bash
# kill -9 chaos against the local AWS server (started here, as in scripts/test.sh):
#
#   scripts/chaos.sh [KILLS] [SEED]
#
# `pulse run` over a hostile marketplace's stream is killed with SIGKILL at
# KILLS random moments (default 30) and restarted from its checkpoint each
# time; its features, dead letters and capture must be byte-identical to
# one uninterrupted run's (tests/tests/live_kill.rs). The seed (default: the
# time) is printed, so a failing run can be repeated.
#
# Then the Lambda function: the real bootstrap under a local Runtime API,
# its execution environment killed mid-batch at random (40% of attempts)
# and the batch delivered again to a fresh one; every customer's prediction
# must be the model's scores of its last vector (tests/tests/lambda_chaos.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

kills="${1:-30}"
seed="${2:-$(date +%s)}"
eval "$(scripts/local-aws.sh start)"
trap 'scripts/local-aws.sh stop' EXIT

echo "chaos: pulse run, ${kills} kills, seed ${seed}"
PULSE_CHAOS_KILLS="$kills" PULSE_CHAOS_SEED="$seed" \
  cargo test -p pulse-e2e --test live_kill kill_9_mid_stream -- --nocapture

echo "chaos: the Lambda function, seed ${seed}"
PULSE_CHAOS_SEED="$seed" cargo test -p pulse-e2e --test lambda_chaos -- --nocapture
