#!/usr/bin/env bash
# Install minikube into ${LMBENCH_INSTALL_DIR:-~/.local/bin}, without sudo, checking the
# release's SHA-256. lmbench runs this when Location is LocalMinikube and minikube is missing;
# it can also be run by hand. MINIKUBE_VERSION overrides the pinned release.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_install-common.sh"

version="${MINIKUBE_VERSION:-v1.36.0}"
fetch_checked "https://storage.googleapis.com/minikube/releases/${version}/minikube-linux-${arch}" "$tmp/minikube" .sha256
install_binary "$tmp/minikube" minikube "$version"
