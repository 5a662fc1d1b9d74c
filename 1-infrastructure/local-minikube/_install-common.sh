# Shared by install-helm.sh, install-kubectl.sh and install-minikube.sh (sourced, not run):
# the CPU architecture, the install folder, a scratch folder removed on exit, and the steps
# every installer takes (download with its SHA-256 file and check it, then install the binary).
# Error messages name the script that sourced this file.

script="$(basename "$0")"
dest="${LMBENCH_INSTALL_DIR:-$HOME/.local/bin}"
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "$script: unsupported CPU architecture $(uname -m)" >&2; exit 1 ;;
esac

fetch() { # URL FILE
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 -o "$2" "$1"
  elif command -v wget >/dev/null; then
    wget -q -O "$2" "$1"
  else
    echo "$script: needs curl or wget" >&2; exit 1
  fi
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Download URL to FILE and check it against the hash published at URL+SUFFIX (a file whose
# first word is the SHA-256: a bare hash, or "<hash>  <file name>").
fetch_checked() { # URL FILE SUFFIX
  echo "downloading $1"
  fetch "$1" "$2"
  fetch "$1$3" "$2.sha256"
  echo "$(awk '{print $1}' <"$2.sha256")  $2" | sha256sum -c --quiet - \
    || { echo "$script: checksum mismatch for $1" >&2; exit 1; }
}

# Install the binary FILE as $dest/NAME and say where it went.
install_binary() { # FILE NAME VERSION
  mkdir -p "$dest"
  install -m 0755 "$1" "$dest/$2"
  echo "installed $2 $3 to $dest/$2"
  case ":$PATH:" in
    *":$dest:"*) ;;
    *) echo "note: $dest is not on PATH; lmbench looks there anyway, add it to PATH for your shell" ;;
  esac
}
