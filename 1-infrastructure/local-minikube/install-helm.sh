#!/usr/bin/env bash
# Install helm into ${LMBENCH_INSTALL_DIR:-~/.local/bin}, without sudo, checking the
# release's SHA-256. lmbench runs this when Location is LocalMinikube and helm is missing;
# it can also be run by hand. HELM_VERSION overrides the pinned release.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_install-common.sh"

version="${HELM_VERSION:-v3.18.4}"
name="helm-${version}-linux-${arch}.tar.gz"
fetch_checked "https://get.helm.sh/${name}" "$tmp/$name" .sha256sum
tar -xzf "$tmp/$name" -C "$tmp" "linux-${arch}/helm"
install_binary "$tmp/linux-${arch}/helm" helm "$version"
