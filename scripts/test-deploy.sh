#!/usr/bin/env bash
# The deployment checks (deploy/README.md): the SAM template linted, and
# transformed and deployed on the local server for every variant, read back.
#
#   scripts/test-deploy.sh            # installs the pinned tools (scripts/deploy-tools.sh)
#   PULSE_BOOTSTRAP=path scripts/test-deploy.sh
#                                     # the bootstrap binary to check against (default: built
#                                     # here with cargo, debug profile)
#
# 0. hadolint on the SageMaker container's Dockerfile (its entrypoint
#    contract is tested by tests/tests/serve_container.rs; there is no Docker
#    daemon here to build it);
# 1. cfn-lint on deploy/template.yaml (the serverless transform rules apply:
#    the template declares Transform: AWS::Serverless-2016-10-31);
# 2. sam validate --lint (offline: needs no credentials, no region);
# 3. deploy/tests (pytest): the template transformed with samtranslator and
#    deployed as a stack on moto's CloudFormation for each variant, read
#    back with boto3; what moto cannot create is listed at the end;
# 4. each deployed function's environment through the function's own
#    settings parser (`bootstrap --print-settings`).
#
# Uses the local server of the caller (AWS_ENDPOINT_URL on 127.0.0.1, as
# scripts/test.sh exports it) or starts one with scripts/local-aws.sh.
# Nothing reaches beyond 127.0.0.1: every step runs behind a proxy address
# that refuses connections (loopback excepted), and SAM's telemetry is off.
# Exits non-zero on any failure; the last line is `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."

start_s=$(date +%s)
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "test-deploy: ok    $*"; }
fail() { failed=$((failed + 1)); echo "test-deploy: FAIL  $*"; }
finish() {
    echo "test-deploy: $(($(date +%s) - start_s)) s"
    echo "$passed passed, $failed failed"
    [[ $failed == 0 ]]
    exit
}

if [[ -z "${PULSE_BOOTSTRAP:-}" ]]; then
    if ! cargo build -q -p pulse-lambda --bin bootstrap; then
        fail "cargo build -p pulse-lambda --bin bootstrap"
        finish
    fi
    PULSE_BOOTSTRAP="${CARGO_TARGET_DIR:-$PWD/target}/debug/bootstrap"
fi
PULSE_BOOTSTRAP="$(realpath "$PULSE_BOOTSTRAP")"
export PULSE_BOOTSTRAP

if ! scripts/deploy-tools.sh install; then
    fail "installing the deployment tools (scripts/deploy-tools.sh)"
    finish
fi
TOOLS="${PULSE_DEPLOY_TOOLS_DIR:-$PWD/target/deploy-tools}/venv/bin"
# moto too, before the proxy below cuts the package registry off (a fresh
# machine's first run failed here: "No matching distribution found").
if ! scripts/local-aws.sh install; then
    fail "installing the local server (scripts/local-aws.sh install)"
    finish
fi

# No network beyond the loopback interface, no telemetry, no bytecode in the tree.
export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9
export http_proxy=$HTTP_PROXY https_proxy=$HTTPS_PROXY all_proxy=$ALL_PROXY
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true PYTHONDONTWRITEBYTECODE=1

tmp="$(mktemp -d)"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

# 0. hadolint
if "$TOOLS/hadolint" --no-color deploy/serve/Dockerfile; then
    pass "hadolint deploy/serve/Dockerfile"
else
    fail "hadolint deploy/serve/Dockerfile"
fi

# 1. cfn-lint
if "$TOOLS/cfn-lint" deploy/template.yaml; then
    pass "cfn-lint deploy/template.yaml"
else
    fail "cfn-lint deploy/template.yaml"
fi

# 2. sam validate --lint (from deploy/, where `sam build` runs)
if (cd deploy && "$TOOLS/sam" validate --lint --template template.yaml); then
    pass "sam validate --lint"
else
    fail "sam validate --lint"
fi

# 3. the stacks on the local server
if [[ "${AWS_ENDPOINT_URL:-}" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] &&
    curl -fsS -o /dev/null "$AWS_ENDPOINT_URL/moto-api/" 2>/dev/null; then
    echo "test-deploy: using the local server at $AWS_ENDPOINT_URL"
else
    if ! exports="$(scripts/local-aws.sh start)"; then
        fail "starting the local server (scripts/local-aws.sh start)"
        finish
    fi
    eval "$exports"
    cleanup() { scripts/local-aws.sh stop; rm -rf "$tmp"; }
fi
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
unset AWS_PROFILE AWS_SESSION_TOKEN

env_file="${PULSE_FUNCTION_ENV_OUT:-$tmp/function_env.json}"
export PULSE_FUNCTION_ENV_OUT="$env_file"
(cd deploy/tests && "$TOOLS/python" -m pytest -p no:cacheprovider -q -rfE --junitxml="$tmp/junit.xml")
counts="$("$TOOLS/python" - "$tmp/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(tests - bad - skipped, bad)
PY
)"
read -r ok bad <<<"$counts"
passed=$((passed + ok))
failed=$((failed + bad))
if [[ $ok == 0 && $bad == 0 ]]; then
    fail "deploy/tests ran no test"
fi

# 4. the functions' environments through pulse's own settings code: each
# deployed variant's Environment.Variables, alone, as the function's whole
# environment: `bootstrap --print-settings` must accept them and resolve the
# table, the endpoint and the outputs the stack says.
if [[ ! -s "$env_file" ]]; then
    fail "no function environments were written to $env_file"
elif "$TOOLS/python" - "$env_file" "$PULSE_BOOTSTRAP" <<'PY'; then
import json, subprocess, sys
envs = json.load(open(sys.argv[1]))
assert envs, "no variant deployed"
for variant, env in sorted(envs.items()):
    out = subprocess.run([sys.argv[2], "--print-settings"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{variant}: bootstrap refused its environment: {out.stderr.strip()}"
    got = json.loads(out.stdout)
    assert got["table"] == env["TABLE_NAME"], (variant, got)
    score = got["score"]
    assert score["predictions_table"] == env["PREDICTIONS_TABLE"], (variant, got)
    assert score["endpoint_name"] == (env["ENDPOINT_NAME"] or None), (variant, got)
    assert score["alerts_topic_arn"] == env["ALERTS_TOPIC_ARN"], (variant, got)
    assert score["dead_letter_queue_url"] == env["DEAD_LETTER_QUEUE_URL"], (variant, got)
    assert score["metrics"] == "emf", (variant, got)
    assert got["timers"]["interval_ms"] == round(float(env["TIMER_INTERVAL_HOURS"]) * 3_600_000), (variant, got)
    print(f"test-deploy: {variant}: bootstrap --print-settings accepts the stack's environment")
PY
    pass "bootstrap --print-settings on every variant's environment"
else
    fail "bootstrap --print-settings on every variant's environment"
fi

finish
