#!/usr/bin/env bash
# The project's main job: installs what is missing, builds, shows the example
# GSA program decomposed into its three fused ops, runs it on the CPU through
# the runtime (gsa-run) with seeded random inputs, and checks every output
# against the independent float64 reference, printing SPEC's statistics.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
"$ROOT/scripts/setup-deps.sh"
"$ROOT/scripts/build.sh" gsa-opt gsa-run
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
echo "== gsa-opt examples/gsa_core.mlir --gsa-decompose"
"$BUILD_DIR/bin/gsa-opt" "$ROOT/examples/gsa_core.mlir" --gsa-decompose
echo
echo "== gsa-run examples/gsa_core.mlir (CPU) and the check against the reference"
/usr/bin/python3 "$ROOT/scripts/check_example.py" "$ROOT/examples/gsa_core.mlir" \
  --build "$BUILD_DIR" --seed "${SEED:-0}"
