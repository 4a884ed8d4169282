#!/usr/bin/env bash
# Side-by-side per-kernel times of several libgsa builds in one device call
# (the perf-log's "before / after in one run"):
#   bash bench/device/ab_profile.sh "dist/libgsa-base.so.xz dist/libgsa.so.xz" \
#        131072 "structured:fixed structured:inverse"
# For every (inputs:policy) and library it runs profile_kernels.py and keeps
# its log under $OUT/ab/<lib>-<inputs>-<policy>.txt; the last lines are a
# table of the whole call and its five largest kernels per run. A library
# may carry environment settings for its runs, `LIB@NAME=VALUE[@NAME=VALUE]`
# (no spaces, '+' for one; e.g. dist/libgsa.so.xz@GSA_GPU_OPTIONS=select-rows-per-tile=8);
# the disk cache is off (GSA_DISABLE_CACHE), so each run compiles.
set -uo pipefail
cd "$(dirname "$0")/../.."
LIBS="$1"
LENGTHS="${2:-131072}"
RUNS="${3:-structured:fixed}"
OUT="${OUT:-/tmp/gsa-ab}"
mkdir -p "$OUT/ab"
for run in $RUNS; do
  inputs="${run%%:*}"
  policy="${run##*:}"
  for entry in $LIBS; do
    lib="${entry%%@*}"
    setting=""
    [ "$entry" != "$lib" ] && setting="${entry#*@}"
    name="$(basename "$lib" .so.xz)${setting:+-${setting//[^A-Za-z0-9]/_}}-$inputs-$policy"
    # Several settings: LIB@A=1@B=2; a '+' in a value stands for a space
    # (GSA_GPU_OPTIONS=a=0+b=0).
    settings=()
    if [ -n "$setting" ]; then
      IFS='@' read -ra settings <<< "$setting"
      settings=("${settings[@]//+/ }")
    fi
    env "${settings[@]}" GSA_DISABLE_CACHE=1 OUT="$OUT/ab" \
      python3 bench/device/profile_kernels.py --lib "$lib" \
      --lengths "$LENGTHS" --inputs "$inputs" --policy "$policy" \
      > "$OUT/ab/$name.txt" 2>&1
    mv "$OUT/ab/profile_kernels.jsonl" "$OUT/ab/$name.jsonl" 2>/dev/null
  done
done
echo "== per run: whole call, then the largest kernels (ms) =="
for f in "$OUT"/ab/*.txt; do
  echo "$(basename "$f" .txt):"
  grep -E "ms per call|^ +[0-9.]+ ms" "$f" | head -7 | sed 's/^/  /'
done
