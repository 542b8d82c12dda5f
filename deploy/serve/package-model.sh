#!/usr/bin/env bash
# A model artifact (model.json, plus model.safetensors for a network, as
# `pulse train` writes them; see model/ARTIFACT.md) packed as SageMaker's model data: a gzipped tar whose files land in
# /opt/ml/model, where the container's `pulse serve` finds them.
#
#   deploy/serve/package-model.sh [MODEL_DIR] [OUT]   # defaults: model/artifact, model.tar.gz
#   aws s3 cp model.tar.gz s3://BUCKET/pulse/model.tar.gz   # then SageMakerModelDataUrl
set -euo pipefail
dir="${1:-model/artifact}"
out="${2:-model.tar.gz}"
[[ -f "$dir/model.json" ]] || { echo "package-model: $dir/model.json is missing (a pulse model directory has model.json, and model.safetensors for a network)" >&2; exit 1; }
files=(model.json)
[[ -f "$dir/model.safetensors" ]] && files+=(model.safetensors)
# Files at the archive's top level, owned by nobody in particular.
tar --owner=0 --group=0 --numeric-owner -czf "$out" -C "$dir" "${files[@]}"
echo "$out: $(stat -c %s "$out") bytes ($dir)"
