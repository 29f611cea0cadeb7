#!/usr/bin/env bash
# The kiln demo: build examples/hello (multi-stage), run it, list the images.
set -euo pipefail
cd "$(dirname "$0")/.."
export KILN_ROOT="${KILN_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/kiln}"
kiln() { node bin/kiln.js "$@"; }

echo "== kiln root: $KILN_ROOT"
if ! kiln images -q busybox:latest >/dev/null 2>&1 || [ -z "$(kiln images -q busybox:latest 2>/dev/null)" ]; then
  echo "== making the busybox base image from Debian's busybox-static"
  bash scripts/make-base-image.sh busybox:latest
fi
echo "== kiln build -t hello:demo examples/hello"
kiln build -t hello:demo examples/hello
echo "== kiln run --rm hello:demo"
kiln run --rm hello:demo
echo "== kiln images"
kiln images
