#!/usr/bin/env bash
# Install kubectl into ${LMBENCH_INSTALL_DIR:-~/.local/bin}, without sudo, checking the
# release's SHA-256. lmbench runs this when Location is LocalMinikube and kubectl is missing;
# it can also be run by hand. KUBECTL_VERSION overrides the pinned release.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_install-common.sh"

version="${KUBECTL_VERSION:-v1.33.4}"
fetch_checked "https://dl.k8s.io/release/${version}/bin/linux/${arch}/kubectl" "$tmp/kubectl" .sha256
install_binary "$tmp/kubectl" kubectl "$version"
