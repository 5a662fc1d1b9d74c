# Shared by the SGLang launch scripts (sourced, not run): the checks made before the server
# starts. Messages name the script that sourced this file.

launcher="sglang/$(basename "$0")"

# Exit 2 when the spec's modelURL ($LMBENCH_MODEL, if set) is not MODEL: it is the name sent in
# every request, and a different one would get 404s.
serves_only() { # MODEL
  if [ -n "${LMBENCH_MODEL:-}" ] && [ "$LMBENCH_MODEL" != "$1" ]; then
    echo "$launcher: serves $1, but the spec's modelURL is $LMBENCH_MODEL" >&2
    exit 2
  fi
}

# Exit 127 when python3 cannot import every MODULE; the message names WHAT is missing and the
# INSTALL command.
needs_python_modules() { # WHAT INSTALL MODULE...
  local what="$1" install="$2"
  shift 2
  if ! python3 -c 'import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in sys.argv[1:]) else 1)' "$@" >/dev/null 2>&1; then
    echo "$launcher: python3 cannot import $what ($install)" >&2
    exit 127
  fi
}
