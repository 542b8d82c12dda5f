#!/usr/bin/env bash
# The Lambda artifact, as small and as quick to start as measured in
# README.md ("Measured"): the release profile with fat LTO, one codegen
# unit, opt-level "s", no debug info, symbols stripped. These settings are
# passed as CARGO_PROFILE_RELEASE_* for this build only (SAM's Rust builder
# always runs `cargo lambda build --release` and takes no profile), so the
# workspace's own release builds (pulse demo, benches) keep theirs.
#
#   scripts/lambda-artifact.sh build [--arm64]   # target/lambda/bootstrap/bootstrap.zip; prints its size
#   scripts/lambda-artifact.sh sam [ARGS...]     # `sam build ARGS` in deploy/ with the same settings
#
# Needs cargo-lambda (scripts/local-aws.sh install) and, for `sam`, the
# deployment tools (scripts/deploy-tools.sh install). --arm64 cross-compiles
# with Zig and needs the aarch64-unknown-linux-gnu Rust target installed.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_OPT_LEVEL=s
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_STRIP=symbols

scripts/local-aws.sh install
export PATH="${PULSE_LOCAL_AWS_DIR:-$PWD/target/local-aws}/venv/bin:$PATH"

case "${1:-build}" in
    build)
        shift || true
        cargo lambda build --release -p pulse-lambda --bin bootstrap --output-format zip "$@" >&2
        zip="$(find "${CARGO_TARGET_DIR:-target}/lambda/bootstrap" -name bootstrap.zip | head -n 1)"
        echo "$zip: $(stat -c %s "$zip") bytes"
        ;;
    sam)
        shift
        scripts/deploy-tools.sh install
        # After cargo-lambda's venv, whose python3 carries the Zig it links with.
        local_aws="${PULSE_LOCAL_AWS_DIR:-$PWD/target/local-aws}/venv/bin"
        export PATH="$local_aws:${PULSE_DEPLOY_TOOLS_DIR:-$PWD/target/deploy-tools}/venv/bin:$PATH"
        cd deploy
        sam build "$@"
        ;;
    *) echo "usage: $0 build [--arm64] | sam [ARGS...]" >&2; exit 2 ;;
esac
