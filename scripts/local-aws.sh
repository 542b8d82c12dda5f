#!/usr/bin/env bash
# Local AWS for development, tests and CI: moto's server (pinned, from PyPI)
# on 127.0.0.1, speaking the wire protocols of DynamoDB, DynamoDB Streams,
# Kinesis, SQS, SNS, CloudWatch and SageMaker Runtime. Also installs
# cargo-lambda (pinned, from PyPI) for the Lambda Runtime API tests.
#
#   scripts/local-aws.sh install   # venv under target/local-aws (idempotent)
#   scripts/local-aws.sh start     # install, start moto; prints `export ...` lines
#   scripts/local-aws.sh stop      # stop the server this script started
#
#   eval "$(scripts/local-aws.sh start)"   # then: cargo run -p pulse -- run ...
#
# Nothing here needs an AWS account: the credentials it exports are dummies
# that moto accepts, and nothing listens beyond the loopback interface.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

MOTO_VERSION="5.2.5"
CARGO_LAMBDA_VERSION="1.9.2"
DIR="${PULSE_LOCAL_AWS_DIR:-$PWD/target/local-aws}"
VENV="$DIR/venv"
PORT="${PULSE_MOTO_PORT:-0}"

log() { echo "local-aws: $*" >&2; }

install() {
    pulse_venv "$VENV" local-aws "moto[server]==$MOTO_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    install
    if [[ "$PORT" == 0 ]]; then
        PORT="$(free_port)"
    fi
    local url="http://127.0.0.1:$PORT"
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$DIR/moto.log" 2>&1 &
    echo $! >"$DIR/moto.pid"
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "$url/moto-api/" 2>/dev/null; then
            log "moto $MOTO_VERSION ready at $url (log: $DIR/moto.log)"
            cat <<ENV
export AWS_ENDPOINT_URL=$url
export PULSE_TEST_AWS_ENDPOINT=$url
export AWS_REGION=\${AWS_REGION:-us-east-1}
export AWS_DEFAULT_REGION=\${AWS_DEFAULT_REGION:-\${AWS_REGION:-us-east-1}}
export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-testing}
export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-testing}
export PATH=$VENV/bin:\$PATH
ENV
            return 0
        fi
        if ! kill -0 "$(cat "$DIR/moto.pid")" 2>/dev/null; then
            log "moto exited while starting:"
            cat "$DIR/moto.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    log "moto did not answer at $url within 10 s"
    exit 1
}

stop() {
    if [[ -f "$DIR/moto.pid" ]]; then
        kill "$(cat "$DIR/moto.pid")" 2>/dev/null || true
        rm -f "$DIR/moto.pid"
    fi
}

case "${1:-start}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
