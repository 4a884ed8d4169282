#!/usr/bin/env bash
# A session's owed device checks (and optionally one side-by-side
# comparison) in a single device call (machine starts are scarce: a failed
# one costs 1-2 minutes of the session's 30):
#   bash bench/device/session_check.sh [LIB] ["AB ENTRIES"] [LENGTHS] ["RUNS"]
# 1. select_check.py --quick (the float64 reference checks, 12 cases);
# 2. the same with every kernel access bounds-checked (check-bounds=1: an
#    access outside its buffer prints and traps, also where its value would
#    be masked - what memcheck cannot see inside PyTorch's larger
#    allocations; the quick cases' small k puts sampled tiles at every
#    length, where the sample kernel once read past ki);
# 3. select_check.py --quick --large --last 2 (L 65536 core, L 140000
#    selection: the sampled path at scale);
# 4. with AB ENTRIES (as ab_profile.sh takes them, e.g. "LIB
#    LIB@GSA_GPU_OPTIONS=select-dense-tiles=0"), ab_profile.sh over them,
#    LENGTHS (default 4096,16384,65536,131072) and RUNS (default
#    "structured:fixed structured:inverse"); none by default.
# Each step has its own time limit (SESSION_CHECK_LIMITS, seconds, default
# "120 180 150 240"), so that one slow step still leaves the others' logs.
# Logs go to $OUT/session/ (ab_profile's per-run logs tarred into ab.tgz: the
# device tool brings back a limited number of files); the summary is last.
set -uo pipefail
cd "$(dirname "$0")/../.."
LIB="${1:-dist/libgsa.so.xz}"
AB="${2:-}"
LENGTHS="${3:-4096,16384,65536,131072}"
RUNS="${4:-structured:fixed structured:inverse}"
read -r QUICK_S BOUNDS_S LARGE_S AB_S <<< "${SESSION_CHECK_LIMITS:-120 180 150 240}"
DIR="${OUT:-/tmp/gsa-session}/session"
mkdir -p "$DIR"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$DIR/gpu.txt"
timeout "$QUICK_S" python3 bench/device/select_check.py --lib "$LIB" --quick \
  > "$DIR/quick.txt" 2>&1
echo "quick: rc $?" > "$DIR/summary.txt"
GSA_CHECK_OPTIONS="check-bounds=1" timeout "$BOUNDS_S" python3 bench/device/select_check.py \
  --lib "$LIB" --quick > "$DIR/bounds.txt" 2>&1
echo "quick, check-bounds=1: rc $?" >> "$DIR/summary.txt"
timeout "$LARGE_S" python3 bench/device/select_check.py --lib "$LIB" --quick --large \
  --last 2 > "$DIR/large.txt" 2>&1
echo "large: rc $?" >> "$DIR/summary.txt"
if [ -n "$AB" ]; then
  OUT="$DIR" timeout "$AB_S" bash bench/device/ab_profile.sh "$AB" "$LENGTHS" "$RUNS" \
    > "$DIR/ab.txt" 2>&1
  echo "ab: rc $?" >> "$DIR/summary.txt"
  # Per run and length: the whole call and the selection's and attention's
  # kernels (ab_profile.sh's own summary shows the first length only).
  for f in "$DIR"/ab/*.txt; do
    [ -e "$f" ] || continue
    echo "$(basename "$f" .txt):"
    grep -E "ms per call|_select_|sparse_attention_0$" "$f" | sed 's/^ */  /'
  done > "$DIR/ab-summary.txt"
  (cd "$DIR" && [ -d ab ] && tar czf ab.tgz ab && rm -rf ab)
fi
echo "== select_check --quick =="
grep -E "^(case|select|core) " "$DIR/quick.txt" | cut -c1-110
echo "== select_check --quick, check-bounds=1 =="
grep -E "^(select|core) |gsa-check-bounds" "$DIR/bounds.txt" | cut -c1-160
echo "== select_check --quick --large --last 2 =="
grep -E "^(select|core) " "$DIR/large.txt" | cut -c1-110
if [ -n "$AB" ]; then
  echo "== side by side (ms) =="
  cat "$DIR/ab-summary.txt"
fi
cat "$DIR/summary.txt"
