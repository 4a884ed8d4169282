#!/usr/bin/env bash
# The project's test command: installs what is missing, builds, and runs
# every suite (lit + GoogleTest through lit, then pytest), reporting counts.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
"$ROOT/scripts/setup-deps.sh"
"$ROOT/scripts/build.sh"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
ninja -C "$BUILD_DIR" check-gsa
if [ -d "$ROOT/test/python" ]; then
  GSA_BUILD_DIR="$BUILD_DIR" /usr/bin/python3 -m pytest -q "$ROOT/test/python"
fi
