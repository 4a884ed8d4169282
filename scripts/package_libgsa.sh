#!/usr/bin/env bash
# Builds the self-contained libgsa (LLVM and MLIR linked statically, every
# symbol but the C API hidden), strips it and compresses it for the GPU
# machine, which has no LLVM: dist/libgsa.so.xz (about 15 MB; the carried
# tree must stay under 64 MiB). bench/device/runtime_check.py unpacks it
# there with Python's lzma module.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build-static}"
"$ROOT/scripts/setup-deps.sh"
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DGSA_STATIC_LLVM=ON -DGSA_ENABLE_TESTS=OFF \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir
fi
ninja -C "$BUILD" gsa
mkdir -p "$ROOT/dist"
strip --strip-unneeded -o "$ROOT/dist/libgsa.so" "$BUILD/lib/libgsa.so"
echo "exported symbols: $(nm -D --defined-only "$ROOT/dist/libgsa.so" | wc -l) (all gsa_*)"
if nm -D --defined-only "$ROOT/dist/libgsa.so" | awk '{print $3}' | grep -v '^gsa_' | grep -q .; then
  echo "package_libgsa: a non-API symbol is exported" >&2; exit 1
fi
echo "needs: $(ldd "$ROOT/dist/libgsa.so" | awk '{print $1}' | tr '\n' ' ')"
xz -T2 -9 -k -f "$ROOT/dist/libgsa.so"
ls -la "$ROOT/dist/libgsa.so" "$ROOT/dist/libgsa.so.xz"
