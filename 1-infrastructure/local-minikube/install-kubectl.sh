#!/usr/bin/env bash
# Install kubectl into ${LMBENCH_INSTALL_DIR:-~/.local/bin}, without sudo, checking the
# release's SHA-256. lmbench runs this when Location is LocalMinikube and kubectl is missing;
# it can also be run by hand. KUBECTL_VERSION overrides the pinned release.
set -euo pipefail

version="${KUBECTL_VERSION:-v1.33.4}"
dest="${LMBENCH_INSTALL_DIR:-$HOME/.local/bin}"
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "install-kubectl.sh: unsupported CPU architecture $(uname -m)" >&2; exit 1 ;;
esac

fetch() { # URL FILE
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 -o "$2" "$1"
  elif command -v wget >/dev/null; then
    wget -q -O "$2" "$1"
  else
    echo "install-kubectl.sh: needs curl or wget" >&2; exit 1
  fi
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
url="https://dl.k8s.io/release/${version}/bin/linux/${arch}/kubectl"
echo "downloading $url"
fetch "$url" "$tmp/kubectl"
fetch "$url.sha256" "$tmp/kubectl.sha256"
echo "$(tr -d '[:space:]' <"$tmp/kubectl.sha256")  $tmp/kubectl" | sha256sum -c --quiet - \
  || { echo "install-kubectl.sh: checksum mismatch for $url" >&2; exit 1; }

mkdir -p "$dest"
install -m 0755 "$tmp/kubectl" "$dest/kubectl"
echo "installed kubectl ${version} to $dest/kubectl"
case ":$PATH:" in
  *":$dest:"*) ;;
  *) echo "note: $dest is not on PATH; lmbench looks there anyway, add it to PATH for your shell" ;;
esac
