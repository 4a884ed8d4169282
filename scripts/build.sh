#!/usr/bin/env bash
# Configures (once) and builds gsa. BUILD_DIR (default build) and
# BUILD_TYPE (Release, or Debug; SANITIZE=1 adds ASan+UBSan) select the tree.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
BUILD_TYPE="${BUILD_TYPE:-Release}"
SANITIZE="${SANITIZE:-0}"
SAN_FLAG=OFF; [ "$SANITIZE" = "1" ] && SAN_FLAG=ON

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DGSA_SANITIZE="$SAN_FLAG" \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit
fi
ninja -C "$BUILD_DIR" "$@"
