#!/usr/bin/env bash
# The project's main job: installs what is missing, builds, and shows the
# example GSA program decomposed into its three fused ops.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
"$ROOT/scripts/setup-deps.sh"
"$ROOT/scripts/build.sh" gsa-opt
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
echo "== gsa-opt examples/gsa_core.mlir --gsa-decompose"
"$BUILD_DIR/bin/gsa-opt" "$ROOT/examples/gsa_core.mlir" --gsa-decompose
