#!/usr/bin/env bash
# Attention-kernel variants in one device call: each variant's correctness
# (select_check.py --attention-shapes: the tile attention against a float64
# reference over GQA groups 1-16, d_k 64/128, up to L 40000), then their
# per-kernel times side by side (ab_profile.sh).
#   bash bench/device/attention_variants.sh [LIB] ["VARIANTS"] [LENGTHS] ["RUNS"]
# VARIANTS: space-separated GSA_GPU_OPTIONS settings, '+' between the
# options of one ("attention-shared-queries=1+attention-warps=8"); a
# leading '-' times a variant without checking it (one whose code another
# variant checks already); the library's defaults run first as the baseline. Time limits per step:
# ATTENTION_VARIANTS_LIMITS ("CHECK_S AB_S", default "70 200"; the check
# runs once per variant). Logs under $OUT/variants/, the summary last.
set -uo pipefail
cd "$(dirname "$0")/../.."
LIB="${1:-dist/libgsa.so.xz}"
VARIANTS="${2:-attention-shared-queries=1+attention-warps=8+attention-max-registers=128}"
LENGTHS="${3:-131072}"
RUNS="${4:-structured:fixed}"
read -r CHECK_S AB_S <<< "${ATTENTION_VARIANTS_LIMITS:-70 200}"
DIR="${OUT:-/tmp/gsa-variants}/variants"
mkdir -p "$DIR"
AB="$LIB"
: > "$DIR/summary.txt"
for v in $VARIANTS; do
  if [ "${v#-}" != "$v" ]; then
    AB="$AB $LIB@GSA_GPU_OPTIONS=${v#-}"
    continue
  fi
  name="${v//[^A-Za-z0-9]/_}"
  GSA_CHECK_OPTIONS="${v//+/ }" timeout "$CHECK_S" python3 bench/device/select_check.py \
    --lib "$LIB" --attention-shapes > "$DIR/check-$name.txt" 2>&1
  rc=$?
  ok=$(grep -cE "^attend .* yes " "$DIR/check-$name.txt")
  bad=$(grep -cE "^attend .* NO " "$DIR/check-$name.txt")
  echo "check $v: rc $rc, $ok agree, $bad not" >> "$DIR/summary.txt"
  AB="$AB $LIB@GSA_GPU_OPTIONS=$v"
done
OUT="$DIR" timeout "$AB_S" bash bench/device/ab_profile.sh "$AB" "$LENGTHS" "$RUNS" \
  > "$DIR/ab.txt" 2>&1
echo "ab: rc $?" >> "$DIR/summary.txt"
(cd "$DIR" && [ -d ab ] && tar czf ab.tgz ab && rm -rf ab)
grep -hE "^attend .* NO " "$DIR"/check-*.txt | cut -c1-160
cat "$DIR/ab.txt" | tail -40
cat "$DIR/summary.txt"
