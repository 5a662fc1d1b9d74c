#!/usr/bin/env bash
# Install minikube into ${LMBENCH_INSTALL_DIR:-~/.local/bin}, without sudo, checking the
# release's SHA-256. lmbench runs this when Location is LocalMinikube and minikube is missing;
# it can also be run by hand. MINIKUBE_VERSION overrides the pinned release.
set -euo pipefail

version="${MINIKUBE_VERSION:-v1.36.0}"
dest="${LMBENCH_INSTALL_DIR:-$HOME/.local/bin}"
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "install-minikube.sh: unsupported CPU architecture $(uname -m)" >&2; exit 1 ;;
esac

fetch() { # URL FILE
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 -o "$2" "$1"
  elif command -v wget >/dev/null; then
    wget -q -O "$2" "$1"
  else
    echo "install-minikube.sh: needs curl or wget" >&2; exit 1
  fi
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
url="https://storage.googleapis.com/minikube/releases/${version}/minikube-linux-${arch}"
echo "downloading $url"
fetch "$url" "$tmp/minikube"
fetch "$url.sha256" "$tmp/minikube.sha256"
echo "$(tr -d '[:space:]' <"$tmp/minikube.sha256")  $tmp/minikube" | sha256sum -c --quiet - \
  || { echo "install-minikube.sh: checksum mismatch for $url" >&2; exit 1; }

mkdir -p "$dest"
install -m 0755 "$tmp/minikube" "$dest/minikube"
echo "installed minikube ${version} to $dest/minikube"
case ":$PATH:" in
  *":$dest:"*) ;;
  *) echo "note: $dest is not on PATH; lmbench looks there anyway, add it to PATH for your shell" ;;
esac
