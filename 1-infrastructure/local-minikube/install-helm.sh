#!/usr/bin/env bash
# Install helm into ${LMBENCH_INSTALL_DIR:-~/.local/bin}, without sudo, checking the
# release's SHA-256. lmbench runs this when Location is LocalMinikube and helm is missing;
# it can also be run by hand. HELM_VERSION overrides the pinned release.
set -euo pipefail

version="${HELM_VERSION:-v3.18.4}"
dest="${LMBENCH_INSTALL_DIR:-$HOME/.local/bin}"
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "install-helm.sh: unsupported CPU architecture $(uname -m)" >&2; exit 1 ;;
esac

fetch() { # URL FILE
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 -o "$2" "$1"
  elif command -v wget >/dev/null; then
    wget -q -O "$2" "$1"
  else
    echo "install-helm.sh: needs curl or wget" >&2; exit 1
  fi
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
name="helm-${version}-linux-${arch}.tar.gz"
url="https://get.helm.sh/${name}"
echo "downloading $url"
fetch "$url" "$tmp/$name"
fetch "$url.sha256sum" "$tmp/$name.sha256sum"
# The .sha256sum file is "<hash>  <file name>".
echo "$(awk '{print $1}' <"$tmp/$name.sha256sum")  $tmp/$name" | sha256sum -c --quiet - \
  || { echo "install-helm.sh: checksum mismatch for $url" >&2; exit 1; }
tar -xzf "$tmp/$name" -C "$tmp" "linux-${arch}/helm"

mkdir -p "$dest"
install -m 0755 "$tmp/linux-${arch}/helm" "$dest/helm"
echo "installed helm ${version} to $dest/helm"
case ":$PATH:" in
  *":$dest:"*) ;;
  *) echo "note: $dest is not on PATH; lmbench looks there anyway, add it to PATH for your shell" ;;
esac
